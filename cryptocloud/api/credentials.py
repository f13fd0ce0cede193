"""Service credential tokens, in the crypto service's own format.

A token is ``<id>.<secret>``: ``id`` 32 hex digits, ``secret`` 32 random
bytes in base64url.  The control database keeps only SHA-256(secret)
(:func:`cryptocloud.cryptoservice.auth.hash_secret`), the hash the
instances check tokens against; the token itself is returned once, in
the response that made it, and never logged.
"""

import secrets
import uuid

from cryptocloud.cryptoservice import auth


def new_token() -> tuple[str, str, str]:
    """A fresh credential: (id, token, secret_sha256)."""
    cred_id = uuid.uuid4().hex
    secret = secrets.token_urlsafe(auth.SECRET_BYTES)
    return cred_id, '%s.%s' % (cred_id, secret), auth.hash_secret(secret)
