"""Key algorithms the vHSM offers, and handles that use loaded keys.

``get_spec(name)`` gives a :class:`KeySpec`; ``spec.generate()`` makes the
serialized secret material that the vHSM wraps and stores, and
``spec.load(material)`` gives a :class:`KeyHandle` that does the
cryptography.  Handles are immutable and safe to share between threads.

Whether a key's chosen *purpose* allows an operation is the caller's check;
a handle only refuses operations its algorithm cannot do at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography import exceptions as crypto_exc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cryptocloud.common import exception
from cryptocloud.crypto import der
from cryptocloud.crypto import sm2

PURPOSE_ENCRYPT = 'encrypt'
PURPOSE_SIGN = 'sign'
PURPOSE_MAC = 'mac'

GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16
BLOCK_SIZE = 16
RSA_PUBLIC_EXPONENT = 65537

_AEAD_HINT = 'associated data needs an AEAD key such as SM4_GCM'
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    'SHA256': hashes.SHA256,
    'SHA384': hashes.SHA384,
    'SHA512': hashes.SHA512,
}
_RSA_PADDINGS = ('pss', 'pkcs1v15')


def _invalid(reason: str) -> exception.InvalidInput:
    return exception.InvalidInput(reason=reason)


def _option(value, name: str, choices: tuple[str, ...], default: str,
            algorithm: str) -> str:
    """Normalise a string option and check it against ``choices``."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise _invalid('%s must be a string' % name)
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise _invalid('%s for %s must be one of %s'
                   % (name, algorithm, ', '.join(choices)))


def _no_options(algorithm: str, **options) -> None:
    """Refuse options that mean nothing for ``algorithm``."""
    for name, value in options.items():
        if value is not None:
            raise _invalid('%s does not apply to %s keys' % (name, algorithm))


def _no_aad(algorithm: str, aad: bytes | None, hint: str | None = None):
    if aad:
        raise _invalid(hint or 'associated data is not supported by %s keys'
                       % algorithm)


def _message_or_digest(message, digest) -> None:
    if (message is None) == (digest is None):
        raise _invalid('give exactly one of message and digest')


class KeyHandle:
    """A loaded key; every operation it cannot do raises InvalidInput."""

    def __init__(self, spec: KeySpec, material: bytes) -> None:
        self.spec = spec
        self._material = bytes(material)

    def _unsupported(self, operation: str) -> exception.InvalidInput:
        return _invalid('%s keys cannot be used to %s'
                        % (self.spec.name, operation))

    def encrypt(self, plaintext: bytes, aad: bytes | None = None, *,
                ciphertext_format: str | None = None) -> bytes:
        """Encrypt ``plaintext``."""
        raise self._unsupported('encrypt')

    def decrypt(self, ciphertext: bytes, aad: bytes | None = None, *,
                ciphertext_format: str | None = None) -> bytes:
        """Decrypt; raises DecryptionFailed on any failure."""
        raise self._unsupported('decrypt')

    def sign(self, message: bytes | None = None, *,
             digest: bytes | None = None, user_id: bytes | None = None,
             signature_format: str | None = None,
             padding: str | None = None, hash: str | None = None) -> bytes:
        """Sign ``message`` or a pre-computed ``digest``."""
        raise self._unsupported('sign')

    def verify(self, signature: bytes, message: bytes | None = None, *,
               digest: bytes | None = None, user_id: bytes | None = None,
               signature_format: str | None = None,
               padding: str | None = None, hash: str | None = None) -> bool:
        """True if the signature is valid; a malformed one is just False."""
        raise self._unsupported('verify')

    def mac(self, data: bytes) -> bytes:
        """MAC of ``data``."""
        raise self._unsupported('compute a MAC')

    def verify_mac(self, data: bytes, mac: bytes) -> bool:
        """Constant-time check of ``mac`` over ``data``."""
        raise self._unsupported('verify a MAC')

    def public_key_pem(self) -> str | None:
        """The public key as PEM, or None for symmetric keys."""
        return None

    def material(self) -> bytes:
        """The serialized secret material (for exportable keys)."""
        return self._material


# -- symmetric ---------------------------------------------------------------

class _SymmetricHandle(KeyHandle):

    def _check_options(self, ciphertext_format) -> None:
        _no_options(self.spec.name, ciphertext_format=ciphertext_format)


