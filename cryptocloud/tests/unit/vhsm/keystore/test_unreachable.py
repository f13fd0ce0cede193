"""A keystore database that stops answering is a 503, not a 500.

The keystore here is on SQLite, then its engine is pointed at a MySQL
port where nothing listens, which is what a vHSM sees while the keystore
server restarts: PyMySQL's connection refused, turned by oslo.db's
filters into ``DBConnectionError``.
"""

import datetime

import sqlalchemy as sa
import testtools
from oslo_db.sqlalchemy import exc_filters

from cryptocloud.common import exception
from cryptocloud.common import workloads
from cryptocloud.db import migration
from cryptocloud.tests import db as test_db
from cryptocloud.tests.unit.vhsm.keystore.test_api import GROUP
from cryptocloud.tests.unit.vhsm.keystore.test_api import make_key
from cryptocloud.vhsm.keystore import api


class TestKeystoreUnreachable(testtools.TestCase):

    def setUp(self):
        super().setUp()
        database = self.useFixture(test_db.Database('sqlite'))
        migration.upgrade(database.url)
        self.ks = api.Keystore(database.url)
        self.addCleanup(self.ks.close)
        self.ks._engine.dispose()
        port = workloads.free_port()
        gone = sa.create_engine(
            'mysql+pymysql://root@127.0.0.1:%d/keystore' % port,
            poolclass=sa.pool.NullPool, connect_args={'connect_timeout': 2})
        exc_filters.register_engine(gone)
        self.addCleanup(gone.dispose)
        self.ks._engine = gone

    def test_every_call_is_service_unavailable(self):
        record, version = make_key()
        calls = [
            (self.ks.check_schema,),
            (self.ks.get_domain_key, GROUP),
            (self.ks.put_domain_key, GROUP, b'sealed'),
            (self.ks.create_key, record, version),
            (self.ks.get_key, GROUP, record.key_id),
            (self.ks.list_keys, GROUP, 'project-a'),
            (self.ks.get_version, record.key_id, 1),
            (self.ks.add_version, GROUP, record.key_id, version),
            (self.ks.update_key, GROUP, record.key_id, {'name': 'x'}),
            (self.ks.purge_due, GROUP,
             datetime.datetime(2030, 1, 1)),
        ]
        for func, *args in calls:
            exc = self.assertRaises(exception.KeystoreUnavailable, func,
                                    *args)
            self.assertEqual(503, exc.code)
            self.assertIn('keystore database cannot be reached',
                          exc.message)
            # Nothing of the URL or the driver's message is passed on.
            self.assertNotIn('127.0.0.1', exc.message)

    def test_travels_over_the_internal_protocol(self):
        exc = self.assertRaises(exception.KeystoreUnavailable,
                                self.ks.get_key, GROUP, 'k1')
        again = exception.from_dict(exc.to_dict())
        self.assertIsInstance(again, exception.KeystoreUnavailable)
        self.assertEqual((503, exc.message), (again.code, again.message))
