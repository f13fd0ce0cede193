"""Files that hold secrets: the master key and the vHSM group secret.

A secret file holds 32 random bytes, base64-encoded on one line. It is
refused when group or others may read or write it, as ssh does for private
keys, because a copy of it opens every key it protects.
"""

import base64
import binascii
import os
import secrets
import stat

from cryptocloud.common import exception

SECRET_BYTES = 32


def _check_mode(path: str) -> None:
    st = os.stat(path)
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise exception.ConfigurationError(
            reason='%s is accessible by group or others (mode %o); '
                   'run "chmod 600 %s"' % (path, stat.S_IMODE(st.st_mode),
                                            path))


def read_secret_file(path: str) -> bytes:
    """Return the secret stored in ``path`` after checking its mode."""
    try:
        _check_mode(path)
        with open(path, 'rb') as f:
            text = f.read().strip()
    except FileNotFoundError:
        raise exception.ConfigurationError(
            reason='secret file %s does not exist' % path) from None
    except PermissionError:
        raise exception.ConfigurationError(
            reason='secret file %s cannot be read' % path) from None
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise exception.ConfigurationError(
            reason='%s does not hold a base64 secret' % path) from None
    if len(value) != SECRET_BYTES:
        raise exception.ConfigurationError(
            reason='%s must hold %d bytes, not %d'
                   % (path, SECRET_BYTES, len(value)))
    return value


def create_secret_file(path: str, *, overwrite: bool = False) -> None:
    """Write a new random secret to ``path`` with mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (0 if overwrite else os.O_EXCL)
    if overwrite:
        flags |= os.O_TRUNC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise exception.Conflict(
            reason='%s already exists; refusing to overwrite a secret'
                   % path) from None
    with os.fdopen(fd, 'wb') as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(base64.b64encode(secrets.token_bytes(SECRET_BYTES)) + b'\n')
