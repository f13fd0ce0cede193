"""Master key -> domain key -> tenant key blobs."""

import testtools

from cryptocloud.common import exception
from cryptocloud.crypto import wrapping

MASTER = bytes(range(32))
GROUP = 'group-1'


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x80]) + data[index + 1:]


class TestDomainKey(testtools.TestCase):

    def test_round_trip(self):
        dk = wrapping.new_domain_key()
        self.assertEqual(32, len(dk))
        self.assertNotEqual(dk, wrapping.new_domain_key())
        sealed = wrapping.seal_domain_key(MASTER, dk, GROUP)
        self.assertEqual(2 + 12 + 32 + 16, len(sealed))
        self.assertEqual(b'\x01\x01', sealed[:2])
        self.assertNotIn(dk, sealed)
        self.assertEqual(dk, wrapping.unseal_domain_key(MASTER, sealed,
                                                        GROUP))

    def test_wrong_master_group_or_tamper(self):
        dk = wrapping.new_domain_key()
        sealed = wrapping.seal_domain_key(MASTER, dk, GROUP)
        cases = [
            (bytes(32), sealed, GROUP),
            (MASTER, sealed, 'group-2'),
            (MASTER, sealed[:-1], GROUP),
            (MASTER, b'', GROUP),
        ] + [(MASTER, _flip(sealed, i), GROUP) for i in range(len(sealed))]
        for master, blob, group in cases:
            exc = self.assertRaises(exception.ConfigurationError,
                                    wrapping.unseal_domain_key, master, blob,
                                    group)
            self.assertIn('does not open the domain key of group %s' % group,
                          exc.message)

    def test_key_lengths(self):
        self.assertRaises(exception.ConfigurationError,
                          wrapping.seal_domain_key, MASTER[:16],
                          wrapping.new_domain_key(), GROUP)
        self.assertRaises(exception.ConfigurationError,
                          wrapping.seal_domain_key, MASTER, b'short', GROUP)


class TestWrapKey(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dk = wrapping.new_domain_key()
        self.aad = wrapping.key_aad('k1', 1, 'p1', 'SM4_GCM')

    def test_round_trip(self):
        material = b'\x11' * 16
        blob = wrapping.wrap_key(self.dk, material, self.aad)
        self.assertEqual(2 + 12 + 16 + 16, len(blob))
        self.assertEqual(b'\x01\x01', blob[:2])
        self.assertNotEqual(blob, wrapping.wrap_key(self.dk, material,
                                                    self.aad))
        self.assertEqual(material, wrapping.unwrap_key(self.dk, blob,
                                                       self.aad))

    def test_tamper_every_byte(self):
        blob = wrapping.wrap_key(self.dk, b'secret-material', self.aad)
        for i in range(len(blob)):
            exc = self.assertRaises(exception.DecryptionFailed,
                                    wrapping.unwrap_key, self.dk,
                                    _flip(blob, i), self.aad)
            self.assertIsInstance(exc, wrapping.KeyBlobAuthenticationError)
            self.assertEqual('stored key blob failed authentication',
                             exc.message)
            self.assertEqual(500, exc.code)

    def test_aad_binds_the_row(self):
        blob = wrapping.wrap_key(self.dk, b'm', self.aad)
        for other in (wrapping.key_aad('k2', 1, 'p1', 'SM4_GCM'),
                      wrapping.key_aad('k1', 2, 'p1', 'SM4_GCM'),
                      wrapping.key_aad('k1', 1, 'p2', 'SM4_GCM'),
                      wrapping.key_aad('k1', 1, 'p1', 'AES_256_GCM'),
                      b''):
            self.assertRaises(wrapping.KeyBlobAuthenticationError,
                              wrapping.unwrap_key, self.dk, blob, other)
        self.assertRaises(wrapping.KeyBlobAuthenticationError,
                          wrapping.unwrap_key, wrapping.new_domain_key(),
                          blob, self.aad)

    def test_aad_fields_do_not_run_together(self):
        self.assertNotEqual(wrapping.key_aad('ab', 1, 'c', 'SM2'),
                            wrapping.key_aad('a', 1, 'bc', 'SM2'))
        self.assertNotEqual(wrapping.key_aad('k', 11, 'p', 'SM2'),
                            wrapping.key_aad('k1', 1, 'p', 'SM2'))

    def test_short_blob(self):
        self.assertRaises(wrapping.KeyBlobAuthenticationError,
                          wrapping.unwrap_key, self.dk, b'\x01\x01', self.aad)

    def test_sealed_domain_key_is_not_a_key_blob(self):
        # Different labels in the AAD keep the two layers apart.
        sealed = wrapping.seal_domain_key(self.dk, b'\x22' * 32, GROUP)
        self.assertRaises(wrapping.KeyBlobAuthenticationError,
                          wrapping.unwrap_key, self.dk, sealed, b'')