class _GCMHandle(_SymmetricHandle):
    """nonce(12) || ciphertext || tag(16), with optional AAD."""

    def __init__(self, spec: KeySpec, material: bytes) -> None:
        super().__init__(spec, material)
        self._aesgcm = AESGCM(material) if spec.name == 'AES_256_GCM' else None

    def encrypt(self, plaintext, aad=None, *, ciphertext_format=None):
        self._check_options(ciphertext_format)
        nonce = os.urandom(GCM_NONCE_SIZE)
        if self._aesgcm is not None:
            return nonce + self._aesgcm.encrypt(nonce, plaintext, aad or None)
        enc = Cipher(algorithms.SM4(self._material),
                     modes.GCM(nonce)).encryptor()
        if aad:
            enc.authenticate_additional_data(aad)
        body = enc.update(plaintext) + enc.finalize()
        return nonce + body + enc.tag

    def decrypt(self, ciphertext, aad=None, *, ciphertext_format=None):
        self._check_options(ciphertext_format)
        if len(ciphertext) < GCM_NONCE_SIZE + GCM_TAG_SIZE:
            raise exception.DecryptionFailed()
        nonce = ciphertext[:GCM_NONCE_SIZE]
        try:
            if self._aesgcm is not None:
                return self._aesgcm.decrypt(
                    nonce, ciphertext[GCM_NONCE_SIZE:], aad or None)
            tag = ciphertext[-GCM_TAG_SIZE:]
            dec = Cipher(algorithms.SM4(self._material),
                         modes.GCM(nonce, tag)).decryptor()
            if aad:
                dec.authenticate_additional_data(aad)
            body = ciphertext[GCM_NONCE_SIZE:-GCM_TAG_SIZE]
            return dec.update(body) + dec.finalize()
        except (crypto_exc.InvalidTag, ValueError):
            raise exception.DecryptionFailed() from None


class _CBCHandle(_SymmetricHandle):
    """iv(16) || ciphertext, PKCS#7 padded; no integrity protection."""

    def encrypt(self, plaintext, aad=None, *, ciphertext_format=None):
        self._check_options(ciphertext_format)
        _no_aad(self.spec.name, aad, _AEAD_HINT)
        iv = os.urandom(BLOCK_SIZE)
        padder = sym_padding.PKCS7(8 * BLOCK_SIZE).padder()
        padded = padder.update(plaintext) + padder.finalize()
        enc = Cipher(algorithms.SM4(self._material), modes.CBC(iv)).encryptor()
        return iv + enc.update(padded) + enc.finalize()

    def decrypt(self, ciphertext, aad=None, *, ciphertext_format=None):
        self._check_options(ciphertext_format)
        _no_aad(self.spec.name, aad, _AEAD_HINT)
        if len(ciphertext) < 2 * BLOCK_SIZE or len(ciphertext) % BLOCK_SIZE:
            raise exception.DecryptionFailed()
        iv = ciphertext[:BLOCK_SIZE]
        try:
            dec = Cipher(algorithms.SM4(self._material),
                         modes.CBC(iv)).decryptor()
            padded = dec.update(ciphertext[BLOCK_SIZE:]) + dec.finalize()
            unpadder = sym_padding.PKCS7(8 * BLOCK_SIZE).unpadder()
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise exception.DecryptionFailed() from None


class _CTRHandle(_SymmetricHandle):
    """nonce(16) || ciphertext; no integrity protection."""

    def encrypt(self, plaintext, aad=None, *, ciphertext_format=None):
        self._check_options(ciphertext_format)
        _no_aad(self.spec.name, aad, _AEAD_HINT)
        nonce = os.urandom(BLOCK_SIZE)
        enc = Cipher(algorithms.SM4(self._material),
                     modes.CTR(nonce)).encryptor()
        return nonce + enc.update(plaintext) + enc.finalize()

    def decrypt(self, ciphertext, aad=None, *, ciphertext_format=None):
        self._check_options(ciphertext_format)
        _no_aad(self.spec.name, aad, _AEAD_HINT)
        if len(ciphertext) < BLOCK_SIZE:
            raise exception.DecryptionFailed()
        dec = Cipher(algorithms.SM4(self._material),
                     modes.CTR(ciphertext[:BLOCK_SIZE])).decryptor()
        return dec.update(ciphertext[BLOCK_SIZE:]) + dec.finalize()


