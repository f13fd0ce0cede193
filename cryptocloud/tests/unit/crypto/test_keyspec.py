"""Every algorithm in keyspec: round trips, options, errors, tampering."""

import functools

import testtools
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding

from cryptocloud.common import exception
from cryptocloud.crypto import digest
from cryptocloud.crypto import keyspec
from cryptocloud.crypto import sm2

MSG = b'the quick brown fox jumps over the lazy dog'
AAD = b'tenant-context'


@functools.cache
def _material(name):
    # RSA-4096 generation takes seconds: make each key once per process.
    return keyspec.get_spec(name).generate()


def _handle(name):
    return keyspec.get_spec(name).load(_material(name))


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


SYMMETRIC = ('SM4_GCM', 'SM4_CBC', 'SM4_CTR', 'AES_256_GCM')
AEAD = ('SM4_GCM', 'AES_256_GCM')
SIGNING = ('SM2', 'EC_P256', 'EC_P384', 'RSA_2048', 'RSA_3072', 'RSA_4096')
RSA = ('RSA_2048', 'RSA_3072', 'RSA_4096')


class TestSpecs(testtools.TestCase):

    def test_table(self):
        self.assertEqual(
            {'SM4_GCM', 'SM4_CBC', 'SM4_CTR', 'AES_256_GCM', 'HMAC_SM3',
             'HMAC_SHA256', 'SM2', 'EC_P256', 'EC_P384', 'RSA_2048',
             'RSA_3072', 'RSA_4096'}, set(keyspec.ALGORITHMS))
        sm2_spec = keyspec.get_spec('SM2')
        self.assertEqual(('sign', 'encrypt'), sm2_spec.purposes)
        self.assertEqual('sign', sm2_spec.default_purpose)
        self.assertTrue(sm2_spec.asymmetric)
        self.assertEqual(('sign',), keyspec.get_spec('EC_P384').purposes)
        self.assertEqual(('mac',), keyspec.get_spec('HMAC_SM3').purposes)
        self.assertEqual('sign', keyspec.get_spec('RSA_2048').default_purpose)
        for name in SYMMETRIC:
            spec = keyspec.get_spec(name)
            self.assertEqual(('encrypt',), spec.purposes)
            self.assertFalse(spec.asymmetric)

    def test_unknown_algorithm_names_the_allowed(self):
        exc = self.assertRaises(exception.InvalidInput, keyspec.get_spec,
                                'DES')
        self.assertIn('SM4_GCM', exc.message)
        self.assertIn('RSA_4096', exc.message)

    def test_symmetric_material_sizes(self):
        sizes = {'SM4_GCM': 16, 'SM4_CBC': 16, 'SM4_CTR': 16,
                 'AES_256_GCM': 32, 'HMAC_SM3': 32, 'HMAC_SHA256': 32}
        for name, size in sizes.items():
            material = keyspec.get_spec(name).generate()
            self.assertEqual(size, len(material), name)
            self.assertNotEqual(material, keyspec.get_spec(name).generate())
            self.assertEqual(material,
                             keyspec.get_spec(name).load(material).material())
            self.assertIsNone(
                keyspec.get_spec(name).load(material).public_key_pem())
            self.assertRaises(exception.InvalidInput,
                              keyspec.get_spec(name).load, material[:-1])

    def test_private_keys_are_pkcs8(self):
        for name in SIGNING:
            material = _material(name)
            if name == 'SM2':
                sm2.SM2PrivateKey.from_pkcs8_der(material)
            else:
                key = serialization.load_der_private_key(material, None)
                if name.startswith('RSA'):
                    self.assertEqual(int(name[4:]), key.key_size)
                    self.assertEqual(65537,
                                     key.public_key().public_numbers().e)
            handle = _handle(name)
            self.assertEqual(material, handle.material())
            self.assertIn('BEGIN PUBLIC KEY', handle.public_key_pem())

    def test_wrong_material_for_algorithm(self):
        self.assertRaises(exception.InvalidInput,
                          keyspec.get_spec('EC_P256').load,
                          _material('EC_P384'))
        self.assertRaises(exception.InvalidInput,
                          keyspec.get_spec('RSA_3072').load,
                          _material('RSA_2048'))
        self.assertRaises(exception.InvalidInput,
                          keyspec.get_spec('SM2').load, _material('EC_P256'))
        self.assertRaises(exception.InvalidInput,
                          keyspec.get_spec('EC_P256').load, b'junk')


class TestSymmetric(testtools.TestCase):

    def test_round_trips(self):
        for name in SYMMETRIC:
            handle = _handle(name)
            for pt in (b'', b'x', MSG, bytes(range(256)) * 5):
                ct = handle.encrypt(pt)
                self.assertEqual(pt, handle.decrypt(ct), name)
                self.assertNotEqual(ct, handle.encrypt(pt))

    def test_layouts(self):
        self.assertEqual(12 + len(MSG) + 16,
                         len(_handle('SM4_GCM').encrypt(MSG)))
        self.assertEqual(12 + len(MSG) + 16,
                         len(_handle('AES_256_GCM').encrypt(MSG)))
        self.assertEqual(16 + 48, len(_handle('SM4_CBC').encrypt(MSG)))
        self.assertEqual(32, len(_handle('SM4_CBC').encrypt(b'')))
        self.assertEqual(16 + len(MSG), len(_handle('SM4_CTR').encrypt(MSG)))

    def test_aead_with_aad(self):
        for name in AEAD:
            handle = _handle(name)
            ct = handle.encrypt(MSG, AAD)
            self.assertEqual(MSG, handle.decrypt(ct, AAD))
            self.assertRaises(exception.DecryptionFailed, handle.decrypt, ct)
            self.assertRaises(exception.DecryptionFailed, handle.decrypt, ct,
                              AAD + b'!')
            self.assertRaises(exception.DecryptionFailed, handle.decrypt, ct,
                              _flip(AAD, 0))
            # Empty AAD and no AAD are the same thing in GCM.
            self.assertEqual(MSG, handle.decrypt(handle.encrypt(MSG), b''))

    def test_aead_every_bit_position_tampered(self):
        for name in AEAD:
            handle = _handle(name)
            ct = handle.encrypt(MSG, AAD)
            for i in range(len(ct)):   # nonce, ciphertext and tag
                self.assertRaises(exception.DecryptionFailed, handle.decrypt,
                                  _flip(ct, i), AAD)
            self.assertRaises(exception.DecryptionFailed, handle.decrypt,
                              ct[:-1], AAD)
            self.assertRaises(exception.DecryptionFailed, handle.decrypt,
                              ct[:27], AAD)

    def test_unauthenticated_modes_garble_on_tamper(self):
        # CBC and CTR carry no tag: tampering cannot be detected, only
        # shown not to give back the original plaintext.
        for name in ('SM4_CBC', 'SM4_CTR'):
            handle = _handle(name)
            ct = handle.encrypt(MSG)
            for i in range(len(ct)):
                try:
                    self.assertNotEqual(MSG, handle.decrypt(_flip(ct, i)))
                except exception.DecryptionFailed:
                    pass

    def test_malformed_lengths(self):
        cbc = _handle('SM4_CBC')
        for bad in (b'', b'\x00' * 16, b'\x00' * 33):
            self.assertRaises(exception.DecryptionFailed, cbc.decrypt, bad)
        self.assertRaises(exception.DecryptionFailed,
                          _handle('SM4_CTR').decrypt, b'\x00' * 15)
        self.assertRaises(exception.DecryptionFailed,
                          _handle('SM4_GCM').decrypt, b'\x00' * 27)

    def test_aad_refused_by_non_aead(self):
        for name in ('SM4_CBC', 'SM4_CTR'):
            handle = _handle(name)
            exc = self.assertRaises(exception.InvalidInput, handle.encrypt,
                                    MSG, AAD)
            self.assertIn('AEAD', exc.message)
            self.assertRaises(exception.InvalidInput, handle.decrypt,
                              handle.encrypt(MSG), AAD)
            self.assertEqual(MSG, handle.decrypt(handle.encrypt(MSG, b'')))

    def test_options_and_operations_refused(self):
        for name in SYMMETRIC:
            handle = _handle(name)
            self.assertRaises(exception.InvalidInput, handle.encrypt, MSG,
                              ciphertext_format='der')
            self.assertRaises(exception.InvalidInput, handle.sign, MSG)
            self.assertRaises(exception.InvalidInput, handle.verify, b'', MSG)
            self.assertRaises(exception.InvalidInput, handle.mac, MSG)
            self.assertRaises(exception.InvalidInput, handle.verify_mac, MSG,
                              b'')


class TestHMAC(testtools.TestCase):

    def test_round_trip_and_tamper(self):
        for name, size in (('HMAC_SM3', 32), ('HMAC_SHA256', 32)):
            handle = _handle(name)
            tag = handle.mac(MSG)
            self.assertEqual(size, len(tag))
            self.assertTrue(handle.verify_mac(MSG, tag))
            for i in range(len(tag)):
                self.assertFalse(handle.verify_mac(MSG, _flip(tag, i)))
            self.assertFalse(handle.verify_mac(_flip(MSG, 3), tag))
            self.assertFalse(handle.verify_mac(MSG, tag[:-1]))
            self.assertFalse(handle.verify_mac(MSG, b''))

    def test_hmac_sha256_rfc4231_case_2(self):
        handle = keyspec.get_spec('HMAC_SHA256').load(b'Jefe' + b'\0' * 28)
        # Zero-padding a short HMAC key to the block size is a no-op, so the
        # RFC 4231 "Jefe" vector applies unchanged.
        self.assertEqual(
            '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
            handle.mac(b'what do ya want for nothing?').hex())

    def test_other_operations_refused(self):
        handle = _handle('HMAC_SM3')
        self.assertRaises(exception.InvalidInput, handle.encrypt, MSG)
        self.assertRaises(exception.InvalidInput, handle.decrypt, MSG)
        self.assertRaises(exception.InvalidInput, handle.sign, MSG)


