"""Tenant authentication strategies of the crypto service.

The app asks an authenticator for a :class:`RequestContext` and never
looks at credentials itself, so a Keystone strategy (keystonemiddleware
in front, the project taken from ``X-Project-Id``) can replace the
credential strategy without touching the app.

Service credentials: a token is ``<id>.<secret>``; the file keeps only
SHA-256(secret) in hex, so reading it does not let anyone call the
service.  Checking a token costs one SHA-256, one dict lookup and one
constant-time comparison.
"""

import abc
import dataclasses
import datetime
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
import uuid

from oslo_log import log as logging

from cryptocloud.common import exception

LOG = logging.getLogger(__name__)

SECRET_BYTES = 32
MAX_PROJECT_ID = 64
# Tokens longer than this are refused before hashing: the id is a 32-hex
# UUID and the secret 43 base64url characters.
MAX_TOKEN_LENGTH = 256


@dataclasses.dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is calling: the project whose keys may be used."""

    project_id: str
    credential_id: str | None = None


class Authenticator(abc.ABC):
    """A way of turning a WSGI environ into a :class:`RequestContext`."""

    @abc.abstractmethod
    def authenticate(self, environ: dict) -> RequestContext:
        """Return the caller's context or raise exception.Unauthorized."""

    def reload(self) -> None:  # noqa: B027 - optional hook
        """Re-read whatever the strategy caches (SIGHUP)."""


def _bearer(environ: dict) -> str | None:
    header = environ.get('HTTP_AUTHORIZATION')
    if header:
        scheme, _, token = header.partition(' ')
        if scheme.lower() != 'bearer':
            return None
        return token.strip()
    return environ.get('HTTP_X_AUTH_TOKEN')


class _Entry:
    __slots__ = ('digest', 'context')

    def __init__(self, digest: bytes, context: RequestContext):
        self.digest = digest
        self.context = context


class CredentialAuthenticator(Authenticator):
    """Service credentials from a JSON file of SHA-256 hashes."""

    def __init__(self, path: str, *, check_interval: float = 1.0):
        self._path = path
        # os.stat on every request would be a syscall per call; checking
        # at most once per interval still picks up changes promptly.
        self._check_interval = check_interval
        self._next_check = 0.0
        self._stamp = None
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        # Compared against when the id is unknown, so a missing id costs
        # the same as a wrong secret.
        self._dummy = hashlib.sha256(b'no such credential').digest()
        self.reload()

    def reload(self, path: str | None = None) -> None:
        """Re-read the credentials file now (from ``path`` if given)."""
        with self._lock:
            if path is not None:
                self._path = path
            self._load()

    def _file_stamp(self):
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        # The inode changes on an atomic rewrite; size and mtime catch
        # in-place edits.
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self) -> None:
        stamp = self._file_stamp()
        self._next_check = time.monotonic() + self._check_interval
        if stamp is None:
            LOG.warning('Credentials file %s does not exist; every request '
                        'will be refused.', self._path)
            self._entries = {}
            self._stamp = None
            return
        try:
            data = _read_file(self._path)
            entries = {}
            for cred in data['credentials']:
                entries[cred['id']] = _Entry(
                    bytes.fromhex(cred['secret_sha256']),
                    RequestContext(cred['project_id'], cred['id']))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Keep serving with the last good set: a half-edited file must
            # not lock every tenant out.
            LOG.error('Cannot read credentials file %s (%s); keeping the '
                      '%d credentials loaded before.', self._path,
                      type(exc).__name__, len(self._entries))
            self._stamp = stamp
            return
        self._entries = entries
        self._stamp = stamp
        LOG.info('Loaded %d service credentials from %s.', len(entries),
                 self._path)

    def _maybe_reload(self) -> None:
        if time.monotonic() < self._next_check:
            return
        with self._lock:
            if time.monotonic() < self._next_check:
                return
            if self._file_stamp() != self._stamp:
                self._load()
            else:
                self._next_check = time.monotonic() + self._check_interval

    def authenticate(self, environ: dict) -> RequestContext:
        """Check the bearer or X-Auth-Token token of the request."""
        self._maybe_reload()
        token = _bearer(environ)
        if not token:
            raise exception.Unauthorized(reason='no credential was given')
        if len(token) > MAX_TOKEN_LENGTH:
            raise exception.Unauthorized(reason='the credential is invalid')
        cred_id, _, secret = token.partition('.')
        entry = self._entries.get(cred_id)
        digest = hashlib.sha256(secret.encode('utf-8', 'replace')).digest()
        expected = self._dummy if entry is None else entry.digest
        if not hmac.compare_digest(digest, expected) or entry is None:
            raise exception.Unauthorized(reason='the credential is invalid')
        return entry.context


