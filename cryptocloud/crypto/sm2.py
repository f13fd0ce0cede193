"""SM2 keys (GB/T 32918) over the OpenSSL binding in ``_libcrypto``.

Signatures are DER ``SEQUENCE{r, s}`` by default or raw ``r||s``;
ciphertexts are DER ``SEQUENCE{x, y, C3, C2}`` (GB/T 35276) by default or
raw C1C3C2 / C1C2C3 with an ``04``-prefixed C1.  Key objects are immutable
and may be shared between threads.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes

from cryptocloud.common import exception
from cryptocloud.crypto import _libcrypto
from cryptocloud.crypto import der

DEFAULT_USER_ID = _libcrypto.DEFAULT_USER_ID
# ENTL in Z is the ID length in bits on two bytes, which allows 8191
# bytes; OpenSSL refuses 8191 itself (it checks id_len >= UINT16_MAX / 8),
# so one byte less is the largest ID every operation accepts.
MAX_USER_ID_SIZE = 0xFFFF // 8 - 1

# Curve parameters (GB/T 32918.5) needed to compute Z.
_P = int(
    'FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF', 16)
_A = _P - 3
_B = int(
    '28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93', 16)
_N = int(
    'FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123', 16)
_GX = int(
    '32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7', 16)
_GY = int(
    'BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0', 16)
_CURVE_PART_OF_Z = b''.join(v.to_bytes(32, 'big')
                            for v in (_A, _B, _GX, _GY))

# id-ecPublicKey and the SM2 curve OID, pre-encoded.
_OID_EC_PUBLIC_KEY = bytes.fromhex('06072a8648ce3d0201')
_OID_SM2 = bytes.fromhex('06082a811ccf5501822d')
_ALGORITHM_ID = der.encode_sequence(_OID_EC_PUBLIC_KEY, _OID_SM2)


def sm3(data: bytes) -> bytes:
    """SM3 hash of ``data``."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def _check_user_id(user_id: bytes) -> bytes:
    if not isinstance(user_id, bytes | bytearray):
        raise exception.InvalidInput(reason='user_id must be bytes')
    if len(user_id) > MAX_USER_ID_SIZE:
        raise exception.InvalidInput(
            reason='user_id is longer than %d bytes' % MAX_USER_ID_SIZE)
    return bytes(user_id)


def _check_signature_format(fmt: str) -> None:
    if fmt not in der.SIGNATURE_FORMATS:
        raise exception.InvalidInput(
            reason='signature_format must be one of %s'
            % ', '.join(der.SIGNATURE_FORMATS))


def _signature_to_der(signature: bytes, fmt: str) -> bytes | None:
    """Canonical DER for ``signature`` or None if it cannot be valid."""
    _check_signature_format(fmt)
    try:
        if fmt == 'raw':
            return der.signature_raw_to_der(signature)
        der.decode_signature(signature)
    except exception.InvalidInput:
        return None
    return signature


class SM2PublicKey:
    """An SM2 public key: verify and encrypt."""

    __slots__ = ('_pkey', '_point')

    def __init__(self, pkey: _libcrypto.PKey) -> None:
        # Built by the class methods below; a PKey from _libcrypto.
        self._pkey = pkey
        self._point: bytes | None = None

    @classmethod
    def from_der(cls, data: bytes) -> SM2PublicKey:
        """Load from SubjectPublicKeyInfo DER."""
        return cls(_libcrypto.public_from_spki(bytes(data)))

    @classmethod
    def from_pem(cls, data: bytes | str) -> SM2PublicKey:
        """Load from a PEM ``PUBLIC KEY`` block."""
        if isinstance(data, str):
            data = data.encode('ascii')
        return cls(_libcrypto.public_from_spki(bytes(data), pem=True))

    @classmethod
    def from_point(cls, point: bytes) -> SM2PublicKey:
        """Load from an uncompressed point ``04||x||y`` (65 bytes)."""
        if len(point) != 65 or point[:1] != b'\x04':
            raise exception.InvalidInput(
                reason='an SM2 public point is 04||x||y (65 bytes)')
        spki = der.encode_sequence(_ALGORITHM_ID,
                                   der.encode_bit_string(bytes(point)))
        return cls.from_der(spki)

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo DER."""
        return _libcrypto.public_to_spki(self._pkey)

    def to_pem(self) -> str:
        """SubjectPublicKeyInfo PEM."""
        return _libcrypto.public_to_spki(self._pkey, pem=True).decode('ascii')

    def point(self) -> bytes:
        """The uncompressed public point ``04||x||y``."""
        if self._point is None:
            self._point = _libcrypto.public_point(self._pkey)
        return self._point

    def compute_z(self, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)."""
        user_id = _check_user_id(user_id)
        entl = (8 * len(user_id)).to_bytes(2, 'big')
        return sm3(entl + user_id + _CURVE_PART_OF_Z + self.point()[1:])

    def digest(self, message: bytes,
               user_id: bytes = DEFAULT_USER_ID) -> bytes:
        """e = SM3(Z || message), the value ``sign_digest`` expects."""
        return sm3(self.compute_z(user_id) + message)

    def verify(self, signature: bytes, message: bytes,
               user_id: bytes = DEFAULT_USER_ID,
               signature_format: str = 'der') -> bool:
        """True if ``signature`` is valid for ``message`` and ``user_id``."""
        user_id = _check_user_id(user_id)
        sig = _signature_to_der(bytes(signature), signature_format)
        if sig is None:
            return False
        return _libcrypto.verify(self._pkey, sig, bytes(message), user_id)

    def verify_digest(self, signature: bytes, e: bytes,
                      signature_format: str = 'der') -> bool:
        """True if ``signature`` is valid for the 32-byte digest ``e``."""
        sig = _signature_to_der(bytes(signature), signature_format)
        if sig is None:
            if len(e) != _libcrypto.SM3_DIGEST_SIZE:
                raise exception.InvalidInput(
                    reason='an SM2 digest must be 32 bytes')
            return False
        return _libcrypto.verify_digest(self._pkey, sig, bytes(e))

    def encrypt(self, plaintext: bytes,
                ciphertext_format: str = 'der') -> bytes:
        """Encrypt to this key; output in ``ciphertext_format``."""
        der.check_ciphertext_format(ciphertext_format)
        if not plaintext:
            raise exception.InvalidInput(
                reason='SM2 cannot encrypt an empty plaintext')
        ct = _libcrypto.encrypt(self._pkey, bytes(plaintext))
        if ciphertext_format == 'der':
            return ct
        return der.ciphertext_der_to_raw(ct, ciphertext_format)


