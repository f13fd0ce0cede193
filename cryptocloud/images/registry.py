"""A small client of the image registry (Docker Registry HTTP API v2).

It does what the Docker Engine cannot tell us: whether the registry
answers and takes our credentials (:meth:`RegistryClient.ping`), and the
digest of the manifest a tag points at
(:meth:`RegistryClient.manifest_digest`), which is what workloads pin.
Both basic auth (htpasswd, as Debian's docker-registry) and bearer-token
auth (the registry sends a ``WWW-Authenticate: Bearer`` challenge) work.
"""

import hashlib
import re
import typing

import requests
from oslo_log import log as logging

from cryptocloud.common import exception

LOG = logging.getLogger(__name__)

# Seconds to wait for a connection or for one answer of the registry.
DEFAULT_TIMEOUT = 10.0
# Every manifest kind docker push may leave behind; a registry answers
# with the digest of the one stored, whichever we accept.
MANIFEST_MEDIA_TYPES = (
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.oci.image.index.v1+json',
)
DIGEST_RE = re.compile(r'^sha256:[0-9a-f]{64}$')
# The repository grammar of the distribution reference spec.
_COMPONENT = r'[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
REPOSITORY_RE = re.compile(r'^%s(?:/%s)*$' % (_COMPONENT, _COMPONENT))
TAG_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')
_ERRNO_RE = re.compile(r'\[Errno -?\d+\] ([^\'"()]+)')
_SSL_RE = re.compile(r'\[SSL: [A-Z_]+\] [^\'"()]+')
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def check_repository(repository: str) -> str:
    """``repository`` if it is a valid repository path, else InvalidInput."""
    if not REPOSITORY_RE.match(repository or '') or len(repository) > 255:
        raise exception.InvalidInput(
            reason='%r is not a registry repository name (lower-case '
                   'letters, digits and separators, "/" between '
                   'components)' % (repository,))
    return repository


def check_digest(digest: str) -> str:
    """``digest`` if it is a ``sha256:<64 hex>`` digest, else InvalidInput."""
    if not DIGEST_RE.match(digest or ''):
        raise exception.InvalidInput(
            reason='%r is not a sha256 image digest' % (digest,))
    return digest


def _short_reason(exc: BaseException) -> str:
    """The interesting part of a requests/urllib3 connection error."""
    text = str(exc)
    match = _SSL_RE.search(text)
    if match:
        return match.group(0).strip()
    match = _ERRNO_RE.search(text)
    if match:
        return match.group(1).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class RegistryClient:
    """The registry at ``address`` (``host:port``), as one user."""

    def __init__(self, address: str, username: str | None = None,
                 password: str | None = None, tls: bool = False,
                 ca_file: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        address = (address or '').strip().rstrip('/')
        if not address or '://' in address or '/' in address:
            raise exception.ConfigurationError(
                reason='[registry] address must be host:port without a '
                       'scheme or path, not %r' % (address,))
        self.address = address
        self.username = username or None
        self._password = password or ''
        self.tls = tls
        self.ca_file = ca_file or None
        self.timeout = timeout
        self._session = requests.Session()
        self._tokens: dict[str, str] = {}

    @classmethod
    def from_conf(cls, conf) -> 'RegistryClient':
        """A client for the ``[registry]`` options of ``conf``."""
        group = conf.registry
        return cls(group.address, username=group.username,
                   password=group.password, tls=group.tls,
                   ca_file=group.ca_file)

    def close(self) -> None:
        self._session.close()

    @property
    def base_url(self) -> str:
        return '%s://%s' % ('https' if self.tls else 'http', self.address)

    def auth_config(self) -> dict | None:
        """Credentials in the form the docker SDK takes, None without."""
        if not self.username:
            return None
        return {'username': self.username, 'password': self._password,
                'serveraddress': self.address}

    def name(self, repository: str) -> str:
        """``<address>/<repository>``: the image name Docker uses."""
        return '%s/%s' % (self.address, check_repository(repository))

    def reference(self, repository: str, digest: str) -> str:
        """``<address>/<repository>@sha256:...``: an immutable reference."""
        return '%s@%s' % (self.name(repository), check_digest(digest))

    # -- HTTP ---------------------------------------------------------------

    def _error(self, reason: str) -> exception.RegistryError:
        return exception.RegistryError(address=self.address, reason=reason)

    def _send(self, method: str, url: str, headers: dict,
              auth: typing.Any = None, params: dict | None = None
              ) -> requests.Response:
        verify: bool | str = self.ca_file or True
        try:
            return self._session.request(
                method, url, headers=headers, auth=auth, params=params,
                timeout=self.timeout, verify=verify, allow_redirects=True)
        except requests.exceptions.SSLError as exc:
            hint = ('; does it speak plain HTTP? then set [registry] '
                    'tls = false' if 'WRONG_VERSION_NUMBER' in str(exc)
                    else '; is [registry] ca_file the CA that signed its '
                         'certificate?')
            raise self._error('TLS with %s failed: %s%s'
                              % (url, _short_reason(exc), hint)) from None
        except requests.exceptions.Timeout:
            raise self._error('no answer from %s within %s s'
                              % (url, self.timeout)) from None
        except requests.exceptions.ConnectionError as exc:
            raise self._error('cannot connect to %s: %s'
                              % (url, _short_reason(exc))) from None
        except requests.exceptions.RequestException as exc:
            raise self._error('request to %s failed: %s'
                              % (url, _short_reason(exc))) from None

    def _basic(self) -> tuple[str, str] | None:
        return (self.username, self._password) if self.username else None

    def _bearer_token(self, challenge: str) -> str:
        """A token from the auth service named in a Bearer challenge."""
        params = dict(_CHALLENGE_RE.findall(challenge))
        realm = params.pop('realm', None)
        if not realm:
            raise self._error('its Bearer challenge names no realm')
        key = '%s %s' % (params.get('service'), params.get('scope'))
        if key in self._tokens:
            return self._tokens[key]
        resp = self._send('GET', realm, {}, auth=self._basic(),
                          params=params)
        if resp.status_code in (401, 403):
            raise self._credentials_error(resp)
        if resp.status_code != 200:
            raise self._error('its token service %s answered %d'
                              % (realm, resp.status_code))
        try:
            body = resp.json()
            token = body.get('token') or body['access_token']
        except (ValueError, KeyError, AttributeError):
            raise self._error('its token service %s answered without a '
                              'token' % realm) from None
        self._tokens[key] = token
        return token

    def _credentials_error(self, resp: requests.Response
                           ) -> exception.RegistryError:
        if not self.username:
            return self._error('authentication required (HTTP %d); set '
                               '[registry] username and password'
                               % resp.status_code)
        return self._error('it rejected the credentials of user %s '
                           '(HTTP %d); check [registry] username and '
                           'password' % (self.username, resp.status_code))

    def request(self, method: str, path: str,
                headers: dict | None = None) -> requests.Response:
        """``method`` on ``/v2<path>``, authenticated as needed.

        :raises RegistryError: when the registry cannot be reached, or
            when it wants credentials that we lack or it rejects.
        """
        url = self.base_url + '/v2' + path
        headers = dict(headers or {})
        resp = self._send(method, url, headers, auth=self._basic())
        challenge = resp.headers.get('WWW-Authenticate', '')
        if resp.status_code == 401 and challenge.lower().startswith(
                'bearer'):
            token = self._bearer_token(challenge)
            headers['Authorization'] = 'Bearer %s' % token
            resp = self._send(method, url, headers)
        if resp.status_code == 401:
            raise self._credentials_error(resp)
        if (resp.status_code == 400 and not self.tls
                and 'https' in resp.text[:500].lower()):
            raise self._error('it speaks HTTPS; set [registry] tls = true')
        return resp

    # -- API ----------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers and accepts our credentials.

        :raises RegistryError: saying what is wrong.
        """
        resp = self.request('GET', '/')
        if resp.status_code != 200:
            raise self._error('GET /v2/ answered %d; is %s a Docker '
                              'registry?' % (resp.status_code, self.address))
        if 'Docker-Distribution-API-Version' not in resp.headers:
            LOG.warning('%s answered GET /v2/ without a '
                        'Docker-Distribution-API-Version header',
                        self.address)

    def manifest_digest(self, repository: str, tag: str) -> str:
        """The digest of the manifest ``repository:tag`` points at.

        :raises RegistryError: when there is no such tag or the registry
            cannot be asked.
        """
        check_repository(repository)
        if not TAG_RE.match(tag or ''):
            raise exception.InvalidInput(reason='%r is not an image tag'
                                         % (tag,))
        path = '/%s/manifests/%s' % (repository, tag)
        headers = {'Accept': ', '.join(MANIFEST_MEDIA_TYPES)}
        resp = self.request('HEAD', path, headers)
        digest = resp.headers.get('Docker-Content-Digest')
        if resp.status_code == 200 and not digest:
            # The header is optional: the digest is that of the body.
            resp = self.request('GET', path, headers)
            if resp.status_code == 200:
                digest = 'sha256:' + hashlib.sha256(resp.content).hexdigest()
        if resp.status_code == 404:
            raise self._error('it has no manifest %s:%s' % (repository, tag))
        if resp.status_code == 403:
            raise self._error('access to %s denied to user %s'
                              % (repository, self.username))
        if resp.status_code != 200:
            raise self._error('HEAD %s answered %d'
                              % (path, resp.status_code))
        if not DIGEST_RE.match(digest or ''):
            raise self._error('it gave %r as the digest of %s:%s'
                              % (digest, repository, tag))
        return digest

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest (with all tags on it) by digest.

        :raises RegistryError: when the registry refuses (it must run
            with ``storage: delete: enabled: true``).
        """
        path = '/%s/manifests/%s' % (check_repository(repository),
                                     check_digest(digest))
        resp = self.request('DELETE', path)
        if resp.status_code == 405:
            raise self._error('it does not allow deletion')
        if resp.status_code not in (200, 202, 404):
            raise self._error('DELETE %s answered %d'
                              % (path, resp.status_code))
