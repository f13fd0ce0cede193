"""What every admin API controller shares.

Routing: a :class:`Controller` owns one path.  Its ``_route`` (pecan's
hook for custom routing) either answers the path itself, dispatching on
the HTTP method to the handler bound with :func:`route`, or hands the
next path segment to a child.  So a path pecan cannot match is a JSON
404, a method the path does not serve is a JSON 405 with ``Allow``, and
nothing is found through Python attribute names.

A handler is called as ``handler(self, req)`` with a :class:`Request`:
the caller's context, the validated body and query, the connection and
the conductor client.  The :func:`route` decorator has already checked
the policy rule and the schemas by then.
"""

import dataclasses
import datetime
import http
import json
import urllib.parse

import pecan
import webob
from oslo_config import cfg

from cryptocloud.api import policy
from cryptocloud.api import routes
from cryptocloud.api import schemas
from cryptocloud.common import context as cc_context
from cryptocloud.common import exception

JSON_TYPES = frozenset(('application/json', 'application/merge-patch+json'))
# Handlers bound to routes, by route name (checked by a unit test).
HANDLERS: dict[str, object] = {}


class RouteNotFound(exception.NotFound):
    msg_fmt = 'No resource matches %(path)s.'


class MethodNotAllowed(exception.CryptoCloudException):
    code = http.HTTPStatus.METHOD_NOT_ALLOWED
    msg_fmt = 'Method %(method)s is not allowed on %(route)s.'

    def __init__(self, allow: list[str], **kwargs):
        super().__init__(**kwargs)
        self.allow = ', '.join(sorted(allow))


class UnsupportedMediaType(exception.CryptoCloudException):
    code = http.HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    msg_fmt = 'Request bodies must be application/json, not %(type)s.'


class _BadConstant(ValueError):
    pass


