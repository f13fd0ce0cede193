"""The vHSM key hierarchy: master key -> domain key -> tenant key blobs.

The operator's master key seals the group's domain key; the domain key wraps
every tenant key stored in the keystore.  Both layers use AES-256-GCM in
the same blob layout::

    version (1 byte) | algorithm (1 byte, 1 = AES-256-GCM) | nonce (12) |
    ciphertext || tag (16)

The header bytes are part of the AAD, so a blob cannot be relabelled, and
the caller's AAD binds each blob to where it belongs (the group for a sealed
domain key, the key row for a tenant key) so blobs cannot be swapped.
"""

from __future__ import annotations

import http
import os
import struct

from cryptography import exceptions as crypto_exc
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cryptocloud.common import exception

BLOB_VERSION = 1
ALG_AES_256_GCM = 1
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
_HEADER_SIZE = 2

_SEAL_LABEL = b'cryptocloud/seal-domain-key/v1'
_WRAP_LABEL = b'cryptocloud/wrap-tenant-key/v1'


class KeyBlobAuthenticationError(exception.DecryptionFailed):
    """A stored key blob failed authentication: the keystore is damaged.

    A subclass of DecryptionFailed so callers handle it alike, but a server
    error: the tenant's request was fine, our stored data was not.
    """

    code = http.HTTPStatus.INTERNAL_SERVER_ERROR
    msg_fmt = 'stored key blob failed authentication'


def _fields(*values: bytes) -> bytes:
    # Length-prefixed, so ('ab', 'c') and ('a', 'bc') never collide.
    return b''.join(struct.pack('>I', len(v)) + v for v in values)


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise exception.ConfigurationError(
            reason='the %s must be %d bytes' % (what, KEY_SIZE))


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    header = bytes([BLOB_VERSION, ALG_AES_256_GCM])
    nonce = os.urandom(NONCE_SIZE)
    return header + nonce + AESGCM(bytes(key)).encrypt(
        nonce, plaintext, header + aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes | None:
    """Plaintext of ``blob`` or None if it is malformed or inauthentic."""
    if (len(blob) < _HEADER_SIZE + NONCE_SIZE + TAG_SIZE
            or blob[0] != BLOB_VERSION or blob[1] != ALG_AES_256_GCM):
        return None
    header = bytes(blob[:_HEADER_SIZE])
    nonce = bytes(blob[_HEADER_SIZE:_HEADER_SIZE + NONCE_SIZE])
    try:
        return AESGCM(bytes(key)).decrypt(
            nonce, bytes(blob[_HEADER_SIZE + NONCE_SIZE:]), header + aad)
    except crypto_exc.InvalidTag:
        return None


def _seal_aad(group_id: str) -> bytes:
    return _SEAL_LABEL + _fields(group_id.encode('utf-8'))


def new_domain_key() -> bytes:
    """A fresh random 32-byte domain key."""
    return os.urandom(KEY_SIZE)


def seal_domain_key(master_key: bytes, domain_key: bytes,
                    group_id: str) -> bytes:
    """Encrypt the domain key of ``group_id`` under the master key."""
    _check_key(master_key, 'master key')
    _check_key(domain_key, 'domain key')
    return _seal(master_key, bytes(domain_key), _seal_aad(group_id))


def unseal_domain_key(master_key: bytes, sealed: bytes,
                      group_id: str) -> bytes:
    """Recover the domain key; ConfigurationError if the master key fails."""
    _check_key(master_key, 'master key')
    domain_key = _open(master_key, bytes(sealed), _seal_aad(group_id))
    if domain_key is None or len(domain_key) != KEY_SIZE:
        raise exception.ConfigurationError(
            reason='the master key does not open the domain key of group %s'
            % group_id)
    return domain_key


def key_aad(key_id: str, version: int, project_id: str,
            algorithm: str) -> bytes:
    """AAD that binds a wrapped blob to its keystore row."""
    if not isinstance(version, int) or isinstance(version, bool):
        raise exception.InvalidInput(reason='key version must be an integer')
    return _WRAP_LABEL + _fields(key_id.encode('utf-8'),
                                 str(version).encode('ascii'),
                                 project_id.encode('utf-8'),
                                 algorithm.encode('utf-8'))


def wrap_key(domain_key: bytes, material: bytes, aad: bytes) -> bytes:
    """Encrypt tenant key material under the domain key."""
    _check_key(domain_key, 'domain key')
    return _seal(domain_key, bytes(material), bytes(aad))


def unwrap_key(domain_key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a stored blob; KeyBlobAuthenticationError if tampered."""
    _check_key(domain_key, 'domain key')
    material = _open(domain_key, bytes(blob), bytes(aad))
    if material is None:
        raise KeyBlobAuthenticationError()
    return material
