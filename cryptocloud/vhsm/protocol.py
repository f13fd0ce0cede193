"""Framing, handshake and retry rules of the internal vHSM protocol.

See docs/internal-protocol.md. A frame is a 4-byte big-endian length and
a MessagePack map. Both ends use :class:`FramedSocket`, which reads through
one reusable buffer so a small request costs one ``recv_into`` and one
``sendall``.
"""

import hashlib
import hmac
import secrets
import select
import socket
import ssl
import struct
import threading
import time

import msgpack

from cryptocloud.common import exception

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024
CHALLENGE_BYTES = 32
NONCE_BYTES = 32
CLIENT_LABEL = b'cc-vhsm-auth-v1|client|'
SERVER_LABEL = b'cc-vhsm-auth-v1|server|'

# Operations that may be sent again after a connection broke with the
# request already on the wire: they either change nothing or, like
# key.create with its caller-chosen key_id, give the same result twice.
RETRY_SAFE_OPS = frozenset({
    'ping', 'encrypt', 'decrypt', 'rewrap', 'sign', 'verify', 'hmac',
    'hmac_verify', 'hash', 'random', 'datakey', 'batch', 'key.get',
    'key.list', 'key.public', 'key.export', 'key.create',
})

# Operations that change a key; sent again only when the first attempt
# never reached the wire. Unknown operations are treated the same way.
STATE_CHANGING_OPS = frozenset({
    'key.rotate', 'key.update', 'key.enable', 'key.disable',
    'key.schedule_deletion', 'key.cancel_deletion',
})

_HEADER = struct.Struct('>I')
_DEFAULT_BUFFER = 32 * 1024
# A Packer per thread: reusing one halves the cost of encoding a small
# message compared to packb(), and a Packer must not be shared.
_local = threading.local()


class ProtocolError(Exception):
    """The peer broke the protocol; the connection cannot be used."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection (at a frame boundary or inside one)."""


class FrameTooLarge(ProtocolError):
    """A frame header announced more than the allowed frame size."""


class MalformedFrame(ProtocolError):
    """A frame body is not a single MessagePack map."""


class AuthenticationFailed(ProtocolError):
    """The handshake failed; ``error`` is the error dict when one was sent."""

    def __init__(self, message: str, error: dict | None = None):
        super().__init__(message)
        self.error = error


class Refused(ProtocolError):
    """The server answered the connection with an error (e.g. 503 busy)."""

    def __init__(self, error: dict):
        super().__init__(str(error.get('message', 'refused')))
        self.error = error


def is_retry_safe(op: str) -> bool:
    """Whether ``op`` may be re-sent after it possibly reached a vHSM."""
    return op in RETRY_SAFE_OPS


def encode_frame(message: dict) -> bytes:
    """Return the frame (header and body) for ``message``."""
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    body = packer.pack(message)
    return _HEADER.pack(len(body)) + body


def decode_body(body) -> dict:
    """Decode a frame body, which must be exactly one MessagePack map."""
    try:
        message = msgpack.unpackb(body, raw=False)
    except Exception as exc:
        # msgpack raises a variety of types (ExtraData, FormatError,
        # ValueError, ...) on garbage; all mean the same to us.
        raise MalformedFrame('undecodable frame body: %s'
                             % type(exc).__name__) from None
    if not isinstance(message, dict):
        raise MalformedFrame('frame body is a %s, not a map'
                             % type(message).__name__)
    return message


class FramedSocket:
    """A connected socket that sends and receives whole frames."""

    __slots__ = ('sock', 'max_frame_size', '_buf', '_view', '_start',
                 '_end', 'peer', '_poller')

    def __init__(self, sock: socket.socket,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 buffer_size: int = _DEFAULT_BUFFER):
        self.sock = sock
        self.max_frame_size = max_frame_size
        self._buf = bytearray(buffer_size)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self.peer = None
        self._poller = None

    def send(self, message: dict) -> None:
        """Send one message as one frame."""
        self.sock.sendall(encode_frame(message))

    def send_frame(self, frame: bytes) -> None:
        """Send an already encoded frame."""
        self.sock.sendall(frame)

    def has_buffered_data(self) -> bool:
        """Whether bytes already read are waiting to be parsed."""
        return self._end > self._start

    def readable_now(self) -> bool:
        """Whether anything (data, EOF, reset) is waiting to be read."""
        if self._end > self._start:
            return True
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        if self._poller is None:
            # A poll object made once is cheaper per check than select().
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(self._poller.poll(0))

    def _fill(self, need: int, deadline: float | None) -> None:
        # Make at least `need` bytes (need <= buffer size) available
        # from self._start, reading as much as the kernel has.
        if self._start + need > len(self._buf):
            avail = self._end - self._start
            # bytes() copies first: source and target may overlap.
            self._buf[:avail] = bytes(self._view[self._start:self._end])
            self._start, self._end = 0, avail
        while self._end - self._start < need:
            if deadline is not None:
                _set_deadline(self.sock, deadline)
            n = self.sock.recv_into(self._view[self._end:])
            if not n:
                if self._end == self._start:
                    raise ConnectionClosed('connection closed by peer')
                raise ConnectionClosed('connection closed inside a frame')
            self._end += n

    def recv(self, deadline: float | None = None) -> dict:
        """Read one frame and return its map.

        ``deadline`` (a ``time.monotonic()`` value) bounds the whole read,
        not each ``recv``; without it the socket's own timeout applies.
        """
        if self._end - self._start < 4:
            self._fill(4, deadline)
        start = self._start
        (length,) = _HEADER.unpack_from(self._buf, start)
        if length > self.max_frame_size:
            # Checked before any allocation, so a hostile header costs
            # nothing.
            raise FrameTooLarge('frame of %d bytes exceeds the limit of %d'
                                % (length, self.max_frame_size))
        start += 4
        end = start + length
        if end > self._end:
            self._start = start
            if length > len(self._buf):
                return decode_body(self._read_large(length, deadline))
            self._fill(length, deadline)
            start = self._start
            end = start + length
        # Usually the whole frame came with one recv_into and this is the
        # only work done. The buffer is not written again before the body
        # is decoded below, so the indices can be reset first.
        if end == self._end:
            self._start = self._end = 0
        else:
            self._start = end
        return decode_body(self._view[start:end])

    def _read_large(self, length: int, deadline: float | None) -> bytearray:
        body = bytearray(length)
        view = memoryview(body)
        got = self._end - self._start
        view[:got] = self._view[self._start:self._end]
        self._start = self._end = 0
        while got < length:
            if deadline is not None:
                _set_deadline(self.sock, deadline)
            n = self.sock.recv_into(view[got:])
            if not n:
                raise ConnectionClosed('connection closed inside a frame')
            got += n
        return body

    def settimeout(self, timeout: float | None) -> None:
        """Set the timeout of each socket operation."""
        self.sock.settimeout(timeout)

    def shutdown(self) -> None:
        """Wake any thread blocked on this socket; errors are ignored."""
        try:
            # The plain socket method, also for SSL sockets: it only
            # shuts the TCP stream and does not touch the SSL object
            # another thread may be reading with.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Close the socket; errors are ignored."""
        try:
            self.sock.close()
        except OSError:
            pass