class TestSM2Handle(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.handle = _handle('SM2')

    def test_sign_verify_options(self):
        h = self.handle
        for fmt in (None, 'der', 'raw', 'RAW'):
            for uid in (None, b'1234567812345678', b'bob', b''):
                sig = h.sign(MSG, user_id=uid, signature_format=fmt)
                self.assertTrue(h.verify(sig, MSG, user_id=uid,
                                         signature_format=fmt))
                self.assertFalse(h.verify(sig, MSG, user_id=b'eve',
                                          signature_format=fmt))
        self.assertEqual(64, len(h.sign(MSG, signature_format='raw')))
        sig = h.sign(MSG)
        self.assertTrue(h.verify(sig, MSG, user_id=b'1234567812345678'))
        self.assertTrue(h.verify(sig, MSG, hash='SM3'))

    def test_digest_mode(self):
        h = self.handle
        key = sm2.SM2PrivateKey.from_pkcs8_der(h.material())
        e = key.digest(MSG, b'bob')
        for fmt in ('der', 'raw'):
            sig = h.sign(digest=e, signature_format=fmt)
            self.assertTrue(h.verify(sig, digest=e, signature_format=fmt))
            self.assertTrue(h.verify(sig, MSG, user_id=b'bob',
                                     signature_format=fmt))
        sig = h.sign(MSG)
        self.assertTrue(h.verify(sig, digest=key.digest(MSG)))
        self.assertRaises(exception.InvalidInput, h.sign, digest=e[:31])
        self.assertRaises(exception.InvalidInput, h.verify, sig,
                          digest=e + b'\0')
        self.assertRaises(exception.InvalidInput, h.sign, digest=e,
                          user_id=b'bob')

    def test_encrypt_formats(self):
        h = self.handle
        for fmt in (None, 'der', 'c1c3c2', 'c1c2c3'):
            ct = h.encrypt(MSG, ciphertext_format=fmt)
            self.assertEqual(MSG, h.decrypt(ct, ciphertext_format=fmt))
            if fmt in ('c1c3c2', 'c1c2c3'):
                self.assertEqual(1 + 64 + 32 + len(MSG), len(ct))
                self.assertEqual(b'\x04', ct[:1])
        ct = h.encrypt(MSG, ciphertext_format='c1c3c2')
        self.assertRaises(exception.DecryptionFailed, h.decrypt, ct,
                          ciphertext_format='c1c2c3')
        self.assertRaises(exception.DecryptionFailed, h.decrypt, ct)

    def test_ciphertext_tamper_every_byte(self):
        h = self.handle
        for fmt in ('der', 'c1c3c2', 'c1c2c3'):
            ct = h.encrypt(MSG, ciphertext_format=fmt)
            for i in range(len(ct)):
                self.assertRaises(exception.DecryptionFailed, h.decrypt,
                                  _flip(ct, i), ciphertext_format=fmt)

    def test_signature_tamper_every_byte(self):
        h = self.handle
        for fmt in ('der', 'raw'):
            sig = h.sign(MSG, signature_format=fmt)
            for i in range(len(sig)):
                self.assertFalse(h.verify(_flip(sig, i), MSG,
                                          signature_format=fmt))
            self.assertFalse(h.verify(sig, _flip(MSG, 0),
                                      signature_format=fmt))
            self.assertFalse(h.verify(sig[:-1], MSG, signature_format=fmt))
            self.assertFalse(h.verify(b'', MSG, signature_format=fmt))

    def test_bad_options(self):
        h = self.handle
        bad = [
            (h.encrypt, (MSG, AAD), {}),
            (h.decrypt, (b'x', AAD), {}),
            (h.encrypt, (MSG,), {'ciphertext_format': 'c2c1c3'}),
            (h.encrypt, (b'',), {}),
            (h.sign, (MSG,), {'padding': 'pss'}),
            (h.sign, (MSG,), {'hash': 'SHA256'}),
            (h.sign, (MSG,), {'signature_format': 'pem'}),
            (h.sign, (), {}),
            (h.sign, (MSG,), {'digest': b'\0' * 32}),
            (h.sign, (MSG,), {'user_id': b'x' * 8192}),
            (h.verify, (b'sig', MSG), {'padding': 'pss'}),
            (h.mac, (MSG,), {}),
        ]
        for func, args, kwargs in bad:
            self.assertRaises(exception.InvalidInput, func, *args, **kwargs)


class TestECHandle(testtools.TestCase):

    def test_sign_verify(self):
        for name, hash_cls in (('EC_P256', hashes.SHA256),
                               ('EC_P384', hashes.SHA384)):
            h = _handle(name)
            sig = h.sign(MSG)
            self.assertTrue(h.verify(sig, MSG))
            self.assertTrue(h.verify(sig, MSG, signature_format='der',
                                     hash=hash_cls.name.upper()))
            pub = serialization.load_pem_public_key(
                h.public_key_pem().encode())
            pub.verify(sig, MSG, ec.ECDSA(hash_cls()))
            d = digest.hash_data(hash_cls.name.upper(), MSG)
            self.assertTrue(h.verify(h.sign(digest=d), MSG))
            self.assertTrue(h.verify(sig, digest=d))
            for i in range(len(sig)):
                self.assertFalse(h.verify(_flip(sig, i), MSG))
            self.assertFalse(h.verify(sig, _flip(MSG, 1)))
            self.assertFalse(h.verify(b'\x30\x00', MSG))
            self.assertRaises(exception.InvalidInput, h.sign, digest=d[:-1])

    def test_bad_options(self):
        h = _handle('EC_P256')
        for kwargs in ({'user_id': b'x'}, {'padding': 'pss'},
                       {'hash': 'SHA384'}, {'signature_format': 'raw'}):
            self.assertRaises(exception.InvalidInput, h.sign, MSG, **kwargs)
        self.assertRaises(exception.InvalidInput, h.encrypt, MSG)
        self.assertRaises(exception.InvalidInput, h.decrypt, MSG)
        self.assertRaises(exception.InvalidInput, h.sign, MSG,
                          digest=b'\0' * 32)


class TestRSAHandle(testtools.TestCase):

    def test_sign_verify_all_options(self):
        for name in RSA:
            h = _handle(name)
            pub = serialization.load_pem_public_key(
                h.public_key_pem().encode())
            for pad in (None, 'pss', 'pkcs1v15'):
                for hash_name in (None, 'SHA256', 'SHA384', 'SHA512'):
                    sig = h.sign(MSG, padding=pad, hash=hash_name)
                    self.assertEqual(int(name[4:]) // 8, len(sig))
                    self.assertTrue(h.verify(sig, MSG, padding=pad,
                                             hash=hash_name))
                    self.assertFalse(h.verify(sig, _flip(MSG, 2),
                                              padding=pad, hash=hash_name))
                    d = digest.hash_data(hash_name or 'SHA256', MSG)
                    self.assertTrue(h.verify(sig, digest=d, padding=pad,
                                             hash=hash_name))
                    dsig = h.sign(digest=d, padding=pad, hash=hash_name)
                    self.assertTrue(h.verify(dsig, MSG, padding=pad,
                                             hash=hash_name))
            # The default is PSS with SHA-256 and salt = digest length.
            sig = h.sign(MSG)
            pub.verify(sig, MSG, padding.PSS(
                mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256())

    def test_signature_tamper(self):
        h = _handle('RSA_2048')
        for pad in ('pss', 'pkcs1v15'):
            sig = h.sign(MSG, padding=pad)
            for i in range(0, len(sig), 7):
                self.assertFalse(h.verify(_flip(sig, i), MSG, padding=pad))
            self.assertFalse(h.verify(sig[:-1], MSG, padding=pad))
            other = 'pkcs1v15' if pad == 'pss' else 'pss'
            self.assertFalse(h.verify(sig, MSG, padding=other))

    def test_encrypt_oaep(self):
        for name in RSA:
            h = _handle(name)
            limit = int(name[4:]) // 8 - 66
            for pt in (b'', MSG, b'\xaa' * limit):
                ct = h.encrypt(pt)
                self.assertEqual(pt, h.decrypt(ct))
            self.assertRaises(exception.InvalidInput, h.encrypt,
                              b'\xaa' * (limit + 1))
            ct = h.encrypt(MSG)
            for i in range(0, len(ct), 13):
                self.assertRaises(exception.DecryptionFailed, h.decrypt,
                                  _flip(ct, i))
            self.assertRaises(exception.DecryptionFailed, h.decrypt, ct[1:])

    def test_interop_with_cryptography_oaep(self):
        h = _handle('RSA_2048')
        pub = serialization.load_pem_public_key(h.public_key_pem().encode())
        ct = pub.encrypt(MSG, padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
            label=None))
        self.assertEqual(MSG, h.decrypt(ct))

    def test_bad_options(self):
        h = _handle('RSA_2048')
        bad = [
            (h.sign, (MSG,), {'padding': 'oaep'}),
            (h.sign, (MSG,), {'hash': 'SM3'}),
            (h.sign, (MSG,), {'hash': 'MD5'}),
            (h.sign, (MSG,), {'user_id': b'x'}),
            (h.sign, (MSG,), {'signature_format': 'raw'}),
            (h.sign, (), {'digest': b'\0' * 48}),
            (h.sign, (), {'digest': b'\0' * 32, 'hash': 'SHA512'}),
            (h.encrypt, (MSG, AAD), {}),
            (h.encrypt, (MSG,), {'ciphertext_format': 'der'}),
            (h.mac, (MSG,), {}),
        ]
        for func, args, kwargs in bad:
            self.assertRaises(exception.InvalidInput, func, *args, **kwargs)


class TestDigest(testtools.TestCase):

    def test_unknown_algorithm(self):
        self.assertRaises(exception.InvalidInput, digest.hash_data, 'MD5',
                          b'')

    def test_random(self):
        self.assertEqual(32, len(digest.random_bytes(32)))
        self.assertEqual(b'', digest.random_bytes(0))
        self.assertNotEqual(digest.random_bytes(16), digest.random_bytes(16))
        self.assertRaises(exception.InvalidInput, digest.random_bytes, -1)
        self.assertRaises(exception.InvalidInput, digest.random_bytes, '4')
