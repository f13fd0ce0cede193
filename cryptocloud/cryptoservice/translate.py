"""Translation between REST bodies and internal-protocol operation args.

REST carries binary values as standard base64 and ciphertexts as
``cc:v<N>:<base64>`` strings that embed the key version; the internal
protocol carries raw bytes and a separate ``version``.  Both the single
calls and the batch endpoint use the same builders and renderers, so a
batch item means exactly what the single call means.
"""

import base64
import binascii
import dataclasses
from collections.abc import Callable

from cryptocloud.common import exception
from cryptocloud.cryptoservice import schemas

CIPHERTEXT_PREFIX = 'cc:v'
_MAX_VERSION = 2 ** 31 - 1


def _field(where: str, name: str) -> str:
    return where + '.' + name if where else name


def b64decode(value: str, where: str, name: str) -> bytes:
    """Decode standard padded base64; 400 naming the field otherwise."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise exception.InvalidInput(
            reason='%s is not valid base64 (standard alphabet, with '
                   'padding)' % _field(where, name)) from None


def b64encode(value: bytes) -> str:
    """Standard padded base64 text of ``value``."""
    return base64.b64encode(value).decode('ascii')


def _optional_b64(body: dict, where: str, name: str) -> bytes | None:
    value = body.get(name)
    if value is None:
        return None
    return b64decode(value, where, name)


def parse_ciphertext(value: str, where: str,
                     name: str = 'ciphertext') -> tuple[int, bytes]:
    """Split ``cc:v<N>:<base64>`` into the key version and the bytes."""
    bad = exception.InvalidInput(
        reason='%s must look like cc:v<version>:<base64>, as returned by '
               'encrypt' % _field(where, name))
    if not value.startswith(CIPHERTEXT_PREFIX):
        raise bad
    sep = value.find(':', 4)
    digits = value[4:sep]
    # Only canonical decimal versions: "v01" or "v+1" would make two
    # spellings of one ciphertext.
    if (sep < 0 or not digits or len(digits) > 10 or not digits.isdigit()
            or not digits.isascii() or digits[0] == '0'):
        raise bad
    version = int(digits)
    if version > _MAX_VERSION:
        raise bad
    blob = b64decode(value[sep + 1:], where, name)
    if not blob:
        raise bad
    return version, blob


def format_ciphertext(version: int, blob: bytes) -> str:
    """The REST form of a ciphertext made by key version ``version``."""
    return '%s%d:%s' % (CIPHERTEXT_PREFIX, version, b64encode(blob))


def _opt_int(body: dict, name: str) -> int | None:
    value = body.get(name)
    # The schema accepts 3.0 as an integer (JSON Schema says it is one);
    # the vHSM wants a real int.
    return None if value is None else int(value)


# --- builders: (key_id, validated body, where) -> op args ------------------

def _build_encrypt(key_id, body, where):
    return {'key_id': key_id,
            'plaintext': b64decode(body['plaintext'], where, 'plaintext'),
            'aad': _optional_b64(body, where, 'aad'),
            'ciphertext_format': body.get('ciphertext_format')}


def _build_decrypt(key_id, body, where):
    version, blob = parse_ciphertext(body['ciphertext'], where)
    return {'key_id': key_id, 'version': version, 'ciphertext': blob,
            'aad': _optional_b64(body, where, 'aad'),
            'ciphertext_format': body.get('ciphertext_format')}


def _build_rewrap(key_id, body, where):
    version, blob = parse_ciphertext(body['ciphertext'], where)
    return {'key_id': key_id, 'version': version, 'ciphertext': blob,
            'aad': _optional_b64(body, where, 'aad')}


def _build_sign(key_id, body, where):
    has_message = 'message' in body
    if has_message == ('digest' in body):
        raise exception.InvalidInput(
            reason='exactly one of %s and %s is required'
                   % (_field(where, 'message'), _field(where, 'digest')))
    args = {'key_id': key_id,
            'signature_format': body.get('signature_format'),
            'padding': body.get('padding'),
            'hash': body.get('hash')}
    if has_message:
        args['message'] = b64decode(body['message'], where, 'message')
    else:
        args['digest'] = b64decode(body['digest'], where, 'digest')
    user_id = body.get('user_id')
    args['user_id'] = None if user_id is None else user_id.encode('utf-8')
    return args


def _build_verify(key_id, body, where):
    args = _build_sign(key_id, body, where)
    args['signature'] = b64decode(body['signature'], where, 'signature')
    args['version'] = _opt_int(body, 'key_version')
    return args


def _build_hmac(key_id, body, where):
    return {'key_id': key_id,
            'data': b64decode(body['data'], where, 'data')}


def _build_hmac_verify(key_id, body, where):
    return {'key_id': key_id,
            'version': _opt_int(body, 'key_version'),
            'data': b64decode(body['data'], where, 'data'),
            'mac': b64decode(body['mac'], where, 'mac')}


def _build_datakey(key_id, body, where):
    return {'key_id': key_id,
            'spec': body.get('spec', 'AES_256'),
            'include_plaintext': body.get('include_plaintext', True),
            'aad': _optional_b64(body, where, 'aad')}


def _build_hash(key_id, body, where):
    return {'algorithm': body['algorithm'],
            'data': b64decode(body['data'], where, 'data')}


def _build_random(key_id, body, where):
    return {'length': int(body['length'])}


# --- renderers: op result -> REST body -----------------------------------

def _render_ciphertext(result):
    version = result['version']
    return {'key_id': result['key_id'], 'key_version': version,
            'ciphertext': format_ciphertext(version, result['ciphertext'])}


def _render_decrypt(result):
    return {'key_id': result['key_id'], 'key_version': result['version'],
            'plaintext': b64encode(result['plaintext'])}


def _render_sign(result):
    return {'key_id': result['key_id'], 'key_version': result['version'],
            'signature': b64encode(result['signature'])}


def _render_valid(result):
    return {'key_id': result['key_id'], 'key_version': result['version'],
            'valid': bool(result['valid'])}


def _render_hmac(result):
    return {'key_id': result['key_id'], 'key_version': result['version'],
            'mac': b64encode(result['mac'])}


def _render_datakey(result):
    out = _render_ciphertext(result)
    plaintext = result.get('plaintext')
    if plaintext is not None:
        out['plaintext'] = b64encode(plaintext)
    return out


def _render_hash(result):
    return {'algorithm': result['algorithm'],
            'digest': b64encode(result['digest'])}


def _render_random(result):
    return {'random': b64encode(result['random'])}


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    """One cryptographic operation as REST and the protocol know it."""

    name: str
    protocol_op: str
    needs_key: bool
    build: Callable[[str | None, dict, str], dict]
    render: Callable[[dict], dict]


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation('encrypt', 'encrypt', True, _build_encrypt,
              _render_ciphertext),
    Operation('decrypt', 'decrypt', True, _build_decrypt, _render_decrypt),
    Operation('rewrap', 'rewrap', True, _build_rewrap, _render_ciphertext),
    Operation('sign', 'sign', True, _build_sign, _render_sign),
    Operation('verify', 'verify', True, _build_verify, _render_valid),
    Operation('hmac', 'hmac', True, _build_hmac, _render_hmac),
    Operation('hmac-verify', 'hmac_verify', True, _build_hmac_verify,
              _render_valid),
    Operation('datakey', 'datakey', True, _build_datakey, _render_datakey),
    Operation('hash', 'hash', False, _build_hash, _render_hash),
    Operation('random', 'random', False, _build_random, _render_random),
)}

assert set(OPERATIONS) == set(schemas.OPERATION_BODIES)
assert {n for n, o in OPERATIONS.items() if o.needs_key} == \
    schemas.KEY_OPERATIONS


def render_public_key(result: dict) -> dict:
    """REST body of ``key.public``."""
    return {'key_id': result['key_id'], 'key_version': result['version'],
            'algorithm': result['algorithm'],
            'public_key_pem': result['public_key_pem']}


def render_export(result: dict) -> dict:
    """REST body of ``key.export`` (material base64-encoded)."""
    return {'key_id': result['key_id'], 'key_version': result['version'],
            'algorithm': result['algorithm'],
            'material': b64encode(result['material']),
            'public_key_pem': result.get('public_key_pem')}
