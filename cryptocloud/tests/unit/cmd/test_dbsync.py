"""cryptocloud-dbsync run as a program against a SQLite keystore."""

import os
import subprocess
import sys

import fixtures
import testtools

from cryptocloud.db import migration
from cryptocloud.tests import db as test_db

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..', '..'))


class TestDbsync(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.url = self.useFixture(test_db.Database('sqlite')).url
        self.config = self.write_config(self.url)

    def write_config(self, url: str, name: str = 'cryptocloud.conf') -> str:
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write('[keystore]\nconnection = %s\nconnect_retries = 0\n'
                    % url)
        return path

    def dbsync(self, *args: str, config: str | None = None):
        env = dict(os.environ, PYTHONPATH=TOP)
        return subprocess.run(
            [sys.executable, '-m', 'cryptocloud.cmd.dbsync',
             '--config-file', config or self.config, *args],
            cwd=self.tmp, env=env, capture_output=True, text=True,
            timeout=120)

    def test_upgrade_then_version(self):
        result = self.dbsync('version')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual('base', result.stdout.strip())

        result = self.dbsync('upgrade')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn(migration.head(), result.stdout)
        self.assertEqual(migration.head(), migration.current(self.url))

        result = self.dbsync('version', '--schema', 'keystore')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual(migration.head(), result.stdout.strip())

    def test_upgrade_to_revision_and_stamp(self):
        result = self.dbsync('upgrade', '--revision', '0001')
        self.assertEqual(0, result.returncode, result.stderr)
        result = self.dbsync('stamp', 'base')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIsNone(migration.current(self.url))

    def test_control_schema_uses_database_connection(self):
        control_url = self.useFixture(test_db.Database('sqlite')).url
        with open(self.config, 'a') as f:
            f.write('[database]\nconnection = %s\nconnect_retries = 0\n'
                    % control_url)
        result = self.dbsync('upgrade', '--schema', 'control')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn('control database is at revision %s'
                      % migration.head('control'), result.stdout)
        self.assertEqual(migration.head('control'),
                         migration.current(control_url, 'control'))
        # The keystore's database was not touched.
        self.assertIsNone(migration.current(self.url, 'keystore'))
        self.assertIsNone(migration.current(self.url, 'control'))
        result = self.dbsync('version', '--schema', 'control')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual(migration.head('control'), result.stdout.strip())

    def test_unreachable_control_database(self):
        with open(self.config, 'a') as f:
            f.write('[database]\nconnection = '
                    'postgresql+psycopg://u:hunter2@127.0.0.1:1/control\n'
                    'connect_retries = 0\n')
        result = self.dbsync('upgrade', '--schema', 'control')
        self.assertEqual(1, result.returncode)
        self.assertIn('cannot connect to the control database',
                      result.stderr)
        self.assertNotIn('hunter2', result.stderr)

    def test_unknown_revision(self):
        result = self.dbsync('stamp', 'no-such-revision')
        self.assertEqual(1, result.returncode)
        self.assertIn('no-such-revision', result.stderr)
        self.assertNotIn('Traceback', result.stderr)

    def test_unreachable_database(self):
        config = self.write_config(
            'mysql+pymysql://user:hunter2@127.0.0.1:1/keystore',
            'unreachable.conf')
        result = self.dbsync('upgrade', config=config)
        self.assertEqual(1, result.returncode)
        self.assertIn('cannot connect to the keystore database',
                      result.stderr)
        self.assertNotIn('Traceback', result.stderr)
        self.assertNotIn('hunter2', result.stderr)
