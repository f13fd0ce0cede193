"""The tenant REST API of a crypto-service instance, as a plain WSGI app.

No web framework sits on the request path: a route is two dict lookups,
a body is one bounded read, one ``json`` decode and one precompiled
fastjsonschema check, then one vHSM call.  Everything that can be built
once (validators, routes, status lines) is built in ``__init__``.
"""

import collections
import http
import json
import threading
import time
import urllib.parse
import uuid

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.cryptoservice import metrics as metrics_mod
from cryptocloud.cryptoservice import schemas
from cryptocloud.cryptoservice import translate

LOG = logging.getLogger(__name__)

JSON_TYPES = frozenset(('application/json', 'application/merge-patch+json'))
HEALTH_CACHE_SECONDS = 1.0
KEYS_PREFIX = '/v1/keys/'
UNMATCHED = 'unmatched'

_STATUS_LINES = {s.value: '%d %s' % (s.value, s.phrase)
                 for s in http.HTTPStatus}


class MethodNotAllowed(exception.CryptoCloudException):
    code = http.HTTPStatus.METHOD_NOT_ALLOWED
    msg_fmt = 'Method %(method)s is not allowed on %(route)s.'


class UnsupportedMediaType(exception.CryptoCloudException):
    code = http.HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    msg_fmt = 'Request bodies must be application/json, not %(type)s.'


class RouteNotFound(exception.NotFound):
    msg_fmt = 'No resource matches %(path)s.'


class BadVHSMReply(exception.CryptoCloudException):
    code = http.HTTPStatus.BAD_GATEWAY
    msg_fmt = 'The vHSM sent a malformed reply: %(reason)s'


class _BadConstant(ValueError):
    pass


