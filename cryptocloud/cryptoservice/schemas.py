"""JSON schemas of the tenant REST API, compiled once with fastjsonschema.

Request schemas are the single source of truth for what a body may hold:
the app validates with the compiled functions and the OpenAPI generator
publishes the same dictionaries.  Binary fields are standard base64 with
padding; the schemas only bound their length, the app decodes them and
names the field when one is not valid base64.
"""

import copy
import re

import fastjsonschema

from cryptocloud.common import exception

UUID_PATTERN = ('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                '[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
UUID_RE = re.compile(UUID_PATTERN)

# Decoded-size bounds.  The body limit ([cryptoservice] max_body_size)
# bounds everything anyway; these keep single fields sensible and give
# the tenant a message naming the field instead of a 413.
MAX_DATA = 1024 * 1024
MAX_AAD = 64 * 1024
MAX_DIGEST = 64
MAX_SIGNATURE = 1024
MAX_MAC = 64
MAX_CIPHERTEXT = MAX_DATA + 4096
MAX_USER_ID = 1024
MAX_NAME = 255
MAX_DESCRIPTION = 255
MAX_RANDOM = 1024
MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100
DEFAULT_BATCH_MAX_ITEMS = 256

KEY_STATES = ('ENABLED', 'DISABLED', 'PENDING_DELETION')
HASH_ALGORITHMS = ('SM3', 'SHA256', 'SHA384', 'SHA512')
DATAKEY_SPECS = ('SM4_128', 'AES_128', 'AES_256')
CIPHERTEXT_FORMATS = ('C1C3C2', 'C1C2C3')
SIGNATURE_FORMATS = ('der', 'raw')
PADDINGS = ('pss', 'pkcs1v15')
SIGN_HASHES = ('SHA256', 'SHA384', 'SHA512')


def b64_length(n: int) -> int:
    """Length of the padded base64 text of ``n`` bytes."""
    return 4 * ((n + 2) // 3)


def _b64(max_bytes: int, description: str, min_bytes: int = 0) -> dict:
    schema = {'type': 'string', 'format': 'byte',
              'maxLength': b64_length(max_bytes),
              'description': description}
    if min_bytes:
        schema['minLength'] = b64_length(min_bytes)
    return schema


def _obj(properties: dict, required: tuple = (), **extra) -> dict:
    schema = {'type': 'object', 'additionalProperties': False,
              'properties': properties}
    if required:
        schema['required'] = list(required)
    schema.update(extra)
    return schema


KEY_ID = {'type': 'string', 'pattern': UUID_PATTERN,
          'description': 'Key id (UUID).'}
VERSION = {'type': 'integer', 'minimum': 1, 'maximum': 2 ** 31 - 1,
           'description': 'Key version.'}
CIPHERTEXT_STRING = {
    'type': 'string', 'minLength': 6,
    'maxLength': 16 + b64_length(MAX_CIPHERTEXT),
    'description': 'Ciphertext as returned by encrypt: '
                   '"cc:v<version>:<base64>".'}
AAD = _b64(MAX_AAD, 'Additional authenticated data (base64); the same '
                    'value must be given to decrypt.')
CIPHERTEXT_FORMAT = {'type': 'string', 'enum': list(CIPHERTEXT_FORMATS),
                     'description': 'SM2 only: C1C3C2 (default, '
                                    'GB/T 35276) or C1C2C3.'}

_SIGN_FIELDS = {
    'message': _b64(MAX_DATA, 'Message to sign (base64); give exactly '
                              'one of message and digest.'),
    'digest': _b64(MAX_DIGEST, 'Pre-computed digest (base64).',
                   min_bytes=1),
    'user_id': {'type': 'string', 'minLength': 1, 'maxLength': MAX_USER_ID,
                'description': 'SM2 only: signer identity (default '
                               '1234567812345678).'},
    'signature_format': {'type': 'string', 'enum': list(SIGNATURE_FORMATS),
                         'description': 'ECDSA/SM2: der (default) or raw '
                                        'r||s.'},
    'padding': {'type': 'string', 'enum': list(PADDINGS),
                'description': 'RSA only.'},
    'hash': {'type': 'string', 'enum': list(SIGN_HASHES),
             'description': 'RSA only: digest algorithm.'},
}

# Bodies of the calls on one key (and of hash/random); also the per-op
# shape of batch items, minus "op" and "key_id".
OPERATION_BODIES = {
    'encrypt': _obj({
        'plaintext': _b64(MAX_DATA, 'Data to encrypt (base64).'),
        'aad': AAD,
        'ciphertext_format': CIPHERTEXT_FORMAT,
    }, ('plaintext',)),
    'decrypt': _obj({
        'ciphertext': CIPHERTEXT_STRING,
        'aad': AAD,
        'ciphertext_format': CIPHERTEXT_FORMAT,
    }, ('ciphertext',)),
    'rewrap': _obj({
        'ciphertext': CIPHERTEXT_STRING,
        'aad': AAD,
    }, ('ciphertext',)),
    'sign': _obj(dict(_SIGN_FIELDS)),
    'verify': _obj(dict(
        _SIGN_FIELDS,
        signature=_b64(MAX_SIGNATURE, 'Signature (base64).', min_bytes=1),
        key_version=dict(VERSION, description='Key version that made the '
                                              'signature (default: '
                                              'latest).')),
        ('signature',)),
    'hmac': _obj({
        'data': _b64(MAX_DATA, 'Data to authenticate (base64).'),
    }, ('data',)),
    'hmac-verify': _obj({
        'data': _b64(MAX_DATA, 'Data that was authenticated (base64).'),
        'mac': _b64(MAX_MAC, 'MAC to check (base64).', min_bytes=1),
        'key_version': dict(VERSION, description='Key version that made '
                                                 'the MAC (default: '
                                                 'latest).'),
    }, ('data', 'mac')),
    'datakey': _obj({
        'spec': {'type': 'string', 'enum': list(DATAKEY_SPECS),
                 'description': 'Data key type (default AES_256).'},
        'include_plaintext': {'type': 'boolean',
                              'description': 'Return the plaintext data '
                                             'key too (default true).'},
        'aad': AAD,
    }),
    'hash': _obj({
        'algorithm': {'type': 'string', 'enum': list(HASH_ALGORITHMS)},
        'data': _b64(MAX_DATA, 'Data to hash (base64).'),
    }, ('algorithm', 'data')),
    'random': _obj({
        'length': {'type': 'integer', 'minimum': 1, 'maximum': MAX_RANDOM,
                   'description': 'Number of random bytes.'},
    }, ('length',)),
}

# Operations that act on a key (batch items of these carry key_id).
KEY_OPERATIONS = frozenset(('encrypt', 'decrypt', 'rewrap', 'sign',
                            'verify', 'hmac', 'hmac-verify', 'datakey'))

KEY_CREATE = _obj({
    'algorithm': {'type': 'string', 'pattern': '^[A-Z0-9_]{1,32}$',
                  'description': 'Key algorithm, e.g. SM2, SM4, AES_256, '
                                 'RSA_3072, EC_P256, HMAC_SM3, '
                                 'HMAC_SHA256; the vHSM rejects an '
                                 'algorithm it does not support.'},
    'purpose': {'type': 'string', 'pattern': '^[a-z_]{1,16}$',
                'description': 'Key purpose: encrypt, sign or mac, as the '
                               'algorithm allows; default: the '
                               'algorithm\'s default purpose.'},
    'name': {'type': 'string', 'minLength': 1, 'maxLength': MAX_NAME},
    'description': {'type': 'string', 'maxLength': MAX_DESCRIPTION},
    'exportable': {'type': 'boolean',
                   'description': 'Allow export of the key material '
                                  '(default false; cannot be undone).'},
}, ('algorithm',))

KEY_UPDATE = _obj({
    'description': {'type': 'string', 'maxLength': MAX_DESCRIPTION},
    'min_decryption_version': VERSION,
    'exportable': {'type': 'boolean', 'enum': [True],
                   'description': 'Only true: a key once exportable stays '
                                  'so.'},
}, minProperties=1)

SCHEDULE_DELETION = _obj({
    'pending_days': {'type': 'integer', 'minimum': 7, 'maximum': 30,
                     'description': 'Days before the key is destroyed '
                                    '(default 30).'},
})

EMPTY = _obj({}, description='No fields; an empty body is accepted.')


def batch_schema(max_items: int) -> dict:
    """Top-level batch body; items are checked one by one by the app."""
    return _obj({
        'items': {'type': 'array', 'minItems': 1, 'maxItems': max_items,
                  'items': {'type': 'object'},
                  'description': 'Operations, run in order.'},
    }, ('items',))


def batch_item_schema(op: str) -> dict:
    """Schema of one batch item of ``op``."""
    body = copy.deepcopy(OPERATION_BODIES[op])
    body['properties']['op'] = {'type': 'string', 'enum': [op]}
    required = ['op'] + body.get('required', [])
    if op in KEY_OPERATIONS:
        body['properties']['key_id'] = KEY_ID
        required.insert(1, 'key_id')
    body['required'] = required
    return body


def batch_item_openapi_schema() -> dict:
    """A documentation-only union of every batch item shape."""
    return {'oneOf': [batch_item_schema(op) for op in OPERATION_BODIES]}


# --- response shapes (documentation and tests) -------------------------

_NULLABLE_STR = {'type': 'string', 'nullable': True}
KEY = {
    'type': 'object',
    'properties': {
        'key_id': {'type': 'string'},
        'project_id': {'type': 'string'},
        'name': _NULLABLE_STR,
        'description': _NULLABLE_STR,
        'algorithm': {'type': 'string'},
        'purpose': {'type': 'string'},
        'state': {'type': 'string', 'enum': list(KEY_STATES)},
        'exportable': {'type': 'boolean'},
        'latest_version': {'type': 'integer'},
        'min_decryption_version': {'type': 'integer'},
        'created_at': _NULLABLE_STR,
        'updated_at': _NULLABLE_STR,
        'deletion_date': _NULLABLE_STR,
    },
}
_KV = {'key_id': {'type': 'string'}, 'key_version': {'type': 'integer'}}
_B64_OUT = {'type': 'string', 'format': 'byte'}
_VALID = dict(_KV, valid={'type': 'boolean'})

RESPONSES = {
    'versions': {'type': 'object', 'properties': {
        'versions': {'type': 'array', 'items': {'type': 'object'}}}},
    'version': {'type': 'object', 'properties': {
        'version': {'type': 'object'}}},
    'health': {'type': 'object', 'properties': {
        'status': {'type': 'string'},
        'vhsms': {'type': 'object', 'additionalProperties': {
            'type': 'object'}}}},
    'key': KEY,
    'key_list': {'type': 'object', 'properties': {
        'keys': {'type': 'array', 'items': KEY},
        'next_marker': _NULLABLE_STR}},
    'public_key': {'type': 'object', 'properties': dict(
        _KV, algorithm={'type': 'string'},
        public_key_pem={'type': 'string'})},
    'export': {'type': 'object', 'properties': dict(
        _KV, algorithm={'type': 'string'}, material=_B64_OUT,
        public_key_pem=_NULLABLE_STR)},
    'encrypt': {'type': 'object', 'properties': dict(
        _KV, ciphertext={'type': 'string'})},
    'decrypt': {'type': 'object', 'properties': dict(
        _KV, plaintext=_B64_OUT)},
    'rewrap': {'type': 'object', 'properties': dict(
        _KV, ciphertext={'type': 'string'})},
    'sign': {'type': 'object', 'properties': dict(_KV, signature=_B64_OUT)},
    'verify': {'type': 'object', 'properties': _VALID},
    'hmac': {'type': 'object', 'properties': dict(_KV, mac=_B64_OUT)},
    'hmac-verify': {'type': 'object', 'properties': _VALID},
    'datakey': {'type': 'object', 'properties': dict(
        _KV, ciphertext={'type': 'string'}, plaintext=_B64_OUT)},
    'hash': {'type': 'object', 'properties': {
        'algorithm': {'type': 'string'}, 'digest': _B64_OUT}},
    'random': {'type': 'object', 'properties': {'random': _B64_OUT}},
    'batch': {'type': 'object', 'properties': {'results': {
        'type': 'array', 'items': {'type': 'object', 'properties': {
            'status': {'type': 'integer'},
            'result': {'type': 'object'},
            'error': {'$ref': '#/components/schemas/ErrorDetail'}}}}}},
    'error': {'type': 'object', 'required': ['error'], 'properties': {
        'error': {'$ref': '#/components/schemas/ErrorDetail'}}},
}
ERROR_DETAIL = {'type': 'object', 'required': ['code', 'type', 'message'],
                'properties': {'code': {'type': 'integer'},
                               'type': {'type': 'string'},
                               'message': {'type': 'string'}}}

# Longest message text quoted back to the tenant: field names chosen by
# the tenant must not turn an error into a large response.
_MAX_MESSAGE = 300


class Validator:
    """A compiled schema; calling it raises InvalidInput naming the field."""

    __slots__ = ('schema', '_validate', '_body_name')

    def __init__(self, schema: dict, body_name: str = 'the request body'):
        self.schema = schema
        self._validate = fastjsonschema.compile(_strip_docs(schema))
        self._body_name = body_name

    def __call__(self, data, where: str = ''):
        """Return ``data`` if valid; ``where`` prefixes field paths."""
        try:
            return self._validate(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            prefix = where + '.' if where else ''
            raise exception.InvalidInput(reason=describe_error(
                exc, prefix, where or self._body_name)) from None


def describe_error(exc: fastjsonschema.JsonSchemaValueException,
                   prefix: str, body_name: str) -> str:
    """Turn fastjsonschema's message into one that names the field."""
    message = exc.message
    if message.startswith('data.'):
        message = prefix + message[5:]
    elif message.startswith('data'):
        message = body_name + message[4:]
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + '...'
    return message


def _strip_docs(schema):
    # OpenAPI-only keywords would make fastjsonschema check formats it
    # does not know ("byte") or warn; validation never needs them.
    if isinstance(schema, list):
        return [_strip_docs(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ('description', 'format', 'nullable', 'discriminator'):
            continue
        if key == 'properties':
            # Property names are data here, not keywords: keep them all.
            out[key] = {name: _strip_docs(sub)
                        for name, sub in value.items()}
        else:
            out[key] = _strip_docs(value)
    return out