class _HMACHandle(KeyHandle):

    def __init__(self, spec: KeySpec, material: bytes) -> None:
        super().__init__(spec, material)
        self._hash = spec.hash_factory

    def _hmac(self, data: bytes) -> hmac.HMAC:
        h = hmac.HMAC(self._material, self._hash())
        h.update(data)
        return h

    def mac(self, data):
        return self._hmac(data).finalize()

    def verify_mac(self, data, mac):
        try:
            # HMAC.verify compares in constant time.
            self._hmac(data).verify(mac)
        except crypto_exc.InvalidSignature:
            return False
        return True


# -- asymmetric --------------------------------------------------------------

def _pem(public_key) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode('ascii')


class _SM2Handle(KeyHandle):

    def __init__(self, spec: KeySpec, material: bytes) -> None:
        super().__init__(spec, material)
        self._key = sm2.SM2PrivateKey.from_pkcs8_der(material)

    def encrypt(self, plaintext, aad=None, *, ciphertext_format=None):
        _no_aad(self.spec.name, aad)
        fmt = _option(ciphertext_format, 'ciphertext_format',
                      der.CIPHERTEXT_FORMATS, 'der', self.spec.name)
        return self._key.encrypt(plaintext, fmt)

    def decrypt(self, ciphertext, aad=None, *, ciphertext_format=None):
        _no_aad(self.spec.name, aad)
        fmt = _option(ciphertext_format, 'ciphertext_format',
                      der.CIPHERTEXT_FORMATS, 'der', self.spec.name)
        return self._key.decrypt(ciphertext, fmt)

    def _sign_options(self, message, digest, user_id, signature_format,
                      padding, hash):
        _message_or_digest(message, digest)
        _no_options(self.spec.name, padding=padding)
        # SM2 signatures always hash with SM3; naming it is harmless.
        _option(hash, 'hash', ('SM3',), 'SM3', self.spec.name)
        if digest is not None:
            if user_id is not None:
                raise _invalid('user_id cannot be combined with digest: '
                               'the digest e = SM3(Z||M) already includes '
                               'the user ID')
            if len(digest) != 32:
                raise _invalid('an SM2 digest must be 32 bytes')
        fmt = _option(signature_format, 'signature_format',
                      der.SIGNATURE_FORMATS, 'der', self.spec.name)
        return fmt, (sm2.DEFAULT_USER_ID if user_id is None else user_id)

    def sign(self, message=None, *, digest=None, user_id=None,
             signature_format=None, padding=None, hash=None):
        fmt, user_id = self._sign_options(message, digest, user_id,
                                          signature_format, padding, hash)
        if digest is not None:
            return self._key.sign_digest(digest, fmt)
        return self._key.sign(message, user_id, fmt)

    def verify(self, signature, message=None, *, digest=None, user_id=None,
               signature_format=None, padding=None, hash=None):
        fmt, user_id = self._sign_options(message, digest, user_id,
                                          signature_format, padding, hash)
        if digest is not None:
            return self._key.verify_digest(signature, digest, fmt)
        return self._key.verify(signature, message, user_id, fmt)

    def public_key_pem(self):
        return self._key.to_pem()


class _ECHandle(KeyHandle):
    """ECDSA with the hash fixed by the curve; DER signatures."""

    def __init__(self, spec: KeySpec, material: bytes) -> None:
        super().__init__(spec, material)
        key = _load_private(spec, material)
        if (not isinstance(key, ec.EllipticCurvePrivateKey)
                or key.curve.name != spec.curve().name):
            raise _invalid('the key material is not a %s private key'
                           % spec.name)
        self._key = key
        self._public = key.public_key()

    def _algorithm(self, message, digest, user_id, signature_format,
                   padding, hash) -> ec.ECDSA:
        _message_or_digest(message, digest)
        _no_options(self.spec.name, user_id=user_id, padding=padding)
        hash_cls = self.spec.hash_factory
        _option(hash, 'hash', (hash_cls.name.upper(),),
                hash_cls.name.upper(), self.spec.name)
        _option(signature_format, 'signature_format', ('der',), 'der',
                self.spec.name)
        if digest is None:
            return ec.ECDSA(hash_cls())
        if len(digest) != hash_cls.digest_size:
            raise _invalid('a %s digest must be %d bytes'
                           % (self.spec.name, hash_cls.digest_size))
        return ec.ECDSA(asym_utils.Prehashed(hash_cls()))

    def sign(self, message=None, *, digest=None, user_id=None,
             signature_format=None, padding=None, hash=None):
        algorithm = self._algorithm(message, digest, user_id,
                                    signature_format, padding, hash)
        data = message if digest is None else digest
        return self._key.sign(data, algorithm)

    def verify(self, signature, message=None, *, digest=None, user_id=None,
               signature_format=None, padding=None, hash=None):
        algorithm = self._algorithm(message, digest, user_id,
                                    signature_format, padding, hash)
        data = message if digest is None else digest
        try:
            self._public.verify(signature, data, algorithm)
        except (crypto_exc.InvalidSignature, ValueError):
            return False
        return True

    def public_key_pem(self):
        return _pem(self._public)


