"""Minimal strict DER for SM2 ciphertexts, signatures and key containers.

Only what SM2 needs: SEQUENCE, INTEGER (non-negative), OCTET STRING,
BIT STRING, OBJECT IDENTIFIER (pre-encoded) and context tags.  Decoding is
strict DER (minimal lengths and integers, no trailing bytes), because a
lenient parser lets one ciphertext or signature have several encodings.

Malformed input never escapes as IndexError/ValueError: ciphertext helpers
raise ``exception.DecryptionFailed`` and signature helpers raise
``exception.InvalidInput``.
"""

from __future__ import annotations

from cryptocloud.common import exception

TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_SEQUENCE = 0x30

SM2_COORD_SIZE = 32
SM3_SIZE = 32
RAW_SIGNATURE_SIZE = 2 * SM2_COORD_SIZE
_POINT_PREFIX = b'\x04'
# 04 || x || y || C3 and at least one byte of C2.
_MIN_RAW_CIPHERTEXT = 1 + 2 * SM2_COORD_SIZE + SM3_SIZE + 1

CIPHERTEXT_FORMATS = ('der', 'c1c3c2', 'c1c2c3')
SIGNATURE_FORMATS = ('der', 'raw')


class _Malformed(Exception):
    """Internal: the bytes are not the DER we expect."""


# -- encoding ---------------------------------------------------------------

def encode_length(length: int) -> bytes:
    """DER length octets for ``length``."""
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, 'big')
    return bytes([0x80 | len(body)]) + body


def encode_tlv(tag: int, value: bytes) -> bytes:
    """One DER element."""
    return bytes([tag]) + encode_length(len(value)) + value


