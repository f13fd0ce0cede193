"""The OpenSSL binding itself: start-up check, threads, serialization."""

import ctypes
import threading

import fixtures
import testtools

from cryptocloud.common import exception
from cryptocloud.crypto import _libcrypto
from cryptocloud.crypto import sm2

MSG = b'threaded signing'


class TestBackend(testtools.TestCase):

    def test_check_backend_passes_here(self):
        _libcrypto.check_backend()

    def test_missing_library_is_a_backend_error(self):
        self.useFixture(fixtures.MockPatch('ctypes.util.find_library',
                                           return_value=None))
        self.useFixture(fixtures.MockPatch('ctypes.CDLL',
                                           side_effect=OSError('nope')))
        self.useFixture(fixtures.MockPatchObject(_libcrypto, '_LIB',
                                                 _libcrypto._Lib()))
        exc = self.assertRaises(exception.CryptoBackendError,
                                _libcrypto.check_backend)
        self.assertIn('libcrypto', exc.message)

    def test_missing_symbol_is_a_backend_error(self):
        class NoSM3:
            def __getattr__(self, name):
                raise AttributeError('undefined symbol: ' + name)

        self.useFixture(fixtures.MockPatch('ctypes.CDLL',
                                           return_value=NoSM3()))
        self.useFixture(fixtures.MockPatchObject(_libcrypto, '_LIB',
                                                 _libcrypto._Lib()))
        exc = self.assertRaises(exception.CryptoBackendError,
                                _libcrypto.check_backend)
        self.assertIn('OpenSSL 3.0', exc.message)

    def test_failure_leaves_error_queue_empty(self):
        lib = _libcrypto._lib()
        key = sm2.SM2PrivateKey.generate()
        self.assertRaises(exception.DecryptionFailed, key.decrypt,
                          b'\x30\x03\x02\x01\x01')
        self.assertRaises(exception.InvalidInput,
                          sm2.SM2PrivateKey.from_pkcs8_der, b'junk')
        self.assertFalse(key.verify(b'\x30\x06\x02\x01\x01\x02\x01\x01',
                                    MSG))
        self.assertEqual(0, lib.ERR_get_error())

    def test_library_is_cdll_so_the_gil_is_released(self):
        self.assertIsInstance(_libcrypto._lib(), ctypes.CDLL)
        self.assertNotIsInstance(_libcrypto._lib(), ctypes.PyDLL)


class TestSerialization(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.key = sm2.SM2PrivateKey.generate()

    def test_pkcs8_round_trip(self):
        der = self.key.to_pkcs8_der()
        self.assertEqual(0x30, der[0])
        again = sm2.SM2PrivateKey.from_pkcs8_der(der)
        self.assertEqual(self.key.private_scalar(), again.private_scalar())
        self.assertTrue(again.verify(self.key.sign(MSG), MSG))

    def test_public_round_trips(self):
        pem = self.key.to_pem()
        self.assertTrue(pem.startswith('-----BEGIN PUBLIC KEY-----'))
        for pub in (sm2.SM2PublicKey.from_pem(pem),
                    sm2.SM2PublicKey.from_pem(pem.encode()),
                    sm2.SM2PublicKey.from_der(self.key.to_der()),
                    sm2.SM2PublicKey.from_point(self.key.point()),
                    self.key.public_key()):
            self.assertEqual(self.key.point(), pub.point())
            self.assertTrue(pub.verify(self.key.sign(MSG), MSG))
            self.assertEqual(MSG, self.key.decrypt(pub.encrypt(MSG)))
            self.assertFalse(hasattr(pub, 'sign'))

    def test_rejects_bad_keys(self):
        der = self.key.to_pkcs8_der()
        for bad in (b'', der[:-1], der + b'\x00', _flip(der, 40)):
            self.assertRaises(exception.InvalidInput,
                              sm2.SM2PrivateKey.from_pkcs8_der, bad)
        self.assertRaises(exception.InvalidInput, sm2.SM2PublicKey.from_der,
                          der)
        self.assertRaises(exception.InvalidInput, sm2.SM2PublicKey.from_pem,
                          'not a pem')
        point = self.key.point()
        self.assertRaises(exception.InvalidInput,
                          sm2.SM2PublicKey.from_point, point[1:])
        self.assertRaises(exception.InvalidInput,
                          sm2.SM2PublicKey.from_point, _flip(point, 64))
        for d in (b'\x00' * 32, b'\xff' * 32, b'\x01' * 31):
            self.assertRaises(exception.InvalidInput,
                              sm2.SM2PrivateKey.from_private_scalar, d)

    def test_longest_user_id(self):
        # OpenSSL refuses an ID of 8191 bytes although ENTL could hold it.
        uid = b'u' * sm2.MAX_USER_ID_SIZE
        sig = self.key.sign(MSG, uid)
        self.assertTrue(self.key.verify(sig, MSG, uid))
        self.assertTrue(self.key.verify_digest(sig,
                                               self.key.digest(MSG, uid)))
        self.assertRaises(exception.InvalidInput, self.key.sign, MSG,
                          uid + b'u')

    def test_explicit_free(self):
        pkey = _libcrypto.generate_sm2()
        pkey.free()
        pkey.free()   # idempotent
        self.assertRaises(_libcrypto.OpenSSLError, _libcrypto.sign, pkey,
                          MSG, b'id')


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


class TestThreads(testtools.TestCase):

    def test_one_key_many_threads(self):
        key = sm2.SM2PrivateKey.generate()
        pub = sm2.SM2PublicKey.from_point(key.point())
        errors = []
        results = []
        start = threading.Barrier(6)

        def work(n):
            try:
                start.wait()
                for i in range(150):
                    msg = b'%d-%d' % (n, i)
                    uid = b'user-%d' % n
                    sig = key.sign(msg, uid)
                    results.append(pub.verify(sig, msg, uid)
                                   and not key.verify(sig, msg))
                    if i % 10 == 0:
                        results.append(key.decrypt(pub.encrypt(msg)) == msg)
            except Exception as exc:  # report in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,))
                   for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual([], errors)
        self.assertEqual(6 * (150 + 15), len(results))
        self.assertTrue(all(results))