class SM2PrivateKey(SM2PublicKey):
    """An SM2 key pair: everything the public key does, plus sign/decrypt."""

    __slots__ = ()

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """A new random key pair."""
        return cls(_libcrypto.generate_sm2())

    @classmethod
    def from_pkcs8_der(cls, data: bytes) -> SM2PrivateKey:
        """Load from unencrypted PKCS#8 DER."""
        return cls(_libcrypto.private_from_pkcs8_der(bytes(data)))

    @classmethod
    def from_private_scalar(cls, d: bytes) -> SM2PrivateKey:
        """Load from the 32-byte private scalar d (1 <= d <= n-2)."""
        value = int.from_bytes(d, 'big')
        if len(d) != 32 or not 1 <= value <= _N - 2:
            raise exception.InvalidInput(
                reason='an SM2 private key is 32 bytes in [1, n-2]')
        # OpenSSL derives the public point when ECPrivateKey omits it.
        ec_private_key = der.encode_sequence(
            der.encode_integer(1), der.encode_octet_string(bytes(d)))
        pkcs8 = der.encode_sequence(der.encode_integer(0), _ALGORITHM_ID,
                                    der.encode_octet_string(ec_private_key))
        return cls.from_pkcs8_der(pkcs8)

    def to_pkcs8_der(self) -> bytes:
        """Unencrypted PKCS#8 DER (secret: handle with care)."""
        return _libcrypto.private_to_pkcs8_der(self._pkey)

    def private_scalar(self) -> bytes:
        """The private scalar d as 32 bytes (secret: handle with care)."""
        return _libcrypto.private_scalar(self._pkey)

    def public_key(self) -> SM2PublicKey:
        """The public half, sharing the same OpenSSL key."""
        return SM2PublicKey(self._pkey)

    def sign(self, message: bytes, user_id: bytes = DEFAULT_USER_ID,
             signature_format: str = 'der') -> bytes:
        """Sign SM3(Z||message) with ``user_id`` in Z."""
        _check_signature_format(signature_format)
        user_id = _check_user_id(user_id)
        sig = _libcrypto.sign(self._pkey, bytes(message), user_id)
        if signature_format == 'raw':
            return der.signature_der_to_raw(sig)
        return sig

    def sign_digest(self, e: bytes, signature_format: str = 'der') -> bytes:
        """Sign a pre-computed e = SM3(Z||M) of 32 bytes."""
        _check_signature_format(signature_format)
        sig = _libcrypto.sign_digest(self._pkey, bytes(e))
        if signature_format == 'raw':
            return der.signature_der_to_raw(sig)
        return sig

    def decrypt(self, ciphertext: bytes,
                ciphertext_format: str = 'der') -> bytes:
        """Decrypt; raises DecryptionFailed on any failure."""
        der.check_ciphertext_format(ciphertext_format)
        ct = der.ciphertext_raw_to_der(bytes(ciphertext), ciphertext_format)
        return _libcrypto.decrypt(self._pkey, ct)
