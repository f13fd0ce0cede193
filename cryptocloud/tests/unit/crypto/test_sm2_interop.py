"""SM2 against two independent implementations: openssl(1) and gmssl.

gmssl is pure Python and has known defects (no C3 check on decrypt, an
``lstrip('04')`` on public keys), so the tests hand it the public key
without the ``04`` prefix and never rely on its decrypt to detect tampering.
"""

import os
import shutil
import subprocess
import tempfile

import testtools
from gmssl import sm2 as gm_sm2
from gmssl import sm3 as gm_sm3

from cryptocloud.crypto import sm2

ALT_ID = b'alice@example.com'
MESSAGE = b'message digest for interop \x00\xff' * 3


def _gm(key: sm2.SM2PrivateKey, mode: int = 1) -> gm_sm2.CryptSM2:
    gm = gm_sm2.CryptSM2(private_key=key.private_scalar().hex(),
                         public_key='00', mode=mode)
    # Set directly: the constructor's lstrip('04') mangles some keys.
    gm.public_key = key.point()[1:].hex()
    return gm


def _gm_sign(gm: gm_sm2.CryptSM2, e: bytes) -> bytes:
    while True:  # gmssl returns None for the rare unusable nonce
        sig = gm.sign(e, os.urandom(32).hex())
        if sig is not None:
            return bytes.fromhex(sig)


def _gm_z(key: sm2.SM2PublicKey, user_id: bytes) -> bytes:
    """Z computed with gmssl's own SM3 and curve table."""
    t = gm_sm2.default_ecc_table
    data = ((8 * len(user_id)).to_bytes(2, 'big') + user_id
            + bytes.fromhex(t['a'] + t['b'] + t['g']) + key.point()[1:])
    return bytes.fromhex(gm_sm3.sm3_hash(list(data)))


