"""OpenAPI 3.0 document of the admin API, generated from the route table.

Regenerate the committed copy with::

    python -m cryptocloud.api.openapi api-ref/admin-v1.yaml

A unit test fails when the committed file and a fresh generation differ.
"""

import copy
import re
import sys

from cryptocloud.api import routes
from cryptocloud.api import schemas
from cryptocloud.common import openapi as common_openapi

DEFAULT_OUTFILE = 'api-ref/admin-v1.yaml'

_PATH_PARAMS = {
    'node_id': dict(schemas.INT_ID, description='Node id.'),
    'association_id': dict(schemas.INT_ID, description='Association id.'),
    'credential_id': {'type': 'string',
                      'pattern': schemas.CREDENTIAL_ID_PATTERN,
                      'description': 'Credential id (32 hex digits).'},
}
_ERRORS = {
    400: 'Invalid input: malformed JSON, unknown or missing fields, values '
         'out of range, a bad limit or marker (the message names the '
         'field).',
    401: 'No credentials, or wrong ones.',
    403: 'Policy does not allow the call.',
    404: 'No such resource (or not the caller\'s project\'s).',
    405: 'The path does not serve this method (see Allow).',
    409: 'The resource\'s state does not allow the change, or the vHSM '
         'group is still used by services.',
    413: 'The request body is larger than [api] max_body_size.',
    415: 'The request body is not application/json.',
    503: 'The conductor could not be reached; the task was marked FAILED.',
}


def _schema_name(response: str) -> str:
    return ''.join(part.capitalize() for part in response.split('_'))


def _error(code: int) -> dict:
    return {'description': _ERRORS[code], 'content': {'application/json': {
        'schema': {'$ref': '#/components/schemas/Error'}}}}


def _param_schema(name: str) -> dict:
    schema = _PATH_PARAMS.get(name)
    if schema is None:
        schema = dict(schemas.UUID, description='%s (UUID).'
                      % name.replace('_', ' ').capitalize())
    return copy.deepcopy(schema)


def _operation(route: routes.Route) -> dict:
    op = {'summary': route.summary,
          'operationId': route.name.replace(':', '_')}
    if route.policy:
        op['x-policy'] = route.policy
    else:
        op['security'] = []
    params = []
    for name in re.findall(r'{(\w+)}', route.template):
        schema = _param_schema(name)
        description = schema.pop('description')
        params.append({'name': name, 'in': 'path', 'required': True,
                       'description': description, 'schema': schema})
    for name, schema in sorted((route.query or {}).items()):
        schema = copy.deepcopy(schema)
        param = {'name': name, 'in': 'query', 'required': False}
        description = schema.pop('description', None)
        if description:
            param['description'] = description
        param['schema'] = schema
        params.append(param)
    if params:
        op['parameters'] = params
    if route.body is not None:
        op['requestBody'] = {
            'required': not route.body_optional,
            'content': {'application/json': {
                'schema': copy.deepcopy(route.body)}}}
    if route.status == 204:
        responses = {'204': {'description': 'Done; no body.'}}
    else:
        responses = {str(route.status): {
            'description': 'Accepted: the task is recorded and cast.'
            if route.status == 202 else 'Success.',
            'content': {'application/json': {'schema': {
                '$ref': '#/components/schemas/%s'
                        % _schema_name(route.response)}}}}}
    codes = set(route.errors)
    if route.policy:
        codes |= {400, 401, 403, 405}
    if '{' in route.template:
        codes.add(404)
    if route.body is not None:
        codes |= {400, 413, 415}
    if route.query:
        codes.add(400)
    for code in sorted(codes):
        responses[str(code)] = _error(code)
    op['responses'] = responses
    return op


def build_document() -> dict:
    """The OpenAPI document as a dict."""
    paths: dict = {}
    for route in routes.ROUTES:
        paths.setdefault(route.template, {})[route.method.lower()] = (
            _operation(route))
    components = {_schema_name(name): copy.deepcopy(schema)
                  for name, schema in schemas.RESPONSES.items()}
    return {
        'openapi': '3.0.3',
        'info': {
            'title': 'cryptocloud admin API',
            'version': '1.0',
            'description': (
                'Control plane of cryptocloud: nodes, vHSM groups, '
                'services and their credentials, instances, vHSMs, '
                'associations and tasks. Every mutating call records a '
                'task first and answers 202 with it. Every error body is '
                '{"error": {"code", "type", "message"}}. Policy rules '
                'are named in x-policy.'),
            'x-generated-by': 'python -m cryptocloud.api.openapi',
        },
        'servers': [{'url': '/'}],
        'security': [{'basic': []}, {'keystone': []}],
        'paths': dict(sorted(paths.items())),
        'components': {
            'securitySchemes': {
                'basic': {'type': 'http', 'scheme': 'basic',
                          'description': '[api] auth_strategy = '
                                         'http_basic.'},
                'keystone': {'type': 'apiKey', 'in': 'header',
                             'name': 'X-Auth-Token',
                             'description': '[api] auth_strategy = '
                                            'keystone.'},
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
