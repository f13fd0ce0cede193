"""Hashing and random bytes for the ``hash`` and ``random`` operations."""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import hashes

from cryptocloud.common import exception

HASH_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    'SM3': hashes.SM3,
    'SHA256': hashes.SHA256,
    'SHA384': hashes.SHA384,
    'SHA512': hashes.SHA512,
}


def hash_algorithm(name: str) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash object for ``name``; InvalidInput if none."""
    try:
        return HASH_ALGORITHMS[name]()
    except (KeyError, TypeError):
        raise exception.InvalidInput(
            reason='hash algorithm must be one of %s'
            % ', '.join(HASH_ALGORITHMS)) from None


def hash_data(algorithm: str, data: bytes) -> bytes:
    """Digest of ``data`` with SM3, SHA256, SHA384 or SHA512."""
    h = hashes.Hash(hash_algorithm(algorithm))
    h.update(data)
    return h.finalize()


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise exception.InvalidInput(
            reason='the length must be a non-negative integer')
    return secrets.token_bytes(n)