def _reject_constant(name):
    raise _BadConstant(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@dataclasses.dataclass
class Request:
    """One call, as a handler sees it."""

    route: routes.Route
    ctx: cc_context.RequestContext | None
    body: dict | None
    query: dict
    conn: object
    conductor: object

    @property
    def is_admin(self) -> bool:
        """True when the caller sees every project."""
        return self.ctx is not None and policy.is_admin(self.ctx)


def route(name: str):
    """Bind the decorated method to the route called ``name``."""
    entry = routes.BY_NAME[name]

    def decorate(func):
        if name in HANDLERS:
            raise RuntimeError('route %s has two handlers' % name)
        HANDLERS[name] = func
        func.api_route = entry
        return func
    return decorate


class Controller:
    """A path of the API; subclasses bind handlers and name children."""

    # Static children: path segment -> controller.
    children: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        handlers = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                entry = getattr(value, 'api_route', None)
                if entry is not None:
                    handlers[entry.method] = value
        cls._handlers = handlers

    def child(self, segment: str):
        """The controller of ``segment`` below this path, or None."""
        return self.children.get(segment)

    @pecan.expose()
    def _route(self, args, request=None):
        """Answer this path, or walk one segment down."""
        args = list(args)
        # "/v1/nodes/" is "/v1/nodes".
        if args and args[-1] == '':
            args.pop()
        if not args:
            return self.respond, []
        if '' in args:
            raise RouteNotFound(path=pecan.request.path[:200])
        nxt = self.child(args[0])
        if nxt is None:
            raise RouteNotFound(path=pecan.request.path[:200])
        return nxt._route(args[1:], request)

    @pecan.expose()
    def respond(self, *remainder):
        """Run the handler of the request's method."""
        if remainder:
            raise RouteNotFound(path=pecan.request.path[:200])
        method = pecan.request.method
        handler = self._handlers.get(method)
        if handler is None:
            if not self._handlers:
                raise RouteNotFound(path=pecan.request.path[:200])
            template = next(iter(self._handlers.values())).api_route.template
            raise MethodNotAllowed(list(self._handlers), method=method[:20],
                                   route=template)
        entry = handler.api_route
        req = _build_request(entry)
        payload = handler(self, req)
        if entry.status == http.HTTPStatus.NO_CONTENT:
            return webob.Response(status=entry.status, content_type=None,
                                  charset=None)
        return json_response(entry.status, payload)


def _build_request(entry: routes.Route) -> Request:
    state = pecan.request.context
    ctx = state.get('ctx')
    if not entry.public:
        if ctx is None:
            raise _no_caller(pecan.request.environ)
        policy.authorize(entry.policy, ctx)
    query = parse_query(entry, pecan.request)
    body = parse_body(entry, pecan.request) if entry.body else None
    return Request(entry, ctx, body, query, state.get('conn'),
                   state.get('conductor'))


def _no_caller(environ: dict) -> exception.CryptoCloudException:
    """Why a request that needs a caller has none."""
    if environ.get('HTTP_X_IDENTITY_STATUS') == 'Confirmed':
        # A valid Keystone token scoped to the system or a domain, or
        # not scoped at all: every resource here belongs to a project.
        return exception.Forbidden(
            reason='the token is not scoped to a project; ask Keystone '
                   'for a project-scoped token')
    return exception.Unauthorized(reason='no identity was given')


# -- request parsing --------------------------------------------------------

def parse_body(entry: routes.Route, request: webob.Request) -> dict:
    """The JSON body, validated against the route's schema."""
    data = request.context.get('body', b'')
    if not data:
        return _validator(entry.body)({})
    ctype = (request.content_type or '').lower()
    if ctype not in JSON_TYPES:
        raise UnsupportedMediaType(type=(ctype or 'none')[:100])
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise exception.InvalidInput(
            reason='the request body is not UTF-8 (byte %d)'
                   % exc.start) from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise exception.InvalidInput(
            reason='malformed JSON in the request body: %s at line %d, '
                   'column %d' % (exc.msg, exc.lineno, exc.colno)) from None
    except _BadConstant as exc:
        raise exception.InvalidInput(
            reason='malformed JSON in the request body: %s is not a JSON '
                   'number' % exc) from None
    except RecursionError:
        raise exception.InvalidInput(
            reason='the JSON in the request body is nested too deeply'
        ) from None
    except ValueError as exc:
        raise exception.InvalidInput(
            reason='malformed JSON in the request body: %s'
                   % str(exc)[:100]) from None
    return _validator(entry.body)(value)


_VALIDATORS: dict[int, schemas.Validator] = {}


def _validator(schema: dict, body_name: str = 'the request body'
               ) -> schemas.Validator:
    # Compiled once per schema object.
    key = id(schema)
    found = _VALIDATORS.get(key)
    if found is None:
        found = _VALIDATORS[key] = schemas.Validator(schema, body_name)
    return found


_QUERY_SCHEMAS: dict[str, dict] = {}


def parse_query(entry: routes.Route, request: webob.Request) -> dict:
    """The query string, converted and validated."""
    qs = request.environ.get('QUERY_STRING', '')
    if not qs:
        return {}
    try:
        pairs = urllib.parse.parse_qsl(qs, keep_blank_values=True,
                                       strict_parsing=True,
                                       max_num_fields=32)
    except ValueError:
        raise exception.InvalidInput(
            reason='the query string is malformed') from None
    spec = entry.query or {}
    values = {}
    for name, value in pairs:
        if name in values:
            raise exception.InvalidInput(
                reason='query parameter %s is given twice' % name[:50])
        kind = spec.get(name, {}).get('type')
        if kind == 'integer':
            if not (value.isascii() and value.isdigit() and len(value) <= 10):
                raise exception.InvalidInput(
                    reason='query parameter %s must be an integer' % name)
            value = int(value)
        elif kind == 'boolean':
            lowered = value.lower()
            if lowered not in ('true', 'false'):
                raise exception.InvalidInput(
                    reason='query parameter %s must be true or false'
                           % name)
            value = lowered == 'true'
        values[name] = value
    schema = _QUERY_SCHEMAS.get(entry.name)
    if schema is None:
        schema = _QUERY_SCHEMAS[entry.name] = {
            'type': 'object', 'additionalProperties': False,
            'properties': spec}
    return _validator(schema, 'the query string')(values)


# -- responses --------------------------------------------------------------

def _default(value):
    if isinstance(value, datetime.datetime):
        return format_time(value)
    raise TypeError('%s is not JSON serialisable' % type(value).__name__)


def format_time(value: datetime.datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z (the database keeps naive UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value.isoformat() + 'Z'


def json_response(status: int, payload) -> webob.Response:
    """A JSON response with ``status``."""
    body = json.dumps(payload, default=_default,
                      separators=(',', ':')).encode('utf-8')
    return webob.Response(body=body, status=status,
                          content_type='application/json', charset=None)


def version_document(url: str) -> dict:
    """What ``/`` and ``/v1`` say about version 1."""
    return {'id': 'v1', 'status': 'CURRENT',
            'links': [{'rel': 'self', 'href': url + '/v1'}]}


def base_url() -> str:
    """The URL clients reach the API at (``[api] public_endpoint``)."""
    public = cfg.CONF.api.public_endpoint
    if public:
        return public.rstrip('/')
    return pecan.request.host_url + pecan.request.script_name


# -- ids and paging -----------------------------------------------------------

def check_uuid(value: str, kind: str) -> str:
    """``value`` if it is a UUID; otherwise it names nothing: 404."""
    if not schemas.UUID_RE.match(value):
        raise exception.ResourceNotFound(kind=kind, id=value[:64])
    return value.lower()


def check_int_id(value: str, kind: str) -> int:
    """``value`` as an integer id; otherwise it names nothing: 404."""
    if not (value.isascii() and value.isdigit() and len(value) <= 10
            and 0 < int(value) <= schemas.MAX_INT_ID):
        raise exception.ResourceNotFound(kind=kind, id=value[:64])
    return int(value)


def page(req: Request, kind: str, collection: str, filters: dict,
         view) -> dict:
    """One page of ``kind`` with a ``next`` link when there may be more."""
    max_limit = cfg.CONF.api.max_limit
    limit = req.query.get('limit', max_limit)
    if limit > max_limit:
        raise exception.InvalidInput(
            reason='limit must be at most %d' % max_limit)
    sort_dir = req.query.get('sort_dir', 'asc')
    marker = req.query.get('marker')
    rows = req.conn.list(kind, filters=filters, limit=limit, marker=marker,
                         sort_dir=sort_dir)
    nxt = None
    if rows and len(rows) >= limit:
        params = dict(req.query, marker=rows[-1]['id'], limit=limit)
        for name, value in params.items():
            if isinstance(value, bool):
                params[name] = 'true' if value else 'false'
        path = req.route.template
        nxt = '%s%s?%s' % (base_url(), path, urllib.parse.urlencode(
            sorted(params.items())))
    return {collection: [view(row) for row in rows], 'next': nxt}
