"""OpenAPI 3.0 document of the tenant API, generated from the route table.

Regenerate the committed copy with::

    python -m cryptocloud.cryptoservice.openapi api-ref/cryptoservice-v1.yaml

A unit test fails when the committed file and a fresh generation differ.
"""

import copy
import sys

from cryptocloud.common import openapi as common_openapi
from cryptocloud.cryptoservice import app as app_mod
from cryptocloud.cryptoservice import schemas

DEFAULT_OUTFILE = 'api-ref/cryptoservice-v1.yaml'

_ERRORS = {
    400: 'Invalid input: malformed JSON, unknown or missing fields, bad '
         'base64 or ciphertext (the message names the field).',
    401: 'No credential or an invalid one.',
    403: 'The key is not exportable.',
    404: 'No such key (or not this project\'s).',
    409: 'The key\'s state does not allow the operation.',
    413: 'The request body is too large.',
    415: 'The request body is not application/json.',
    503: 'No vHSM could be reached.',
}

_NAME_TAKEN = 'The project already has a key of this name.'


def _error_response(text: str) -> dict:
    return {'description': text, 'content': {'application/json': {
        'schema': {'$ref': '#/components/schemas/Error'}}}}


def _operation(route) -> dict:
    op = {'summary': route.summary,
          'operationId': _operation_id(route)}
    if not route.auth:
        op['security'] = []
    params = []
    if '{key_id}' in route.template:
        params.append({'name': 'key_id', 'in': 'path', 'required': True,
                       'schema': copy.deepcopy(schemas.KEY_ID)})
    for name, schema in sorted((route.query or {}).items()):
        schema = copy.deepcopy(schema)
        description = schema.pop('description', None)
        param = {'name': name, 'in': 'query', 'required': False,
                 'schema': schema}
        if description:
            param['description'] = description
        params.append(param)
    if params:
        op['parameters'] = params
    if route.body is not None:
        if route.body == 'batch':
            body = schemas.batch_schema(schemas.DEFAULT_BATCH_MAX_ITEMS)
            body['properties']['items']['items'] = (
                schemas.batch_item_openapi_schema())
            body['properties']['items']['description'] = (
                'Operations, answered in order ([cryptoservice] '
                'batch_max_items, default %d).'
                % schemas.DEFAULT_BATCH_MAX_ITEMS)
        else:
            body = copy.deepcopy(route.body)
        op['requestBody'] = {
            'required': bool(body.get('required')
                             or body.get('minProperties')),
            'content': {'application/json': {'schema': body}}}
    responses = {}
    if route.response == 'metrics':
        responses[str(route.status)] = {
            'description': 'Prometheus text exposition.',
            'content': {'text/plain': {'schema': {'type': 'string'}}}}
    else:
        responses[str(route.status)] = {
            'description': 'Success.',
            'content': {'application/json': {'schema': {
                '$ref': '#/components/schemas/%s' % _schema_name(
                    route.response)}}}}
    if route.handler == '_healthz':
        responses['503'] = {
            'description': 'No vHSM answered a ping.',
            'content': {'application/json': {'schema': {
                '$ref': '#/components/schemas/Health'}}}}
    elif route.auth:
        codes = [400, 401, 503]
        if route.body is not None:
            codes += [413, 415]
        if '{key_id}' in route.template:
            codes += [404, 409]
        texts = dict(_ERRORS)
        if route.handler == '_export':
            codes.append(403)
        elif route.handler == '_create_key':
            codes.append(409)
            texts[409] = _NAME_TAKEN
        for code in sorted(codes):
            responses[str(code)] = _error_response(texts[code])
    if route.body is not None or route.query:
        responses.setdefault('400', _error_response(_ERRORS[400]))
    op['responses'] = responses
    return op


def _schema_name(response: str) -> str:
    return ''.join(part.capitalize()
                   for part in response.replace('-', '_').split('_'))


def _operation_id(route) -> str:
    words = [route.method.lower()]
    for part in route.template.strip('/').split('/'):
        if part and part != '{key_id}':
            words.append(part.replace('-', '_'))
    if '{key_id}' in route.template:
        words.append('by_key')
    return '_'.join(words) if len(words) > 1 else 'get_root'


def build_document() -> dict:
    """The OpenAPI document as a dict."""
    paths: dict = {}
    for route in app_mod.ROUTES:
        paths.setdefault(route.template, {})[route.method.lower()] = (
            _operation(route))
    components = {name: copy.deepcopy(schema) for name, schema in (
        (_schema_name(n), s) for n, s in schemas.RESPONSES.items())}
    components['ErrorDetail'] = copy.deepcopy(schemas.ERROR_DETAIL)
    return {
        'openapi': '3.0.3',
        'info': {
            'title': 'cryptocloud crypto service',
            'version': '1.0',
            'description': (
                'Tenant API of a cryptocloud service instance. Binary '
                'values are standard base64 with padding; ciphertexts are '
                '"cc:v<key version>:<base64>". Every error body is '
                '{"error": {"code", "type", "message"}}.'),
            'x-generated-by': 'python -m cryptocloud.cryptoservice.openapi',
        },
        'servers': [{'url': '/'}],
        'security': [{'bearer': []}, {'authToken': []}],
        'paths': dict(sorted(paths.items())),
        'components': {
            'securitySchemes': {
                'bearer': {'type': 'http', 'scheme': 'bearer',
                           'description': 'Service credential '
                                          '"<id>.<secret>".'},
                'authToken': {'type': 'apiKey', 'in': 'header',
                              'name': 'X-Auth-Token'},
            },
            'schemas': dict(sorted(components.items())),
        },
    }


def render() -> str:
    """The OpenAPI document as YAML text (stable across runs)."""
    return common_openapi.dump(build_document())


def main(argv: list[str] | None = None) -> int:
    """Write the document to OUTFILE (default: stdout)."""
    return common_openapi.write_main(render, argv)


if __name__ == '__main__':
    sys.exit(main())