def encode_integer(value: int) -> bytes:
    """A non-negative DER INTEGER."""
    if value < 0:
        raise ValueError('only non-negative integers are supported')
    # One extra byte when the top bit is set keeps the value positive.
    body = value.to_bytes(value.bit_length() // 8 + 1, 'big')
    return encode_tlv(TAG_INTEGER, body)


def encode_sequence(*items: bytes) -> bytes:
    """A DER SEQUENCE of already-encoded elements."""
    return encode_tlv(TAG_SEQUENCE, b''.join(items))


def encode_octet_string(value: bytes) -> bytes:
    """A DER OCTET STRING."""
    return encode_tlv(TAG_OCTET_STRING, value)


def encode_bit_string(value: bytes) -> bytes:
    """A DER BIT STRING with no unused bits."""
    return encode_tlv(TAG_BIT_STRING, b'\x00' + value)


def encode_context(number: int, value: bytes) -> bytes:
    """An explicit, constructed context tag [number]."""
    return encode_tlv(0xA0 | number, value)


# -- decoding ---------------------------------------------------------------

def _read_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """Read one element at ``pos``; returns (tag, value, next position)."""
    if pos + 2 > len(data):
        raise _Malformed()
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # 0x80 is BER's indefinite length; more than 4 length bytes is
        # absurd for anything handled here.
        if count == 0 or count > 4 or pos + count > len(data):
            raise _Malformed()
        length = int.from_bytes(data[pos:pos + count], 'big')
        if data[pos] == 0 or length < 0x80:
            raise _Malformed()  # not the shortest form
        pos += count
    end = pos + length
    if end > len(data):
        raise _Malformed()
    return tag, data[pos:end], end


def _expect(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    got, value, pos = _read_tlv(data, pos)
    if got != tag:
        raise _Malformed()
    return value, pos


def _parse_integer(body: bytes) -> int:
    if not body:
        raise _Malformed()
    if body[0] & 0x80:
        raise _Malformed()  # negative
    if len(body) > 1 and body[0] == 0 and not body[1] & 0x80:
        raise _Malformed()  # non-minimal
    return int.from_bytes(body, 'big')


def _sequence_items(data: bytes, tags: tuple[int, ...]) -> list[bytes]:
    body, end = _expect(data, 0, TAG_SEQUENCE)
    if end != len(data):
        raise _Malformed()
    items = []
    pos = 0
    for tag in tags:
        value, pos = _expect(body, pos, tag)
        items.append(value)
    if pos != len(body):
        raise _Malformed()
    return items


def _coord(value: int) -> bytes:
    if value.bit_length() > 8 * SM2_COORD_SIZE:
        raise _Malformed()
    return value.to_bytes(SM2_COORD_SIZE, 'big')


# -- SM2 ciphertext ---------------------------------------------------------

def encode_sm2_ciphertext(x: bytes, y: bytes, c3: bytes, c2: bytes) -> bytes:
    """DER SEQUENCE{INTEGER x, INTEGER y, OCTET STRING C3, OCTET STRING C2}."""
    return encode_sequence(
        encode_integer(int.from_bytes(x, 'big')),
        encode_integer(int.from_bytes(y, 'big')),
        encode_octet_string(c3),
        encode_octet_string(c2))


def decode_sm2_ciphertext(data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Split DER ciphertext into (x, y, C3, C2), x and y as 32 bytes."""
    try:
        x, y, c3, c2 = _sequence_items(
            data, (TAG_INTEGER, TAG_INTEGER, TAG_OCTET_STRING,
                   TAG_OCTET_STRING))
        xb = _coord(_parse_integer(x))
        yb = _coord(_parse_integer(y))
        if len(c3) != SM3_SIZE or not c2:
            raise _Malformed()
    except _Malformed:
        raise exception.DecryptionFailed() from None
    return xb, yb, c3, c2


def check_ciphertext_format(fmt: str) -> None:
    """Raise InvalidInput unless ``fmt`` is a known SM2 ciphertext format."""
    if fmt not in CIPHERTEXT_FORMATS:
        raise exception.InvalidInput(
            reason='ciphertext_format must be one of %s'
            % ', '.join(CIPHERTEXT_FORMATS))


def ciphertext_der_to_raw(data: bytes, fmt: str = 'c1c3c2') -> bytes:
    """DER ciphertext to raw ``04||x||y||C3||C2`` or ``04||x||y||C2||C3``."""
    check_ciphertext_format(fmt)
    x, y, c3, c2 = decode_sm2_ciphertext(data)
    if fmt == 'c1c2c3':
        return _POINT_PREFIX + x + y + c2 + c3
    return _POINT_PREFIX + x + y + c3 + c2


def ciphertext_raw_to_der(data: bytes, fmt: str = 'c1c3c2') -> bytes:
    """Raw C1C3C2 or C1C2C3 ciphertext (C1 with 04 prefix) to DER."""
    check_ciphertext_format(fmt)
    if fmt == 'der':
        # Round-trip so that only canonical DER reaches OpenSSL.
        return encode_sm2_ciphertext(*decode_sm2_ciphertext(data))
    if (len(data) < _MIN_RAW_CIPHERTEXT
            or data[:1] != _POINT_PREFIX):
        raise exception.DecryptionFailed()
    x = data[1:1 + SM2_COORD_SIZE]
    y = data[1 + SM2_COORD_SIZE:1 + 2 * SM2_COORD_SIZE]
    rest = data[1 + 2 * SM2_COORD_SIZE:]
    if fmt == 'c1c2c3':
        c2, c3 = rest[:-SM3_SIZE], rest[-SM3_SIZE:]
    else:
        c3, c2 = rest[:SM3_SIZE], rest[SM3_SIZE:]
    return encode_sm2_ciphertext(x, y, c3, c2)


# -- signatures -------------------------------------------------------------

def encode_signature(r: int, s: int) -> bytes:
    """DER SEQUENCE{INTEGER r, INTEGER s}."""
    return encode_sequence(encode_integer(r), encode_integer(s))


def decode_signature(data: bytes) -> tuple[int, int]:
    """DER SEQUENCE{r, s} to integers; raises InvalidInput if malformed."""
    try:
        r, s = _sequence_items(data, (TAG_INTEGER, TAG_INTEGER))
        return _parse_integer(r), _parse_integer(s)
    except _Malformed:
        raise exception.InvalidInput(
            reason='the signature is not a DER SEQUENCE{r, s}') from None


def signature_der_to_raw(data: bytes) -> bytes:
    """DER signature to raw r||s (64 bytes)."""
    r, s = decode_signature(data)
    try:
        return _coord(r) + _coord(s)
    except _Malformed:
        raise exception.InvalidInput(
            reason='signature values exceed 256 bits') from None


def signature_raw_to_der(data: bytes) -> bytes:
    """Raw r||s (64 bytes) to DER; raises InvalidInput on a wrong length."""
    if len(data) != RAW_SIGNATURE_SIZE:
        raise exception.InvalidInput(
            reason='a raw SM2 signature is %d bytes' % RAW_SIGNATURE_SIZE)
    half = SM2_COORD_SIZE
    return encode_signature(int.from_bytes(data[:half], 'big'),
                            int.from_bytes(data[half:], 'big'))