def _set_deadline(sock: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError('deadline passed')
    sock.settimeout(remaining)


def _mac(secret: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(secret, label + first + second, hashlib.sha256).digest()


def _is_bytes(value, size: int) -> bool:
    return isinstance(value, bytes) and len(value) == size


def server_handshake(conn: FramedSocket, secret: bytes, *, group_id: str,
                     member_id: str, deadline: float | None = None) -> None:
    """Authenticate a new client; raise AuthenticationFailed on failure.

    On failure the client has been told why (401, or 400 for a version
    mismatch) and the caller must close the connection.
    """
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    conn.send({'v': PROTOCOL_VERSION, 'challenge': challenge,
               'group': group_id, 'member': member_id})
    answer = conn.recv(deadline)
    version = answer.get('v')
    if isinstance(version, int) and version != PROTOCOL_VERSION:
        error = exception.InvalidInput(
            reason='unsupported protocol version %d; this vHSM speaks %d'
                   % (version, PROTOCOL_VERSION)).to_dict()
        _send_quietly(conn, {'ok': False, 'error': error})
        raise AuthenticationFailed('unsupported protocol version', error)
    nonce = answer.get('nonce')
    response = answer.get('response')
    if (version == PROTOCOL_VERSION and _is_bytes(nonce, NONCE_BYTES)
            and _is_bytes(response, 32)
            and hmac.compare_digest(
                response, _mac(secret, CLIENT_LABEL, challenge, nonce))):
        conn.send({'ok': True,
                   'proof': _mac(secret, SERVER_LABEL, nonce, challenge)})
        return
    error = exception.Unauthorized(
        reason='handshake response does not match the group secret'
    ).to_dict()
    _send_quietly(conn, {'ok': False, 'error': error})
    raise AuthenticationFailed('client response does not match', error)


def client_handshake(conn: FramedSocket, secret: bytes, *,
                     deadline: float | None = None) -> dict:
    """Authenticate to a vHSM and check its proof; return its hello map.

    Raises Refused when the server answered with an error instead of a
    challenge (busy), AuthenticationFailed when either side's proof is
    wrong.
    """
    hello = conn.recv(deadline)
    if hello.get('ok') is False and isinstance(hello.get('error'), dict):
        raise Refused(hello['error'])
    if hello.get('v') != PROTOCOL_VERSION:
        raise AuthenticationFailed('server speaks protocol version %r, not %d'
                                   % (hello.get('v'), PROTOCOL_VERSION))
    challenge = hello.get('challenge')
    if not _is_bytes(challenge, CHALLENGE_BYTES):
        raise AuthenticationFailed('server sent a malformed challenge')
    nonce = secrets.token_bytes(NONCE_BYTES)
    conn.send({'v': PROTOCOL_VERSION, 'nonce': nonce,
               'response': _mac(secret, CLIENT_LABEL, challenge, nonce)})
    reply = conn.recv(deadline)
    if reply.get('ok') is not True:
        error = reply.get('error')
        error = error if isinstance(error, dict) else None
        raise AuthenticationFailed(
            'server refused the handshake: %s'
            % (error or {}).get('message', 'no reason given'), error)
    proof = reply.get('proof')
    if not (isinstance(proof, bytes) and hmac.compare_digest(
            proof, _mac(secret, SERVER_LABEL, nonce, challenge))):
        raise AuthenticationFailed(
            'server proof does not match the group secret')
    return hello


def _send_quietly(conn: FramedSocket, message: dict) -> None:
    # The peer is being dropped anyway; a failed send changes nothing.
    try:
        conn.send(message)
    except OSError:
        pass


def make_server_ssl_context(cert_file: str, key_file: str,
                            ca_file: str | None = None) -> ssl.SSLContext:
    """TLS context for a vHSM; with ``ca_file`` clients need certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def make_client_ssl_context(ca_file: str, cert_file: str | None = None,
                            key_file: str | None = None) -> ssl.SSLContext:
    """TLS context for a service instance; the vHSM cert must match host."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=ca_file)
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx
