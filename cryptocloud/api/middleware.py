"""WSGI middleware around the pecan app: errors, body size, identity.

The order, outermost first (see ``app.setup_app``)::

    JsonErrors -> BodyLimit -> StripIdentity -> auth (keystone or
    http_basic) -> pecan

``JsonErrors`` guarantees that every error a client sees, whoever made
it (pecan's router, keystonemiddleware, our own code), has the body
``{"error": {"code", "type", "message"}}``, and that an unexpected
exception becomes a logged 500 without request details.
"""

import http
import json

from oslo_log import log as logging

from cryptocloud.common import exception

LOG = logging.getLogger(__name__)

_STATUS_LINES = {s.value: '%d %s' % (s.value, s.phrase)
                 for s in http.HTTPStatus}
_MAX_MESSAGE = 500

# Identity headers only an authentication middleware may set.
_IDENTITY_PREFIXES = ('HTTP_X_USER', 'HTTP_X_PROJECT', 'HTTP_X_TENANT',
                      'HTTP_X_ROLE', 'HTTP_X_DOMAIN', 'HTTP_X_SERVICE_',
                      'HTTP_X_IDENTITY_STATUS', 'HTTP_X_IS_ADMIN_PROJECT',
                      'HTTP_X_SYSTEM_SCOPE', 'HTTP_X_AUTHORIZATION')


def error_body(code: int, error_type: str, message: str) -> bytes:
    """The JSON error document, encoded."""
    return json.dumps({'error': {
        'code': code, 'type': error_type,
        'message': message[:_MAX_MESSAGE]}}).encode('utf-8')


def error_response(exc: exception.CryptoCloudException, start_response,
                   headers: list | None = None) -> list[bytes]:
    """Answer ``exc`` as a JSON error through ``start_response``."""
    code = int(exc.code)
    if not 400 <= code <= 599:
        code = 500
    body = error_body(code, exc.error_type, exc.message)
    out = [('Content-Type', 'application/json'),
           ('Content-Length', str(len(body)))]
    out.extend(headers or ())
    start_response(_STATUS_LINES.get(code, '%d Error' % code), out)
    return [body]


def _type_for(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase.replace(' ', '').replace(
            '-', '')
    except ValueError:
        return 'HTTPError'


def _message_for(code: int, body: bytes) -> str:
    # Keep whatever explanation the producer gave (keystonemiddleware
    # and webob put one in their bodies), as plain text.
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get('error', data)
        if isinstance(err, dict):
            for key in ('message', 'explanation', 'title', 'faultstring'):
                if isinstance(err.get(key), str) and err[key]:
                    return err[key]
    try:
        return http.HTTPStatus(code).description or 'Error.'
    except ValueError:
        return 'Error.'


def _is_ours(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    err = data.get('error') if isinstance(data, dict) else None
    return (isinstance(err, dict) and len(data) == 1
            and {'code', 'type', 'message'} <= set(err))


class JsonErrors:
    """Rewrite every error response into the JSON error format."""

    # Headers of an error response worth keeping.
    KEEP = frozenset(('www-authenticate', 'allow', 'x-openstack-request-id',
                      'retry-after'))

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        captured = {}

        def capture(status, headers, exc_info=None):
            captured['status'] = status
            captured['headers'] = headers
            return lambda data: captured.setdefault('written', []).append(
                data)

        try:
            result = self.app(environ, capture)
            try:
                chunks = list(captured.get('written', [])) + list(result)
            finally:
                close = getattr(result, 'close', None)
                if close is not None:
                    close()
        except exception.CryptoCloudException as exc:
            return error_response(exc, start_response)
        except Exception:
            # Never the environ or the body: they may hold credentials.
            LOG.exception('Unexpected error serving %s %s',
                          environ.get('REQUEST_METHOD'),
                          environ.get('PATH_INFO', '')[:200])
            return error_response(exception.CryptoCloudException(
                'An unexpected error occurred; it has been logged.'),
                start_response)
        status = captured['status']
        headers = captured['headers']
        body = b''.join(chunks)
        try:
            code = int(status.split(' ', 1)[0])
        except ValueError:
            code = 500
        if code < 400 or _is_ours(body):
            start_response(status, headers)
            return [body]
        message = _message_for(code, body)
        new_body = error_body(code, _type_for(code), message)
        kept = [(k, v) for k, v in headers if k.lower() in self.KEEP]
        kept += [('Content-Type', 'application/json'),
                 ('Content-Length', str(len(new_body)))]
        start_response(status, kept)
        return [new_body]


class BodyLimit:
    """Refuse bodies over ``max_body_size`` bytes with 413."""

    def __init__(self, app, max_body_size: int):
        self.app = app
        self.limit = max_body_size

    def __call__(self, environ, start_response):
        value = environ.get('CONTENT_LENGTH')
        if value:
            try:
                length = int(value)
            except ValueError:
                return error_response(exception.InvalidInput(
                    reason='Content-Length is not a number'), start_response)
            if length < 0:
                return error_response(exception.InvalidInput(
                    reason='Content-Length is negative'), start_response)
            if length > self.limit:
                return error_response(
                    exception.PayloadTooLarge(limit=self.limit),
                    start_response)
        environ['cryptocloud.max_body_size'] = self.limit
        return self.app(environ, start_response)


class StripIdentity:
    """Drop identity headers a client sent; only auth may set them."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        for key in [k for k in environ if k.startswith(_IDENTITY_PREFIXES)]:
            del environ[key]
        return self.app(environ, start_response)


class PublicRoutes:
    """Send public paths (the version documents) around authentication."""

    def __init__(self, app, authenticated_app, public_paths):
        self.app = app
        self.authenticated = authenticated_app
        self.public = frozenset(public_paths)

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO') or '/'
        if path in self.public or path.rstrip('/') in self.public:
            return self.app(environ, start_response)
        return self.authenticated(environ, start_response)
