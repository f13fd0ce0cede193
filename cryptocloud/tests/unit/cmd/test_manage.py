"""cryptocloud-manage run as a program."""

import json
import os
import stat
import subprocess
import sys

import fixtures
import testtools

from cryptocloud.common import secretfile

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..', '..'))


class TestManage(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.creds = os.path.join(self.tmp, 'credentials.json')

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=TOP)
        return subprocess.run(
            [sys.executable, '-m', 'cryptocloud.cmd.manage', *args],
            cwd=self.tmp, env=env, capture_output=True, text=True,
            timeout=120)

    def ok(self, *args: str) -> subprocess.CompletedProcess:
        result = self.manage(*args)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertNotIn('Traceback', result.stderr)
        return result

    def failed(self, *args: str, status: int = 1
               ) -> subprocess.CompletedProcess:
        result = self.manage(*args)
        self.assertEqual(status, result.returncode, result.stdout)
        self.assertNotIn('Traceback', result.stderr)
        return result

    # -- secrets ----------------------------------------------------------

    def _check_secret_command(self, command: str, what: str):
        path = os.path.join(self.tmp, command + '.key')
        result = self.ok(command, 'create', path)
        self.assertIn(what, result.stdout)
        self.assertIn(path, result.stdout)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))
        secret = secretfile.read_secret_file(path)
        self.assertEqual(secretfile.SECRET_BYTES, len(secret))
        # The secret itself is never printed.
        with open(path) as f:
            encoded = f.read().strip()
        self.assertNotIn(encoded, result.stdout + result.stderr)

        result = self.failed(command, 'create', path)
        self.assertIn('refusing to overwrite', result.stderr)
        self.assertEqual(secret, secretfile.read_secret_file(path))

        self.ok(command, 'create', '--force', path)
        self.assertNotEqual(secret, secretfile.read_secret_file(path))
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))

    def test_master_key_create(self):
        self._check_secret_command('master-key', 'master key')

    def test_group_secret_create(self):
        self._check_secret_command('group-secret', 'vHSM group secret')

    def test_secret_in_missing_directory(self):
        result = self.manage('master-key', 'create',
                             os.path.join(self.tmp, 'no', 'such', 'dir'))
        self.assertNotEqual(0, result.returncode)

    def test_usage_errors(self):
        for args in ((), ('master-key',), ('master-key', 'create'),
                     ('master-key', 'destroy', 'x'), ('nope',),
                     ('credential', 'create', '--file', self.creds)):
            result = self.manage(*args)
            self.assertEqual(2, result.returncode, args)
            self.assertIn('usage', result.stderr.lower())
            self.assertNotIn('Traceback', result.stderr)

    # -- credentials ------------------------------------------------------

    def test_credential_lifecycle(self):
        result = self.ok('credential', 'create', '--file', self.creds,
                         '--project', 'project-a')
        token = result.stdout.strip()
        self.assertEqual(1, len(result.stdout.splitlines()))
        cred_id, _, secret = token.partition('.')
        self.assertTrue(cred_id and secret)
        self.assertIn('project-a', result.stderr)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(self.creds).st_mode))
        with open(self.creds) as f:
            stored = f.read()
        # Only a hash of the secret is kept.
        self.assertNotIn(secret, stored)
        self.assertIn(cred_id, stored)

        other = self.ok('credential', 'create', '--file', self.creds,
                        '--project', 'project-b').stdout.strip()
        listed = json.loads(self.ok('credential', 'list', '--file',
                                    self.creds).stdout)
        self.assertEqual([(cred_id, 'project-a'),
                          (other.partition('.')[0], 'project-b')],
                         [(c['id'], c['project_id']) for c in listed])
        for cred in listed:
            self.assertEqual({'id', 'project_id', 'created_at'}, set(cred))
            self.assertTrue(cred['created_at'])

        result = self.ok('credential', 'revoke', '--file', self.creds,
                         cred_id)
        self.assertIn(cred_id, result.stdout)
        listed = json.loads(self.ok('credential', 'list', '--file',
                                    self.creds).stdout)
        self.assertEqual(['project-b'], [c['project_id'] for c in listed])

        result = self.failed('credential', 'revoke', '--file', self.creds,
                             cred_id)
        self.assertIn(cred_id, result.stderr)

    def test_credential_list_never_shows_secrets(self):
        token = self.ok('credential', 'create', '--file', self.creds,
                        '--project', 'p').stdout.strip()
        result = self.ok('credential', 'list', '--file', self.creds)
        self.assertNotIn(token.partition('.')[2], result.stdout)
        self.assertNotIn('secret', result.stdout)

    def test_credential_bad_project(self):
        for project in ('', 'p' * 65):
            result = self.failed('credential', 'create', '--file',
                                 self.creds, '--project', project)
            self.assertIn('project_id', result.stderr)
        self.assertFalse(os.path.exists(self.creds))

    def test_credential_file_not_json(self):
        with open(self.creds, 'w') as f:
            f.write('not json')
        result = self.failed('credential', 'create', '--file', self.creds,
                             '--project', 'p')
        self.assertIn(self.creds, result.stderr)
        with open(self.creds) as f:
            self.assertEqual('not json', f.read())

    def test_credential_list_missing_file(self):
        result = self.manage('credential', 'list', '--file', self.creds)
        self.assertNotIn('Traceback', result.stderr)
        if result.returncode == 0:
            self.assertEqual([], json.loads(result.stdout))
        else:
            self.assertIn(self.creds, result.stderr)
