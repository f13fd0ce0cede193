"""The group's domain key: made once, sealed, the same for every member."""

import os
import threading

import testtools

from cryptocloud.common import exception
from cryptocloud.crypto import wrapping
from cryptocloud.db import migration
from cryptocloud.tests import db as test_db
from cryptocloud.vhsm import domain
from cryptocloud.vhsm.keystore import api as keystore_api

GROUP = 'group-1'
ROUNDS = 5


class TestDomainKey(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(test_db.Database('sqlite'))
        migration.upgrade(self.database.url)
        self.master_key = os.urandom(32)

    def new_keystore(self) -> keystore_api.Keystore:
        ks = keystore_api.Keystore(self.database.url)
        self.addCleanup(ks.close)
        return ks

    def test_created_once_then_loaded(self):
        ks = self.new_keystore()
        self.assertIsNone(ks.get_domain_key(GROUP))
        first = domain.load_domain_key(ks, self.master_key, GROUP)
        self.assertEqual(wrapping.KEY_SIZE, len(first))
        sealed = ks.get_domain_key(GROUP)
        # Only the sealed form is stored.
        self.assertNotIn(first, sealed)
        self.assertEqual(first, domain.load_domain_key(
            self.new_keystore(), self.master_key, GROUP))
        self.assertEqual(sealed, ks.get_domain_key(GROUP))

    def test_each_group_has_its_own(self):
        ks = self.new_keystore()
        one = domain.load_domain_key(ks, self.master_key, 'group-1')
        two = domain.load_domain_key(ks, self.master_key, 'group-2')
        self.assertNotEqual(one, two)
        # A sealed key is bound to its group.
        self.assertRaises(exception.ConfigurationError,
                          wrapping.unseal_domain_key, self.master_key,
                          ks.get_domain_key('group-1'), 'group-2')

    def test_two_members_racing_get_the_same_key(self):
        for round_ in range(ROUNDS):
            group = 'race-%d' % round_
            members = [self.new_keystore(), self.new_keystore()]
            barrier = threading.Barrier(len(members))
            results, errors = [None] * len(members), []

            def start(index, ks, group=group, barrier=barrier,
                      results=results, errors=errors):
                barrier.wait()
                try:
                    results[index] = domain.load_domain_key(
                        ks, self.master_key, group)
                except Exception as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=start, args=(i, ks))
                       for i, ks in enumerate(members)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            self.assertEqual([], errors)
            self.assertIsNotNone(results[0])
            self.assertEqual(results[0], results[1])
            # And it is the one in the keystore.
            self.assertEqual(results[0], domain.load_domain_key(
                self.new_keystore(), self.master_key, group))

    def test_loser_of_the_race_uses_the_stored_key(self):
        # The race decided deterministically: the other member stores its
        # key between this member's read and its insert.
        ks = self.new_keystore()
        other = self.new_keystore()
        winner = wrapping.new_domain_key()
        real_get = ks.get_domain_key
        calls = []

        def get_domain_key(group_id):
            calls.append(group_id)
            if len(calls) == 1:
                other.put_domain_key(group_id, wrapping.seal_domain_key(
                    self.master_key, winner, group_id))
                return None
            return real_get(group_id)

        ks.get_domain_key = get_domain_key
        self.assertEqual(winner, domain.load_domain_key(
            ks, self.master_key, GROUP))

    def test_wrong_master_key(self):
        domain.load_domain_key(self.new_keystore(), self.master_key, GROUP)
        wrong = bytearray(self.master_key)
        wrong[0] ^= 1
        exc = self.assertRaises(exception.ConfigurationError,
                                domain.load_domain_key, self.new_keystore(),
                                bytes(wrong), GROUP)
        self.assertIn(GROUP, str(exc))
        self.assertNotIn(self.master_key.hex(), str(exc))
        # Nothing was overwritten: the right key still opens it.
        domain.load_domain_key(self.new_keystore(), self.master_key, GROUP)

    def test_master_key_of_wrong_size(self):
        for master in (b'', os.urandom(16), os.urandom(33)):
            self.assertRaises(exception.ConfigurationError,
                              domain.load_domain_key, self.new_keystore(),
                              master, GROUP)
        self.assertIsNone(self.new_keystore().get_domain_key(GROUP))
