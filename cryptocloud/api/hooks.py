"""pecan hooks: the caller's context, the database, the conductor client,
the request id, and JSON bodies for errors raised inside pecan.
"""

import io
import uuid

import pecan
from oslo_config import cfg
from oslo_db import exception as db_exc
from oslo_log import log as logging

from cryptocloud.api import middleware
from cryptocloud.common import context as cc_context
from cryptocloud.common import exception

LOG = logging.getLogger(__name__)

REQUEST_ID_HEADER = 'X-OpenStack-Request-Id'


def context_from_environ(environ: dict, request_id: str
                         ) -> cc_context.RequestContext | None:
    """The caller's context from the identity headers, or None.

    Only an authentication middleware sets these headers: incoming ones
    are stripped before it runs (``middleware.StripIdentity``).
    """
    if environ.get('HTTP_X_IDENTITY_STATUS') != 'Confirmed':
        return None
    project = environ.get('HTTP_X_PROJECT_ID')
    if not project:
        return None
    roles = [r.strip().lower() for r in
             environ.get('HTTP_X_ROLES', '').split(',') if r.strip()]
    return cc_context.RequestContext(
        user_id=environ.get('HTTP_X_USER_ID'), project_id=project,
        roles=roles, request_id=request_id,
        is_admin='admin' in roles, overwrite=False)


def read_body(environ: dict) -> bytes:
    """The request body, read once and bounded by [api] max_body_size."""
    limit = environ.get('cryptocloud.max_body_size',
                        cfg.CONF.api.max_body_size)
    stream = environ.get('wsgi.input')
    length = environ.get('CONTENT_LENGTH')
    if length:
        # BodyLimit has checked that it is a number within the limit.
        length = int(length)
        data = stream.read(length) if length else b''
        if len(data) != length:
            raise exception.InvalidInput(
                reason='the request body is shorter than its '
                       'Content-Length')
        return data
    if 'chunked' in environ.get('HTTP_TRANSFER_ENCODING', '').lower():
        # No length up front: one byte past the limit tells "too large".
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise exception.PayloadTooLarge(limit=limit)
        return data
    return b''


class BodyHook(pecan.hooks.PecanHook):
    """Take the body before pecan does.

    pecan decodes JSON bodies into keyword arguments on its own, without
    a size bound for chunked bodies and with 500s for some bad input
    (deep nesting).  The handlers parse the body themselves, with the
    route's schema, so pecan is given an empty one.
    """

    priority = 5

    def on_route(self, state):
        """Keep the raw body in ``request.context['body']``."""
        environ = state.request.environ
        state.request.context['body'] = read_body(environ)
        environ['wsgi.input'] = io.BytesIO(b'')
        environ['CONTENT_LENGTH'] = '0'
        environ.pop('HTTP_TRANSFER_ENCODING', None)


class ContextHook(pecan.hooks.PecanHook):
    """Put the caller's context in ``pecan.request.context['ctx']``."""

    priority = 10

    def before(self, state):
        """Build the context and a request id."""
        request_id = 'req-' + str(uuid.uuid4())
        state.request.context['request_id'] = request_id
        state.request.context['ctx'] = context_from_environ(
            state.request.environ, request_id)

    def after(self, state):
        """Tell the caller the request id."""
        request_id = state.request.context.get('request_id')
        if request_id and state.response is not None:
            state.response.headers[REQUEST_ID_HEADER] = request_id


class ResourcesHook(pecan.hooks.PecanHook):
    """Give handlers the database connection and the conductor client."""

    priority = 20

    def __init__(self, connection, conductor_api):
        self.connection = connection
        self.conductor_api = conductor_api

    def before(self, state):
        """Attach both to the request."""
        state.request.context['conn'] = self.connection
        state.request.context['conductor'] = self.conductor_api


class ErrorHook(pecan.hooks.PecanHook):
    """Answer our exceptions as JSON with their status.

    ``challenge`` is the ``WWW-Authenticate`` value of a 401, or None
    when the authentication middleware adds its own (keystonemiddleware
    adds ``Keystone uri=...`` to every 401 on its way out).
    """

    priority = 1000

    def __init__(self, challenge: str | None = None):
        self.challenge = challenge

    def on_error(self, state, exc):
        """A JSON response for ``exc``; None lets pecan or JsonErrors act."""
        if isinstance(exc, db_exc.DBConnectionError):
            # The database restarts or fails over: a temporary condition
            # the caller may retry, not an internal error.
            exc = exception.ServiceUnavailable(
                reason='the control database cannot be reached; retry '
                       'shortly')
        if not isinstance(exc, exception.CryptoCloudException):
            return None
        code = int(exc.code)
        if not 400 <= code <= 599:
            code = 500
        if code >= 500:
            LOG.warning('%s %s: %s', state.request.method,
                        state.request.path[:200], exc.message)
        response = pecan.Response(
            body=middleware.error_body(code, exc.error_type, exc.message),
            status=code, content_type='application/json', charset=None)
        if isinstance(exc, exception.Unauthorized) and self.challenge:
            response.headers['WWW-Authenticate'] = self.challenge
        allow = getattr(exc, 'allow', None)
        if allow:
            response.headers['Allow'] = allow
        return response