class _RSAHandle(KeyHandle):
    """RSA: PSS or PKCS#1 v1.5 signatures, OAEP-SHA-256 encryption."""

    def __init__(self, spec: KeySpec, material: bytes) -> None:
        super().__init__(spec, material)
        key = _load_private(spec, material)
        if (not isinstance(key, rsa.RSAPrivateKey)
                or key.key_size != spec.key_size):
            raise _invalid('the key material is not a %s private key'
                           % spec.name)
        self._key = key
        self._public = key.public_key()

    @staticmethod
    def _oaep() -> asym_padding.OAEP:
        return asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA256()),
                                 algorithm=hashes.SHA256(), label=None)

    def encrypt(self, plaintext, aad=None, *, ciphertext_format=None):
        _no_aad(self.spec.name, aad)
        _no_options(self.spec.name, ciphertext_format=ciphertext_format)
        limit = self.spec.key_size // 8 - 2 * hashes.SHA256.digest_size - 2
        if len(plaintext) > limit:
            raise _invalid('%s with OAEP-SHA-256 encrypts at most %d bytes'
                           % (self.spec.name, limit))
        return self._public.encrypt(plaintext, self._oaep())

    def decrypt(self, ciphertext, aad=None, *, ciphertext_format=None):
        _no_aad(self.spec.name, aad)
        _no_options(self.spec.name, ciphertext_format=ciphertext_format)
        try:
            return self._key.decrypt(ciphertext, self._oaep())
        except ValueError:
            raise exception.DecryptionFailed() from None

    def _params(self, message, digest, user_id, signature_format, padding,
                hash, for_verify: bool):
        _message_or_digest(message, digest)
        _no_options(self.spec.name, user_id=user_id)
        _option(signature_format, 'signature_format', ('der',), 'der',
                self.spec.name)
        pad_name = _option(padding, 'padding', _RSA_PADDINGS, 'pss',
                           self.spec.name)
        hash_name = _option(hash, 'hash', tuple(_HASHES), 'SHA256',
                            self.spec.name)
        hash_obj = _HASHES[hash_name]()
        if pad_name == 'pss':
            # Sign with salt = digest length (RFC 8017's usual choice) but
            # verify any salt length, as other PSS signers use the maximum.
            salt = (asym_padding.PSS.AUTO if for_verify
                    else asym_padding.PSS.DIGEST_LENGTH)
            pad = asym_padding.PSS(mgf=asym_padding.MGF1(hash_obj),
                                   salt_length=salt)
        else:
            pad = asym_padding.PKCS1v15()
        if digest is None:
            return message, pad, hash_obj
        if len(digest) != hash_obj.digest_size:
            raise _invalid('a %s digest must be %d bytes'
                           % (hash_name, hash_obj.digest_size))
        return digest, pad, asym_utils.Prehashed(hash_obj)

    def sign(self, message=None, *, digest=None, user_id=None,
             signature_format=None, padding=None, hash=None):
        data, pad, algorithm = self._params(
            message, digest, user_id, signature_format, padding, hash,
            for_verify=False)
        return self._key.sign(data, pad, algorithm)

    def verify(self, signature, message=None, *, digest=None, user_id=None,
               signature_format=None, padding=None, hash=None):
        data, pad, algorithm = self._params(
            message, digest, user_id, signature_format, padding, hash,
            for_verify=True)
        try:
            self._public.verify(signature, data, pad, algorithm)
        except (crypto_exc.InvalidSignature, ValueError):
            return False
        return True

    def public_key_pem(self):
        return _pem(self._public)


def _load_private(spec: KeySpec, material: bytes):
    try:
        return serialization.load_der_private_key(material, password=None)
    except (ValueError, TypeError, crypto_exc.UnsupportedAlgorithm):
        raise _invalid('the key material is not a %s private key'
                       % spec.name) from None


