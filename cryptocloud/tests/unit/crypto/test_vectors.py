"""Published test vectors for SM3, SM4 and HMAC-SM3."""

import shutil
import subprocess

import testtools
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import modes

from cryptocloud.crypto import digest
from cryptocloud.crypto import keyspec

# GB/T 32905-2016 appendix A.
SM3_ABC = '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0'
SM3_ABCD16 = ('debe9ff92275b8a138604889c18e5a4d'
              '6fdb70e5387e5765293dcba39c0c5732')

# GB/T 32907-2016 appendix A.1.
SM4_KEY = bytes.fromhex('0123456789abcdeffedcba9876543210')
SM4_ECB_CT = bytes.fromhex('681edf34d206965e86b3e94f536e4246')

# RFC 8998 appendix A.1 (SM4-GCM).
RFC8998_IV = bytes.fromhex('00001234567800000000abcd')
RFC8998_PT = bytes.fromhex(
    'aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd'
    'eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa')
RFC8998_AAD = bytes.fromhex('feedfacedeadbeeffeedfacedeadbeefabaddad2')
RFC8998_CT = bytes.fromhex(
    '17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735'
    'd82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d')
RFC8998_TAG = bytes.fromhex('83de3541e4c2b58177e065a9bf7b62ec')

# HMAC-SM3 of b'abc' under key 00..1f, computed with
# `openssl mac -digest SM3 -macopt hexkey:... HMAC` and checked again below.
HMAC_KEY = bytes(range(32))
HMAC_SM3_ABC = bytes.fromhex(
    'a8f95cf26f204957e7ca73c9602a25dda35f168b28103b51dfc968c810416b63')


class TestSM3(testtools.TestCase):

    def test_abc(self):
        self.assertEqual(SM3_ABC, digest.hash_data('SM3', b'abc').hex())

    def test_abcd_times_16(self):
        self.assertEqual(SM3_ABCD16,
                         digest.hash_data('SM3', b'abcd' * 16).hex())

    def test_sha_family(self):
        self.assertEqual(
            'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
            digest.hash_data('SHA256', b'abc').hex())
        self.assertEqual(48, len(digest.hash_data('SHA384', b'')))
        self.assertEqual(64, len(digest.hash_data('SHA512', b'')))


class TestSM4(testtools.TestCase):

    def test_ecb_single_block(self):
        # A known-answer test of the bare block cipher needs ECB.
        mode = modes.ECB()  # noqa: S305
        enc = Cipher(algorithms.SM4(SM4_KEY), mode).encryptor()
        self.assertEqual(SM4_ECB_CT, enc.update(SM4_KEY) + enc.finalize())

    def test_rfc8998_gcm_through_handle(self):
        handle = keyspec.get_spec('SM4_GCM').load(SM4_KEY)
        blob = RFC8998_IV + RFC8998_CT + RFC8998_TAG
        self.assertEqual(RFC8998_PT, handle.decrypt(blob, RFC8998_AAD))

    def test_rfc8998_gcm_encrypt_matches(self):
        enc = Cipher(algorithms.SM4(SM4_KEY),
                     modes.GCM(RFC8998_IV)).encryptor()
        enc.authenticate_additional_data(RFC8998_AAD)
        ct = enc.update(RFC8998_PT) + enc.finalize()
        self.assertEqual(RFC8998_CT, ct)
        self.assertEqual(RFC8998_TAG, enc.tag)


class TestHMACSM3(testtools.TestCase):

    def test_fixed_vector(self):
        handle = keyspec.get_spec('HMAC_SM3').load(HMAC_KEY)
        self.assertEqual(HMAC_SM3_ABC, handle.mac(b'abc'))
        self.assertTrue(handle.verify_mac(b'abc', HMAC_SM3_ABC))

    def test_against_openssl_command_line(self):
        if shutil.which('openssl') is None:
            self.skipTest('openssl command line not installed')
        data = b'cryptocloud hmac cross-check' * 7
        out = subprocess.run(
            ['openssl', 'mac', '-digest', 'SM3', '-macopt',
             'hexkey:' + HMAC_KEY.hex(), 'HMAC'],
            input=data, capture_output=True, check=True).stdout
        handle = keyspec.get_spec('HMAC_SM3').load(HMAC_KEY)
        self.assertEqual(out.strip().decode().lower(),
                         handle.mac(data).hex())