class TestGmssl(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.key = sm2.SM2PrivateKey.generate()

    def test_z_matches_gmssl(self):
        gm = _gm(self.key)
        e = bytes.fromhex(gm._sm3_z(MESSAGE))
        self.assertEqual(e, self.key.digest(MESSAGE))
        self.assertEqual(_gm_z(self.key, ALT_ID),
                         self.key.compute_z(ALT_ID))

    def test_our_signature_verifies_with_gmssl(self):
        gm = _gm(self.key)
        sig = self.key.sign(MESSAGE, signature_format='raw')
        self.assertTrue(gm.verify_with_sm3(sig.hex(), MESSAGE))
        self.assertFalse(gm.verify_with_sm3(sig.hex(), MESSAGE + b'x'))

    def test_our_signature_with_other_id_verifies_with_gmssl(self):
        gm = _gm(self.key)
        sig = self.key.sign(MESSAGE, ALT_ID, signature_format='raw')
        e_alt = gm_sm3.sm3_hash(list(_gm_z(self.key, ALT_ID) + MESSAGE))
        self.assertTrue(gm.verify(sig.hex(), bytes.fromhex(e_alt)))
        self.assertFalse(gm.verify_with_sm3(sig.hex(), MESSAGE))

    def test_gmssl_signature_verifies_with_ours(self):
        gm = _gm(self.key)
        sig = bytes.fromhex(gm.sign_with_sm3(MESSAGE, os.urandom(32).hex()))
        pub = sm2.SM2PublicKey.from_point(self.key.point())
        self.assertTrue(pub.verify(sig, MESSAGE, signature_format='raw'))
        self.assertFalse(pub.verify(sig, MESSAGE, ALT_ID,
                                    signature_format='raw'))

    def test_gmssl_digest_signature_verifies_with_ours(self):
        gm = _gm(self.key)
        e = self.key.digest(MESSAGE, ALT_ID)
        sig = _gm_sign(gm, e)
        self.assertTrue(self.key.verify_digest(sig, e, 'raw'))
        self.assertTrue(self.key.verify(sig, MESSAGE, ALT_ID, 'raw'))
        self.assertFalse(self.key.verify(sig, MESSAGE, signature_format='raw'))

    def test_our_ciphertext_decrypts_with_gmssl(self):
        for fmt, mode in (('c1c3c2', 1), ('c1c2c3', 0)):
            ct = self.key.encrypt(MESSAGE, fmt)
            self.assertEqual(b'\x04', ct[:1])
            self.assertEqual(MESSAGE, _gm(self.key, mode).decrypt(ct[1:]))

    def test_gmssl_ciphertext_decrypts_with_ours(self):
        for fmt, mode in (('c1c3c2', 1), ('c1c2c3', 0)):
            ct = _gm(self.key, mode).encrypt(MESSAGE)
            self.assertEqual(MESSAGE, self.key.decrypt(b'\x04' + ct, fmt))

    def test_scalar_import_matches(self):
        again = sm2.SM2PrivateKey.from_private_scalar(
            self.key.private_scalar())
        self.assertEqual(self.key.point(), again.point())
        self.assertEqual(self.key.to_der(), again.to_der())


class TestOpenSSLCommandLine(testtools.TestCase):

    def setUp(self):
        super().setUp()
        if shutil.which('openssl') is None:
            self.skipTest('openssl command line not installed')
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.msg = self._write('msg', MESSAGE)

    def _write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def _openssl(self, *args, check=True):
        return subprocess.run(['openssl', *args], capture_output=True,
                              check=check)

    def _our_key_files(self):
        key = sm2.SM2PrivateKey.generate()
        priv = self._write('ours.der', key.to_pkcs8_der())
        pub = self._write('ours_pub.pem', key.to_pem().encode())
        return key, priv, pub

    def _their_key(self):
        pem = os.path.join(self.tmp, 'theirs.pem')
        self._openssl('genpkey', '-algorithm', 'SM2', '-out', pem)
        der = self._openssl('pkey', '-in', pem, '-outform', 'DER',
                            '-pubout').stdout
        p8 = self._openssl('pkcs8', '-topk8', '-nocrypt', '-in', pem,
                           '-outform', 'DER').stdout
        return pem, sm2.SM2PublicKey.from_der(der), p8

    def _verify_cli(self, pub_pem, sig, distid):
        sig_path = self._write('sig', sig)
        result = self._openssl(
            'pkeyutl', '-verify', '-pubin', '-inkey', pub_pem, '-rawin',
            '-digest', 'sm3', '-pkeyopt', 'distid:' + distid, '-in',
            self.msg, '-sigfile', sig_path, check=False)
        return result.returncode == 0

    def test_our_signature_verifies_with_openssl(self):
        key, _, pub = self._our_key_files()
        sig = key.sign(MESSAGE)
        self.assertTrue(self._verify_cli(pub, sig, '1234567812345678'))
        self.assertFalse(self._verify_cli(pub, sig, ALT_ID.decode()))
        sig = key.sign(MESSAGE, ALT_ID)
        self.assertTrue(self._verify_cli(pub, sig, ALT_ID.decode()))
        self.assertFalse(self._verify_cli(pub, sig, '1234567812345678'))

    def test_our_digest_signature_verifies_with_openssl(self):
        key, _, pub = self._our_key_files()
        sig = key.sign_digest(key.digest(MESSAGE, ALT_ID))
        self.assertTrue(self._verify_cli(pub, sig, ALT_ID.decode()))

    def test_openssl_signature_verifies_with_ours(self):
        pem, pub, p8 = self._their_key()
        for user_id in (b'1234567812345678', ALT_ID):
            sig = self._openssl(
                'pkeyutl', '-sign', '-inkey', pem, '-rawin', '-digest',
                'sm3', '-pkeyopt', 'distid:' + user_id.decode(), '-in',
                self.msg).stdout
            self.assertTrue(pub.verify(sig, MESSAGE, user_id))
            other = ALT_ID if user_id != ALT_ID else b'1234567812345678'
            self.assertFalse(pub.verify(sig, MESSAGE, other))
            self.assertFalse(pub.verify(sig, MESSAGE + b'!', user_id))
        # Their private key loads as an SM2 key and signs.
        theirs = sm2.SM2PrivateKey.from_pkcs8_der(p8)
        self.assertEqual(pub.point(), theirs.point())
        self.assertTrue(pub.verify(theirs.sign(MESSAGE), MESSAGE))

    def test_our_ciphertext_decrypts_with_openssl(self):
        key, priv, _ = self._our_key_files()
        ct = self._write('ct', key.encrypt(MESSAGE))
        out = self._openssl('pkeyutl', '-decrypt', '-keyform', 'DER',
                            '-inkey', priv, '-in', ct).stdout
        self.assertEqual(MESSAGE, out)

    def test_openssl_ciphertext_decrypts_with_ours(self):
        key, _, pub = self._our_key_files()
        ct = self._openssl('pkeyutl', '-encrypt', '-pubin', '-inkey', pub,
                           '-in', self.msg).stdout
        self.assertEqual(MESSAGE, key.decrypt(ct))

    def test_openssl_reads_our_private_key(self):
        key, priv, _ = self._our_key_files()
        pub_pem = self._openssl('pkey', '-inform', 'DER', '-in', priv,
                                '-pubout').stdout
        self.assertEqual(key.to_pem().encode(), pub_pem)