def _private_der(key) -> bytes:
    return key.private_bytes(serialization.Encoding.DER,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# -- specs -------------------------------------------------------------------

class KeySpec:
    """What an algorithm is for, and how to make and load its keys."""

    def __init__(self, name: str, purposes: tuple[str, ...],
                 default_purpose: str, asymmetric: bool,
                 handle_cls: type[KeyHandle], key_size: int,
                 generator: Callable[[KeySpec], bytes],
                 hash_factory: type[hashes.HashAlgorithm] | None = None,
                 curve: type[ec.EllipticCurve] | None = None) -> None:
        self.name = name
        self.purposes = purposes
        self.default_purpose = default_purpose
        self.asymmetric = asymmetric
        # Symmetric: key length in bytes; RSA: modulus bits.
        self.key_size = key_size
        self.hash_factory = hash_factory
        self.curve = curve
        self._handle_cls = handle_cls
        self._generator = generator

    def __repr__(self) -> str:
        return 'KeySpec(%s)' % self.name

    def generate(self) -> bytes:
        """New serialized secret material for this algorithm."""
        return self._generator(self)

    def load(self, material: bytes) -> KeyHandle:
        """A handle for ``material``; InvalidInput if it does not fit."""
        if not isinstance(material, bytes | bytearray):
            raise _invalid('key material must be bytes')
        if not self.asymmetric and len(material) != self.key_size:
            raise _invalid('%s key material must be %d bytes'
                           % (self.name, self.key_size))
        return self._handle_cls(self, bytes(material))


def _gen_random(spec: KeySpec) -> bytes:
    return os.urandom(spec.key_size)


def _gen_sm2(spec: KeySpec) -> bytes:
    return sm2.SM2PrivateKey.generate().to_pkcs8_der()


def _gen_ec(spec: KeySpec) -> bytes:
    return _private_der(ec.generate_private_key(spec.curve()))


def _gen_rsa(spec: KeySpec) -> bytes:
    return _private_der(rsa.generate_private_key(
        public_exponent=RSA_PUBLIC_EXPONENT, key_size=spec.key_size))


def _build() -> dict[str, KeySpec]:
    enc = (PURPOSE_ENCRYPT,)
    sign_enc = (PURPOSE_SIGN, PURPOSE_ENCRYPT)
    specs = [
        KeySpec('SM4_GCM', enc, PURPOSE_ENCRYPT, False, _GCMHandle, 16,
                _gen_random),
        KeySpec('SM4_CBC', enc, PURPOSE_ENCRYPT, False, _CBCHandle, 16,
                _gen_random),
        KeySpec('SM4_CTR', enc, PURPOSE_ENCRYPT, False, _CTRHandle, 16,
                _gen_random),
        KeySpec('AES_256_GCM', enc, PURPOSE_ENCRYPT, False, _GCMHandle, 32,
                _gen_random),
        KeySpec('HMAC_SM3', (PURPOSE_MAC,), PURPOSE_MAC, False, _HMACHandle,
                32, _gen_random, hash_factory=hashes.SM3),
        KeySpec('HMAC_SHA256', (PURPOSE_MAC,), PURPOSE_MAC, False,
                _HMACHandle, 32, _gen_random, hash_factory=hashes.SHA256),
        KeySpec('SM2', sign_enc, PURPOSE_SIGN, True, _SM2Handle, 256,
                _gen_sm2),
        KeySpec('EC_P256', (PURPOSE_SIGN,), PURPOSE_SIGN, True, _ECHandle,
                256, _gen_ec, hash_factory=hashes.SHA256,
                curve=ec.SECP256R1),
        KeySpec('EC_P384', (PURPOSE_SIGN,), PURPOSE_SIGN, True, _ECHandle,
                384, _gen_ec, hash_factory=hashes.SHA384,
                curve=ec.SECP384R1),
    ]
    for bits in (2048, 3072, 4096):
        specs.append(KeySpec('RSA_%d' % bits, sign_enc, PURPOSE_SIGN, True,
                             _RSAHandle, bits, _gen_rsa))
    return {spec.name: spec for spec in specs}


ALGORITHMS: dict[str, KeySpec] = _build()


def get_spec(algorithm: str) -> KeySpec:
    """The spec for ``algorithm``; InvalidInput naming the allowed ones."""
    try:
        return ALGORITHMS[algorithm]
    except (KeyError, TypeError):
        raise _invalid('algorithm must be one of %s'
                       % ', '.join(ALGORITHMS)) from None