def _reject_constant(name):
    raise _BadConstant(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(separators=(',', ':'))


Route = collections.namedtuple(
    'Route', 'method template handler body query status response summary '
             'auth op')
Route.__new__.__defaults__ = (None, None, 200, None, '', True, None)

_KEY_QUERY_VERSION = {'version': dict(schemas.VERSION, description=(
    'Key version (default: latest).'))}
_LIST_QUERY = {
    'limit': {'type': 'integer', 'minimum': 1,
              'maximum': schemas.MAX_LIST_LIMIT,
              'description': 'Largest number of keys to return (default '
                             '%d).' % schemas.DEFAULT_LIST_LIMIT},
    'marker': dict(schemas.KEY_ID, description='Key id after which to '
                                               'start (next_marker of the '
                                               'previous page).'),
    'state': {'type': 'string', 'enum': list(schemas.KEY_STATES)},
}


def _key_action(method, action, handler, op, summary, body=schemas.EMPTY,
                response='key'):
    return Route(method, '/v1/keys/{key_id}/' + action, handler, body, None,
                 200, response, summary, True, op)


def _crypto(op, summary):
    if op in schemas.KEY_OPERATIONS:
        template = '/v1/keys/{key_id}/' + op
    else:
        template = '/v1/' + op
    return Route('POST', template, '_crypto',
                 schemas.OPERATION_BODIES[op], None, 200, op, summary,
                 True, op)


# The one route table: the app dispatches from it and the OpenAPI
# document is generated from it.
ROUTES = (
    Route('GET', '/', '_versions', response='versions',
          summary='List the API versions.', auth=False),
    Route('GET', '/v1', '_version', response='version',
          summary='Describe API version 1.', auth=False),
    Route('GET', '/healthz', '_healthz', response='health',
          summary='Health: 200 when at least one vHSM answers a ping.',
          auth=False),
    Route('GET', '/metrics', '_show_metrics', response='metrics',
          summary='Prometheus metrics (text exposition format).',
          auth=False),
    Route('POST', '/v1/keys', '_create_key', schemas.KEY_CREATE, None,
          201, 'key', 'Create a key; the service chooses its id.'),
    Route('GET', '/v1/keys', '_list_keys', None, _LIST_QUERY, 200,
          'key_list', 'List the project\'s keys, one page at a time.'),
    Route('GET', '/v1/keys/{key_id}', '_get_key', response='key',
          summary='Show a key\'s metadata.'),
    Route('PATCH', '/v1/keys/{key_id}', '_update_key', schemas.KEY_UPDATE,
          None, 200, 'key', 'Change a key\'s description, minimum '
                            'decryption version or make it exportable.'),
    _key_action('POST', 'rotate', '_key_op', 'key.rotate',
                'Add a new key version; it is used from now on.'),
    _key_action('POST', 'enable', '_key_op', 'key.enable',
                'Enable a key.'),
    _key_action('POST', 'disable', '_key_op', 'key.disable',
                'Disable a key; it can do nothing until enabled.'),
    _key_action('POST', 'cancel-deletion', '_key_op', 'key.cancel_deletion',
                'Cancel a scheduled deletion; the key becomes DISABLED.'),
    _key_action('POST', 'schedule-deletion', '_schedule_deletion',
                'key.schedule_deletion',
                'Schedule the key\'s destruction after pending_days.',
                body=schemas.SCHEDULE_DELETION),
    Route('GET', '/v1/keys/{key_id}/public-key', '_public_key', None,
          _KEY_QUERY_VERSION, 200, 'public_key',
          'Show the public key (PEM) of an asymmetric key version.'),
    Route('GET', '/v1/keys/{key_id}/export', '_export', None,
          _KEY_QUERY_VERSION, 200, 'export',
          'Export the material of an exportable key version.'),
    _crypto('encrypt', 'Encrypt; the ciphertext names the key version.'),
    _crypto('decrypt', 'Decrypt a ciphertext made by encrypt.'),
    _crypto('rewrap', 'Re-encrypt a ciphertext under the latest key '
                      'version without revealing the plaintext.'),
    _crypto('sign', 'Sign a message or a digest.'),
    _crypto('verify', 'Verify a signature.'),
    _crypto('hmac', 'Compute a MAC.'),
    _crypto('hmac-verify', 'Check a MAC.'),
    _crypto('datakey', 'Generate a data key wrapped under this key.'),
    _crypto('hash', 'Hash data.'),
    _crypto('random', 'Random bytes from the vHSM.'),
    Route('POST', '/v1/batch', '_batch', 'batch', None, 200, 'batch',
          'Run many crypto operations in one request (one vHSM call).'),
)


class _Entry:
    """A route bound to this app: handler, validators, metric label."""

    __slots__ = ('route', 'template', 'handler', 'validate', 'query',
                 'auth', 'status', 'op')

    def __init__(self, route, handler, validate, query):
        self.route = route
        self.template = route.template
        self.handler = handler
        self.validate = validate
        self.query = query
        self.auth = route.auth
        self.status = route.status
        self.op = (translate.OPERATIONS.get(route.op)
                   if route.handler == '_crypto' else route.op)


def _error_body(exc: exception.CryptoCloudException) -> tuple[int, dict]:
    code = int(exc.code)
    if not 400 <= code <= 599:
        code = 500
    return code, {'error': {'code': code, 'type': exc.error_type,
                            'message': exc.message}}


def _query_validator(spec: dict) -> schemas.Validator:
    return schemas.Validator(
        {'type': 'object', 'additionalProperties': False,
         'properties': spec}, body_name='the query string')


class CryptoServiceApp:
    """WSGI application of the tenant crypto API."""

    def __init__(self, client, authenticator, *, metrics: metrics_mod.Metrics,
                 max_body_size: int, batch_max_items: int):
        self._client = client
        self._auth = authenticator
        self._metrics = metrics
        self._max_body = max_body_size
        self._batch_max_items = batch_max_items
        self._health_lock = threading.Lock()
        self._health = None
        self._health_expires = 0.0
        # path -> {method: entry} for fixed paths; action -> {method:
        # entry} for /v1/keys/{key_id}[/action] (action '' for the key).
        self.static_routes: dict[str, dict[str, _Entry]] = {}
        self.key_routes: dict[str, dict[str, _Entry]] = {}
        for route in ROUTES:
            if route.body == 'batch':
                validate = schemas.Validator(
                    schemas.batch_schema(batch_max_items))
            elif route.body is not None:
                validate = schemas.Validator(route.body)
            else:
                validate = None
            query = _query_validator(route.query) if route.query else None
            entry = _Entry(route, getattr(self, route.handler), validate,
                           query)
            if route.template.startswith('/v1/keys/{key_id}'):
                action = route.template[len('/v1/keys/{key_id}/'):]
                table = self.key_routes.setdefault(action, {})
            else:
                table = self.static_routes.setdefault(route.template, {})
            table[route.method] = entry
        self._batch_items = {op: schemas.Validator(
            schemas.batch_item_schema(op)) for op in schemas.OPERATION_BODIES}

    def routes(self) -> set[tuple[str, str]]:
        """Every (method, template) this app dispatches."""
        found = set()
        for table in (self.static_routes, self.key_routes):
            for methods in table.values():
                for method, entry in methods.items():
                    found.add((method, entry.template))
        return found

    # -- WSGI ---------------------------------------------------------------

    def __call__(self, environ, start_response):
        start = time.perf_counter()
        in_flight = self._metrics.in_flight
        in_flight.inc()
        method = environ['REQUEST_METHOD']
        template = UNMATCHED
        headers = None
        try:
            try:
                # Size before anything else: cheroot drains an unread body
                # to keep the connection, except after a 413.
                length = self._content_length(environ)
                entry, key_id = self._resolve(environ['PATH_INFO'], method)
                template = entry.template
                status, payload = self._dispatch(entry, key_id, environ,
                                                 length)
            except exception.CryptoCloudException as exc:
                status, payload = _error_body(exc)
                headers = self._error_headers(exc, template)
                self._metrics.error(template, exc.error_type)
            except Exception:
                # Never the body or headers: they may hold key material
                # or credentials.
                LOG.exception('Unexpected error serving %s %s', method,
                              template)
                status = 500
                payload = {'error': {
                    'code': 500, 'type': 'InternalError',
                    'message': 'An unexpected error occurred; it has been '
                               'logged.'}}
                self._metrics.error(template, 'InternalError')
            if type(payload) is bytes:
                body = payload
                headers = [('Content-Type', metrics_mod.CONTENT_TYPE)]
            else:
                body = _ENCODER.encode(payload).encode('ascii')
                if headers is None:
                    headers = [('Content-Type', 'application/json')]
            headers.append(('Content-Length', str(len(body))))
            start_response(_STATUS_LINES[status], headers)
        finally:
            in_flight.dec()
        if method not in _KNOWN_METHODS:
            method = 'other'
        self._metrics.observe(method, template, status,
                              time.perf_counter() - start)
        return [body]

    def _resolve(self, path: str, method: str):
        methods = self.static_routes.get(path)
        key_id = None
        if methods is None:
            if not path.startswith(KEYS_PREFIX):
                raise RouteNotFound(path=path[:200])
            key_id, sep, action = path[len(KEYS_PREFIX):].partition('/')
            methods = self.key_routes.get(action)
            # "/v1/keys/<id>/" is not "/v1/keys/<id>".
            if methods is None or not key_id or (sep and not action):
                raise RouteNotFound(path=path[:200])
        entry = methods.get(method)
        if entry is None:
            exc = MethodNotAllowed(method=method[:20],
                                   route=next(iter(methods.values())).template)
            exc.allow = ', '.join(sorted(methods))
            raise exc
        if key_id is not None and not schemas.UUID_RE.match(key_id):
            # A malformed id names no key; same answer as a missing key.
            raise exception.NotFound('No key has the id given in the path; '
                                     'key ids are UUIDs.')
        return entry, key_id

    def _error_headers(self, exc, template):
        headers = [('Content-Type', 'application/json')]
        if isinstance(exc, exception.Unauthorized):
            headers.append(('WWW-Authenticate', 'Bearer realm="cryptocloud"'))
        elif isinstance(exc, MethodNotAllowed):
            headers.append(('Allow', exc.allow))
        return headers

    def _dispatch(self, entry, key_id, environ, length):
        ctx = self._auth.authenticate(environ) if entry.auth else None
        body = None
        if entry.validate is not None:
            body = entry.validate(self._read_json(environ, length))
        query = None
        if entry.query is not None:
            query = self._parse_query(entry, environ.get('QUERY_STRING', ''))
        return entry.handler(entry, ctx, key_id, body, query)

    # -- request bodies -------------------------------------------------------

    def _content_length(self, environ) -> int | None:
        value = environ.get('CONTENT_LENGTH')
        if not value:
            return None
        try:
            length = int(value)
        except ValueError:
            raise exception.InvalidInput(
                reason='Content-Length is not a number') from None
        if length < 0:
            raise exception.InvalidInput(reason='Content-Length is negative')
        if length > self._max_body:
            raise exception.PayloadTooLarge(limit=self._max_body)
        return length

    def _read_json(self, environ, length: int | None):
        stream = environ['wsgi.input']
        if length is None:
            if 'chunked' not in environ.get('HTTP_TRANSFER_ENCODING',
                                            '').lower():
                return {}
            self._check_type(environ)
            # Chunked: no length up front, so read one byte past the limit
            # to tell "exactly the limit" from "too large".
            data = stream.read(self._max_body + 1)
            if len(data) > self._max_body:
                raise exception.PayloadTooLarge(limit=self._max_body)
            if not data:
                return {}
        elif length == 0:
            return {}
        else:
            self._check_type(environ)
            data = stream.read(length)
            if len(data) != length:
                raise exception.InvalidInput(
                    reason='the request body is shorter than its '
                           'Content-Length')
        try:
            text = data.decode('utf-8')
        except UnicodeDecodeError as exc:
            raise exception.InvalidInput(
                reason='the request body is not UTF-8 (byte %d)'
                       % exc.start) from None
        try:
            return _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            raise exception.InvalidInput(
                reason='malformed JSON in the request body: %s at line %d, '
                       'column %d' % (exc.msg, exc.lineno, exc.colno)
            ) from None
        except _BadConstant as exc:
            raise exception.InvalidInput(
                reason='malformed JSON in the request body: %s is not a '
                       'JSON number' % exc) from None
        except RecursionError:
            raise exception.InvalidInput(
                reason='the JSON in the request body is nested too '
                       'deeply') from None
        except ValueError as exc:
            # e.g. an integer with more digits than Python converts.
            raise exception.InvalidInput(
                reason='malformed JSON in the request body: %s'
                       % str(exc)[:100]) from None

    @staticmethod
    def _check_type(environ) -> None:
        ctype = environ.get('CONTENT_TYPE') or ''
        base = ctype.partition(';')[0].strip().lower()
        if base not in JSON_TYPES:
            raise UnsupportedMediaType(type=(base or 'none')[:100])

    def _parse_query(self, entry, query_string: str) -> dict:
        if not query_string:
            return {}
        values = {}
        try:
            pairs = urllib.parse.parse_qsl(query_string,
                                           keep_blank_values=True,
                                           strict_parsing=True,
                                           max_num_fields=20)
        except ValueError:
            raise exception.InvalidInput(
                reason='the query string is malformed') from None
        spec = entry.route.query
        for name, value in pairs:
            if name in values:
                raise exception.InvalidInput(
                    reason='query parameter %s is given twice' % name[:50])
            schema = spec.get(name)
            if schema is not None and schema.get('type') == 'integer':
                if not (value.isascii() and value.isdigit()
                        and len(value) <= 10):
                    raise exception.InvalidInput(
                        reason='query parameter %s must be an integer'
                               % name)
                value = int(value)
            values[name] = value
        return entry.query(values)

    # -- handlers: (entry, ctx, key_id, body, query) -> (status, payload) ---

    def _versions(self, entry, ctx, key_id, body, query):
        return 200, {'versions': [_V1]}

    def _version(self, entry, ctx, key_id, body, query):
        return 200, {'version': _V1}

    def _show_metrics(self, entry, ctx, key_id, body, query):
        return 200, self._metrics.render()

    def _healthz(self, entry, ctx, key_id, body, query):
        now = time.monotonic()
        health = self._health
        if health is None or now >= self._health_expires:
            # One thread pings; the others wait for its answer instead of
            # piling pings onto the vHSMs.
            with self._health_lock:
                if self._health is None or (time.monotonic()
                                            >= self._health_expires):
                    self._health = self._check_health()
                    self._health_expires = (time.monotonic()
                                            + HEALTH_CACHE_SECONDS)
                health = self._health
        return health

    def _check_health(self):
        try:
            answers = self._client.ping_all()
        except Exception as exc:
            LOG.warning('Health check could not ping the vHSMs: %s',
                        type(exc).__name__)
            answers = {}
        vhsms = {}
        up = 0
        for endpoint, answer in dict(answers).items():
            state = _ping_state(answer)
            if state['status'] == 'up':
                up += 1
            vhsms[str(endpoint)] = state
        if up:
            return 200, {'status': 'ok', 'vhsms': vhsms}
        return 503, {'status': 'unavailable', 'vhsms': vhsms,
                     'error': {'code': 503, 'type': 'VHSMUnavailable',
                               'message': 'No vHSM answered a ping.'}}

    def _create_key(self, entry, ctx, key_id, body, query):
        args = {'key_id': str(uuid.uuid4()),
                'algorithm': body['algorithm'],
                'purpose': body.get('purpose'),
                'name': body.get('name'),
                'description': body.get('description'),
                'exportable': body.get('exportable', False)}
        return 201, self._client.call('key.create', ctx.project_id, args)

    def _list_keys(self, entry, ctx, key_id, body, query):
        limit = query.get('limit', schemas.DEFAULT_LIST_LIMIT)
        result = self._client.call('key.list', ctx.project_id, {
            'limit': limit, 'marker': query.get('marker'),
            'state': query.get('state')})
        keys = result['keys']
        marker = keys[-1]['key_id'] if keys and len(keys) >= limit else None
        return 200, {'keys': keys, 'next_marker': marker}

    def _get_key(self, entry, ctx, key_id, body, query):
        return 200, self._client.call('key.get', ctx.project_id,
                                      {'key_id': key_id})

    def _update_key(self, entry, ctx, key_id, body, query):
        args = dict(body, key_id=key_id)
        if 'min_decryption_version' in args:
            args['min_decryption_version'] = int(
                args['min_decryption_version'])
        return 200, self._client.call('key.update', ctx.project_id, args)

    def _key_op(self, entry, ctx, key_id, body, query):
        return 200, self._client.call(entry.op, ctx.project_id,
                                      {'key_id': key_id})

    def _schedule_deletion(self, entry, ctx, key_id, body, query):
        return 200, self._client.call(
            'key.schedule_deletion', ctx.project_id,
            {'key_id': key_id,
             'pending_days': int(body.get('pending_days', 30))})

    def _public_key(self, entry, ctx, key_id, body, query):
        result = self._client.call('key.public', ctx.project_id, {
            'key_id': key_id, 'version': query.get('version')})
        return 200, translate.render_public_key(result)

    def _export(self, entry, ctx, key_id, body, query):
        result = self._client.call('key.export', ctx.project_id, {
            'key_id': key_id, 'version': query.get('version')})
        return 200, translate.render_export(result)

    def _crypto(self, entry, ctx, key_id, body, query):
        op = entry.op
        result = self._client.call(op.protocol_op, ctx.project_id,
                                   op.build(key_id, body, ''))
        return 200, op.render(result)

    def _batch(self, entry, ctx, key_id, body, query):
        items = body['items']
        self._metrics.batch_items(len(items))
        results = [None] * len(items)
        calls = []
        slots = []
        for index, item in enumerate(items):
            where = 'items[%d]' % index
            try:
                name = item.get('op')
                op = (translate.OPERATIONS.get(name)
                      if type(name) is str else None)
                if op is None:
                    raise exception.InvalidInput(
                        reason='%s.op must be one of %s' % (
                            where, ', '.join(translate.OPERATIONS)))
                self._batch_items[name](item, where)
                args = op.build(item.get('key_id'), item, where)
            except exception.InvalidInput as exc:
                results[index] = {'status': 400, 'error': exc.to_dict()}
                continue
            calls.append({'op': op.protocol_op, 'args': args})
            slots.append((index, op))
        if calls:
            reply = self._client.call('batch', ctx.project_id,
                                      {'items': calls})
            answers = reply.get('results')
            if not isinstance(answers, list) or len(answers) != len(calls):
                raise BadVHSMReply(reason='wrong number of batch results')
            for (index, op), answer in zip(slots, answers, strict=True):
                if answer.get('ok'):
                    results[index] = {'status': 200,
                                      'result': op.render(answer['result'])}
                else:
                    err = exception.from_dict(answer.get('error') or {})
                    code, payload = _error_body(err)
                    results[index] = {'status': code,
                                      'error': payload['error']}
        return 200, {'results': results}


_V1 = {'id': 'v1', 'status': 'CURRENT',
       'links': [{'rel': 'self', 'href': '/v1'}]}
_KNOWN_METHODS = frozenset(('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD',
                            'OPTIONS'))


def _ping_state(answer) -> dict:
    """Normalise one ``ping_all`` value to {"status": "up"|"down", ...}.

    The client reports ``True`` for an endpoint that answered and a
    string saying what went wrong otherwise.
    """
    if answer is True:
        return {'status': 'up'}
    if isinstance(answer, str):
        return {'status': 'down', 'error': answer[:200]}
    if isinstance(answer, BaseException):
        return {'status': 'down', 'error': type(answer).__name__}
    return {'status': 'down'}
