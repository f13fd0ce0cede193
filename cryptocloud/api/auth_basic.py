"""HTTP basic authentication from a bcrypt htpasswd file.

For clouds without Keystone (ironic's ``http_basic`` is the precedent).
Each line of ``[api] http_basic_auth_user_file`` is::

    user:$2b$...[:project[:role,role]]

Only bcrypt hashes are accepted.  Without a project the user name is the
project; without roles the role is ``member``.  A caller who passes sets
the same headers keystonemiddleware would (X-User-Id, X-Project-Id,
X-Roles, X-Identity-Status), so everything behind is strategy-agnostic.

bcrypt is slow on purpose (about 0.25 s at cost 12), too slow to pay on
every call of a busy client, so a successful check is remembered for
``CACHE_SECONDS`` under a keyed digest of the password (never the
password itself); editing the file forgets every remembered check.
"""

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time

import bcrypt
from oslo_log import log as logging

from cryptocloud.api import middleware
from cryptocloud.common import exception

LOG = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
CACHE_MAX = 1024
DEFAULT_ROLE = 'member'
REALM = 'cryptocloud'
CHALLENGE = 'Basic realm="%s"' % REALM
_BCRYPT_PREFIXES = ('$2a$', '$2b$', '$2y$')
# Seconds between checks of the file for changes.
_STAT_INTERVAL = 1.0


class _User:
    __slots__ = ('name', 'hash', 'project', 'roles')

    def __init__(self, name: str, pw_hash: bytes, project: str,
                 roles: list[str]):
        self.name = name
        self.hash = pw_hash
        self.project = project
        self.roles = roles


def parse_user_file(path: str) -> dict[str, _User]:
    """Read the htpasswd file; raise ConfigurationError when it is bad."""
    users = {}
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise exception.ConfigurationError(
            reason='cannot read http_basic_auth_user_file %s: %s'
                   % (path, exc.strerror)) from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        parts = line.split(':')
        if len(parts) < 2 or len(parts) > 4 or not parts[0]:
            raise exception.ConfigurationError(
                reason='%s line %d is not user:hash[:project[:roles]]'
                       % (path, number))
        name, pw_hash = parts[0], parts[1]
        if not pw_hash.startswith(_BCRYPT_PREFIXES):
            # The hash is not quoted: a plain-text "hash" is a password.
            raise exception.ConfigurationError(
                reason='%s line %d: only bcrypt hashes are accepted'
                       % (path, number))
        project = parts[2] if len(parts) > 2 and parts[2] else name
        roles = [r.strip() for r in parts[3].split(',')
                 if r.strip()] if len(parts) > 3 else []
        users[name] = _User(name, pw_hash.encode('ascii', 'replace'),
                            project, roles or [DEFAULT_ROLE])
    return users


class BasicAuth:
    """WSGI middleware: check HTTP basic credentials, set identity."""

    def __init__(self, app, user_file: str):
        self.app = app
        self._path = user_file
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)
        self._cache: dict[tuple[str, bytes], float] = {}
        self._stamp = self._file_stamp()
        self._next_stat = time.monotonic() + _STAT_INTERVAL
        # Fail at start-up, not at the first request.
        self._users = parse_user_file(user_file)
        self._dummy = _dummy_hash(self._users)
        LOG.info('HTTP basic auth: %d users from %s.', len(self._users),
                 user_file)

    def _file_stamp(self):
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _maybe_reload(self) -> None:
        if time.monotonic() < self._next_stat:
            return
        with self._lock:
            self._next_stat = time.monotonic() + _STAT_INTERVAL
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            try:
                users = parse_user_file(self._path)
            except exception.ConfigurationError as exc:
                LOG.error('Keeping the previous users: %s', exc.message)
                self._stamp = stamp
                return
            self._users = users
            self._cache.clear()
            self._stamp = stamp
            LOG.info('HTTP basic auth: reloaded %d users.', len(users))

    def _check(self, name: str, password: str) -> _User:
        self._maybe_reload()
        user = self._users.get(name)
        secret = password.encode('utf-8', 'replace')
        key = (name, hmac.new(self._key, secret, hashlib.sha256).digest())
        now = time.monotonic()
        if user is not None and self._cache.get(key, 0.0) > now:
            return user
        if user is None:
            # Same cost as a wrong password: no user enumeration by timing.
            bcrypt.checkpw(secret, self._dummy)
            raise exception.Unauthorized(reason='invalid user name or '
                                                'password')
        try:
            ok = bcrypt.checkpw(secret, user.hash)
        except ValueError:
            ok = False
        if not ok:
            raise exception.Unauthorized(reason='invalid user name or '
                                                'password')
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = now + CACHE_SECONDS
        return user

    def authenticate(self, environ: dict) -> _User:
        """The user named by the Authorization header, or Unauthorized."""
        header = environ.get('HTTP_AUTHORIZATION', '')
        scheme, _, value = header.partition(' ')
        if scheme.lower() != 'basic' or not value.strip():
            raise exception.Unauthorized(reason='HTTP basic credentials '
                                                'are required')
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
            text = decoded.decode('utf-8')
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise exception.Unauthorized(
                reason='the basic credentials are malformed') from None
        name, sep, password = text.partition(':')
        if not sep or not name:
            raise exception.Unauthorized(
                reason='the basic credentials are malformed')
        return self._check(name, password)

    def __call__(self, environ, start_response):
        try:
            user = self.authenticate(environ)
        except exception.Unauthorized as exc:
            return middleware.error_response(
                exc, start_response,
                [('WWW-Authenticate', CHALLENGE)])
        environ['HTTP_X_IDENTITY_STATUS'] = 'Confirmed'
        environ['HTTP_X_USER_ID'] = user.name
        environ['HTTP_X_USER_NAME'] = user.name
        environ['HTTP_X_PROJECT_ID'] = user.project
        environ['HTTP_X_ROLES'] = ','.join(user.roles)
        # The password must not travel further in.
        environ.pop('HTTP_AUTHORIZATION', None)
        return self.app(environ, start_response)




def _dummy_hash(users: dict[str, _User]) -> bytes:
    # Costs as much to check as the users' own hashes.
    rounds = 12
    for user in users.values():
        try:
            rounds = int(user.hash.split(b'$')[2])
        except (IndexError, ValueError):
            continue
        break
    return bcrypt.hashpw(b'no such user',
                         bcrypt.gensalt(rounds=max(4, min(rounds, 31))))
