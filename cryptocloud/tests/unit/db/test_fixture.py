"""The test database fixture: skip without a server, fail when required."""

import unittest

import fixtures
import testtools

from cryptocloud.tests import db as test_db

UNREACHABLE = 'mysql+pymysql://root@127.0.0.1:1/'


class TestDatabaseFixture(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.EnvironmentVariable(
            'CRYPTOCLOUD_TEST_MYSQL_URL', UNREACHABLE))
        self.useFixture(fixtures.EnvironmentVariable('CI'))
        self.useFixture(fixtures.EnvironmentVariable(
            'CRYPTOCLOUD_TEST_REQUIRE_DB'))

    def test_unreachable_server_skips(self):
        exc = self.assertRaises(unittest.SkipTest, test_db.Database('mysql')
                                .setUp)
        self.assertIn('unreachable', str(exc))

    def test_unreachable_server_fails_in_ci(self):
        for name, value in (('CI', 'true'),
                            ('CRYPTOCLOUD_TEST_REQUIRE_DB', '1')):
            with fixtures.EnvironmentVariable(name, value):
                self.assertRaises(test_db.DatabaseUnavailable,
                                  test_db.Database('mysql').setUp)

    def test_scenarios(self):
        self.assertEqual(
            [('sqlite', {'backend': 'sqlite'}),
             ('mysql', {'backend': 'mysql'}),
             ('postgresql', {'backend': 'postgresql'})],
            test_db.backend_scenarios())

    def test_unknown_backend(self):
        self.assertRaises(ValueError, test_db.Database, 'oracle')
