"""A vHSM engine on a real SQLite keystore, for the vHSM unit tests."""

import os
import uuid

import testtools

from cryptocloud.common import exception
from cryptocloud.db import migration
from cryptocloud.tests import db as test_db
from cryptocloud.vhsm import domain
from cryptocloud.vhsm import engine
from cryptocloud.vhsm import keys
from cryptocloud.vhsm.keystore import api as keystore_api

GROUP = 'group-1'
PROJECT = 'project-a'
OTHER_PROJECT = 'project-b'


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class EngineTestCase(testtools.TestCase):
    """One vHSM member (``self.engine``) on a fresh keystore."""

    cache_ttl = 2.0
    batch_threads = 3

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(test_db.Database('sqlite'))
        migration.upgrade(self.database.url)
        self.master_key = os.urandom(32)
        self.keystore = self.new_keystore()
        self.domain_key = domain.load_domain_key(
            self.keystore, self.master_key, GROUP)
        self.engine = self.new_engine(self.keystore)

    def new_keystore(self) -> keystore_api.Keystore:
        """A member's own connection pool to the shared database."""
        ks = keystore_api.Keystore(self.database.url)
        self.addCleanup(ks.close)
        return ks

    def new_engine(self, keystore: keystore_api.Keystore, *,
                   cache_ttl: float | None = None,
                   member_id: str = 'member-1') -> engine.Engine:
        """A group member whose domain key is unsealed from ``keystore``."""
        domain_key = domain.load_domain_key(keystore, self.master_key,
                                            GROUP)
        manager = keys.KeyManager(
            keystore, domain_key, GROUP,
            cache_ttl=self.cache_ttl if cache_ttl is None else cache_ttl)
        eng = engine.Engine(manager, group_id=GROUP, member_id=member_id,
                            batch_threads=self.batch_threads)
        self.addCleanup(eng.stop)
        return eng

    def call(self, op: str, args: dict, *, project: str = PROJECT,
             eng: engine.Engine | None = None) -> dict:
        return (eng or self.engine).dispatch(op, project, args)

    def create(self, algorithm: str, purpose: str | None = None, *,
               project: str = PROJECT, eng: engine.Engine | None = None,
               **extra) -> dict:
        args = {'key_id': str(uuid.uuid4()), 'algorithm': algorithm,
                'purpose': purpose}
        args.update(extra)
        return self.call('key.create', args, project=project, eng=eng)

    def assertFails(self, exc_type, op: str, args: dict, *,
                    project: str = PROJECT, eng: engine.Engine | None = None,
                    code: int | None = None):
        """Assert that ``op`` raises ``exc_type``; return the exception."""
        exc = self.assertRaises(exc_type, self.call, op, args,
                                project=project, eng=eng)
        self.assertIsInstance(exc, exception.CryptoCloudException)
        if code is not None:
            self.assertEqual(code, exc.code)
        return exc