class HeaderAuthenticator(Authenticator):
    """Trust ``X-Project-Id`` set by keystonemiddleware in front of us.

    Only safe behind auth_token middleware, which strips the header from
    incoming requests and sets it from a validated token.
    """

    def authenticate(self, environ: dict) -> RequestContext:
        """Read the project that the middleware authenticated."""
        if environ.get('HTTP_X_IDENTITY_STATUS', 'Confirmed') != 'Confirmed':
            raise exception.Unauthorized(reason='the token is invalid')
        project = environ.get('HTTP_X_PROJECT_ID')
        if not project:
            raise exception.Unauthorized(reason='no project-scoped token')
        return RequestContext(project, environ.get('HTTP_X_USER_ID'))


# --- credentials file management ------------------------------------------

def _read_file(path: str) -> dict:
    with open(path, encoding='utf-8') as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(
            data.get('credentials'), list):
        raise ValueError('no "credentials" list')
    return data


def _write_file(path: str, data: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.credentials.')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(data, f, indent=2, sort_keys=True)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class _FileLock:
    """Serialise writers of one credentials file (across processes)."""

    def __init__(self, path: str):
        self._path = path + '.lock'
        self._fd = None

    def __enter__(self):
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _load_or_empty(path: str) -> dict:
    try:
        return _read_file(path)
    except FileNotFoundError:
        return {'credentials': []}
    except ValueError as exc:
        raise exception.ConfigurationError(
            reason='%s is not a credentials file: %s' % (path, exc)) from None


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a credential secret, as stored in the file."""
    return hashlib.sha256(secret.encode('utf-8')).hexdigest()


def create_credential(path: str, project_id: str) -> str:
    """Add a credential for ``project_id``; return its token (shown once)."""
    if (not isinstance(project_id, str) or not project_id
            or len(project_id) > MAX_PROJECT_ID):
        raise exception.InvalidInput(
            reason='project_id must be 1 to %d characters' % MAX_PROJECT_ID)
    cred_id = uuid.uuid4().hex
    secret = secrets.token_urlsafe(SECRET_BYTES)
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    with _FileLock(path):
        data = _load_or_empty(path)
        data['credentials'].append({
            'id': cred_id,
            'project_id': project_id,
            'secret_sha256': hash_secret(secret),
            'created_at': created.isoformat().replace('+00:00', 'Z'),
        })
        _write_file(path, data)
    LOG.info('Created service credential %s for project %s.', cred_id,
             project_id)
    return '%s.%s' % (cred_id, secret)


def list_credentials(path: str) -> list[dict]:
    """Credentials in ``path`` as id, project and creation time only."""
    return [{'id': c.get('id'), 'project_id': c.get('project_id'),
             'created_at': c.get('created_at')}
            for c in _load_or_empty(path)['credentials']]


def revoke_credential(path: str, credential_id: str) -> None:
    """Remove a credential; its token stops working at the next check."""
    with _FileLock(path):
        data = _load_or_empty(path)
        kept = [c for c in data['credentials']
                if c.get('id') != credential_id]
        if len(kept) == len(data['credentials']):
            raise exception.NotFound(
                'Credential %s could not be found.' % credential_id)
        data['credentials'] = kept
        _write_file(path, data)
    LOG.info('Revoked service credential %s.', credential_id)


def from_conf(conf) -> Authenticator:
    """Build the strategy named by ``[cryptoservice] auth_strategy``."""
    strategy = conf.cryptoservice.auth_strategy
    if strategy == 'credential':
        return CredentialAuthenticator(conf.cryptoservice.credentials_file)
    raise exception.ConfigurationError(
        reason='unknown auth_strategy %s' % strategy)
