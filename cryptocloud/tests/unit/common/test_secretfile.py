"""Secret files: the master key and the vHSM group secret."""

import base64
import os
import stat

import fixtures
import testtools

from cryptocloud.common import exception
from cryptocloud.common import secretfile


class TestSecretFile(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.dir, 'master.key')

    def write(self, content: bytes, mode: int = 0o600) -> str:
        with open(self.path, 'wb') as f:
            f.write(content)
        os.chmod(self.path, mode)
        return self.path

    def test_create_then_read(self):
        secretfile.create_secret_file(self.path)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(self.path).st_mode))
        with open(self.path, 'rb') as f:
            text = f.read()
        self.assertTrue(text.endswith(b'\n'))
        self.assertEqual(1, text.count(b'\n'))
        secret = secretfile.read_secret_file(self.path)
        self.assertEqual(secretfile.SECRET_BYTES, len(secret))
        self.assertEqual(base64.b64decode(text), secret)

    def test_create_is_random(self):
        other = os.path.join(self.dir, 'other.key')
        secretfile.create_secret_file(self.path)
        secretfile.create_secret_file(other)
        self.assertNotEqual(secretfile.read_secret_file(self.path),
                            secretfile.read_secret_file(other))

    def test_create_ignores_umask(self):
        old = os.umask(0)
        self.addCleanup(os.umask, old)
        secretfile.create_secret_file(self.path)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(self.path).st_mode))

    def test_create_refuses_to_overwrite(self):
        secretfile.create_secret_file(self.path)
        before = secretfile.read_secret_file(self.path)
        exc = self.assertRaises(exception.Conflict,
                                secretfile.create_secret_file, self.path)
        self.assertIn(self.path, str(exc))
        self.assertEqual(before, secretfile.read_secret_file(self.path))

    def test_create_overwrite_when_asked(self):
        secretfile.create_secret_file(self.path)
        before = secretfile.read_secret_file(self.path)
        os.chmod(self.path, 0o644)
        secretfile.create_secret_file(self.path, overwrite=True)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(self.path).st_mode))
        self.assertNotEqual(before, secretfile.read_secret_file(self.path))

    def test_create_refuses_existing_symlink(self):
        target = os.path.join(self.dir, 'target')
        os.symlink(target, self.path)
        self.assertRaises(exception.Conflict, secretfile.create_secret_file,
                          self.path)
        self.assertFalse(os.path.exists(target))

    def test_group_or_other_access_refused(self):
        secretfile.create_secret_file(self.path)
        for mode in (0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601,
                     0o620, 0o602, 0o777):
            os.chmod(self.path, mode)
            exc = self.assertRaises(exception.ConfigurationError,
                                    secretfile.read_secret_file, self.path)
            self.assertIn('%o' % mode, str(exc))
            self.assertIn('chmod 600', str(exc))
        for mode in (0o600, 0o400, 0o700):
            os.chmod(self.path, mode)
            secretfile.read_secret_file(self.path)

    def test_missing_file(self):
        exc = self.assertRaises(exception.ConfigurationError,
                                secretfile.read_secret_file,
                                os.path.join(self.dir, 'nope'))
        self.assertIn('does not exist', str(exc))

    def test_unreadable_file(self):
        if os.geteuid() == 0:
            self.skipTest('root reads any file')
        self.write(base64.b64encode(os.urandom(32)), 0o200)
        exc = self.assertRaises(exception.ConfigurationError,
                                secretfile.read_secret_file, self.path)
        self.assertIn('cannot be read', str(exc))

    def test_wrong_length(self):
        for size in (0, 16, 31, 33, 64):
            self.write(base64.b64encode(os.urandom(size)) + b'\n')
            exc = self.assertRaises(exception.ConfigurationError,
                                    secretfile.read_secret_file, self.path)
            self.assertIn('32 bytes', str(exc))

    def test_not_base64(self):
        for content in (b'not base64 at all!\n', b'\xff\xfe' * 22,
                        b'a' * 43 + b'\n', b'@' * 44,
                        base64.b64encode(os.urandom(32))[:-2] + b'!!'):
            self.write(content)
            exc = self.assertRaises(exception.ConfigurationError,
                                    secretfile.read_secret_file, self.path)
            self.assertIn(self.path, str(exc))

    def test_error_never_shows_the_content(self):
        secret = base64.b64encode(os.urandom(32))
        self.write(secret, 0o644)
        exc = self.assertRaises(exception.ConfigurationError,
                                secretfile.read_secret_file, self.path)
        self.assertNotIn(secret.decode(), str(exc))
        self.write(secret[:20])
        exc = self.assertRaises(exception.ConfigurationError,
                                secretfile.read_secret_file, self.path)
        self.assertNotIn(secret[:20].decode(), str(exc))

    def test_surrounding_whitespace_is_allowed(self):
        secret = os.urandom(32)
        self.write(b'  ' + base64.b64encode(secret) + b'\r\n\n')
        self.assertEqual(secret, secretfile.read_secret_file(self.path))
