"""The service-instance side of the internal protocol.

:class:`VHSMClient` keeps a pool of authenticated connections to each vHSM
of the group, sends each request to the endpoint with the fewest requests
in flight (round robin among equals) and fails over to the next one when a
vHSM cannot be reached. See docs/internal-protocol.md for the retry rules.
"""

import itertools
import socket
import ssl
import threading
import time

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.vhsm import protocol

LOG = logging.getLogger(__name__)

_TRANSPORT_ERRORS = (OSError, protocol.ProtocolError, ValueError)


class _Unusable(Exception):
    """One attempt on one endpoint failed; say whether the request left."""

    def __init__(self, reason: str, *, sent: bool, mark_down: bool,
                 timed_out: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.mark_down = mark_down
        self.timed_out = timed_out


class _Endpoint:
    __slots__ = ('name', 'host', 'port', 'idle', 'in_flight', 'down_until',
                 'probing', 'last_error', 'removed', 'member')

    def __init__(self, name: str):
        self.name = name
        self.host, self.port = parse_endpoint(name)
        self.idle: list[protocol.FramedSocket] = []
        self.in_flight = 0
        self.down_until = 0.0
        self.probing = False
        self.last_error: str | None = None
        self.removed = False
        self.member: str | None = None


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6addr]:port`` for IPv6)."""
    host, sep, port = endpoint.strip().rpartition(':')
    if not sep or not host or not port.isdigit():
        raise exception.ConfigurationError(
            reason='vHSM endpoint %r is not host:port' % endpoint)
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    port_number = int(port)
    if not 0 < port_number < 65536:
        raise exception.ConfigurationError(
            reason='vHSM endpoint %r has an invalid port' % endpoint)
    return host, port_number


class VHSMClient:
    """Thread-safe client of a vHSM group with pooling and failover.

    ``connect_timeout`` bounds the TCP connect, TLS and the handshake
    together, so a vHSM that accepts but does not answer (stopped, or its
    backlog full) is left as quickly as one that refuses; ``timeout``
    bounds each reply.
    """

    def __init__(self, endpoints: list[str], secret: bytes, *,
                 pool_size: int = 16, timeout: float = 10.0,
                 connect_timeout: float = 1.0, retry_after: float = 2.0,
                 ssl_context: ssl.SSLContext | None = None,
                 max_frame_size: int = protocol.DEFAULT_MAX_FRAME_SIZE):
        self._secret = secret
        self._pool_size = pool_size
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._retry_after = retry_after
        self._ssl_context = ssl_context
        self._max_frame_size = max_frame_size
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._rr = 0
        self._closed = False
        self._endpoints: list[_Endpoint] = []
        self.set_endpoints(endpoints)

    # -- configuration -------------------------------------------------

    def set_endpoints(self, endpoints: list[str]) -> None:
        """Replace the endpoint list; kept endpoints keep their state."""
        names = []
        for name in endpoints:
            name = name.strip()
            parse_endpoint(name)
            if name not in names:
                names.append(name)
        to_close = []
        with self._lock:
            current = {ep.name: ep for ep in self._endpoints}
            self._endpoints = [current.get(n) or _Endpoint(n) for n in names]
            for name, ep in current.items():
                if name not in names:
                    # In-flight connections are closed when they come back.
                    ep.removed = True
                    to_close.extend(ep.idle)
                    ep.idle.clear()
        for conn in to_close:
            conn.close()
        if set(names) != set(current):
            LOG.info('vHSM endpoints are now %s', ', '.join(names) or 'none')

    @property
    def endpoint_states(self) -> list[dict]:
        """One dict per endpoint: name, up, retry_in, in_flight, idle..."""
        now = time.monotonic()
        with self._lock:
            return [{'endpoint': ep.name,
                     'up': ep.down_until <= now,
                     'retry_in': max(0.0, ep.down_until - now),
                     'in_flight': ep.in_flight,
                     'idle': len(ep.idle),
                     'member': ep.member,
                     'last_error': ep.last_error}
                    for ep in self._endpoints]

    # -- requests ------------------------------------------------------

    def call(self, op: str, project: str, args: dict) -> dict:
        """Run ``op`` on a vHSM of the group and return its result map.

        Error replies are raised as the exception the vHSM raised; when no
        vHSM can serve the request VHSMUnavailable is raised.
        """
        req_id = next(self._ids)
        frame = protocol.encode_frame(
            {'id': req_id, 'op': op, 'project': project, 'args': args})
        if len(frame) - 4 > self._max_frame_size:
            raise exception.PayloadTooLarge(limit=self._max_frame_size)
        retry_safe = protocol.is_retry_safe(op)
        tried: list[_Endpoint] = []
        failures: list[str] = []
        while True:
            ep, probe, conn = self._pick(tried)
            if ep is None:
                break
            tried.append(ep)
            try:
                reply = self._attempt(ep, conn, frame, req_id, retry_safe,
                                      probe)
            except _Unusable as exc:
                failures.append('%s: %s' % (ep.name, exc.reason))
                if exc.sent and not retry_safe:
                    raise exception.VHSMUnavailable(
                        reason='the connection to %s broke after %s was '
                               'sent, so it may or may not have been '
                               'applied (%s)' % (ep.name, op, exc.reason)
                    ) from None
                continue
            if reply.get('ok') is True:
                result = reply.get('result')
                return result if isinstance(result, dict) else {}
            error = reply.get('error')
            raise exception.from_dict(
                error if isinstance(error, dict) else {})
        raise exception.VHSMUnavailable(reason=self._why(tried, failures))

    def _why(self, tried: list[_Endpoint], failures: list[str]) -> str:
        with self._lock:
            if self._closed:
                return 'the client is closed'
            if not self._endpoints:
                return 'no endpoint is configured'
            skipped = ['%s: marked down (%s)'
                       % (ep.name, ep.last_error or 'being probed')
                       for ep in self._endpoints if ep not in tried]
        return '; '.join(failures + skipped)

    def _pick(self, tried: list[_Endpoint]
              ) -> tuple[_Endpoint | None, bool,
                         protocol.FramedSocket | None]:
        """Choose an endpoint, count the request in and pop an idle conn.

        One lock round for all three: this runs for every request.
        """
        # Least in flight, round robin among equals. When every endpoint
        # is marked down one caller per endpoint probes it, so a vHSM that
        # came back is found without waiting out retry_after, while the
        # other callers fail fast.
        now = time.monotonic()
        with self._lock:
            eps = self._endpoints
            n = len(eps)
            if self._closed or not n:
                return None, False, None
            start = self._rr % n
            self._rr += 1
            best = None
            probe = False
            for i in range(n):
                ep = eps[(start + i) % n]
                if ep.down_until > now or ep in tried:
                    continue
                if best is None or ep.in_flight < best.in_flight:
                    best = ep
            if best is None:
                if tried:
                    return None, False, None
                for i in range(n):
                    ep = eps[(start + i) % n]
                    if not ep.probing:
                        ep.probing = probe = True
                        best = ep
                        break
                else:
                    return None, False, None
            best.in_flight += 1
            return best, probe, best.idle.pop() if best.idle else None

    def _attempt(self, ep: _Endpoint, conn: protocol.FramedSocket | None,
                 frame: bytes, req_id: int, retry_safe: bool,
                 probe: bool) -> dict:
        try:
            while conn is not None and not _looks_alive(conn):
                # The vHSM closed it while idle; nothing was sent on it.
                conn.close()
                conn = self._pop_idle(ep)
            if conn is not None:
                try:
                    reply = self._exchange(conn, frame, req_id)
                except _Unusable as exc:
                    # A pooled connection may be stale (the vHSM restarted
                    # or closed it): one retry on a fresh connection
                    # decides whether the endpoint itself is at fault. A
                    # timeout is no sign of staleness: move on instead.
                    if exc.timed_out:
                        raise
                    if exc.sent and not retry_safe:
                        exc.mark_down = False
                        raise
                else:
                    self._release(ep, conn, probe)
                    return reply
            conn = self._connect(ep)
            reply = self._exchange(conn, frame, req_id)
        except BaseException as exc:
            unusable = isinstance(exc, _Unusable)
            with self._lock:
                ep.in_flight -= 1
                if probe:
                    ep.probing = False
                if unusable:
                    ep.last_error = exc.reason
                    if exc.mark_down:
                        ep.down_until = time.monotonic() + self._retry_after
            if unusable and exc.mark_down:
                LOG.warning('vHSM %s marked down for %.1f s: %s',
                            ep.name, self._retry_after, exc.reason)
            raise
        self._release(ep, conn, probe)
        return reply

    @staticmethod
    def _exchange(conn: protocol.FramedSocket, frame: bytes,
                  req_id: int) -> dict:
        try:
            conn.send_frame(frame)
        except _TRANSPORT_ERRORS as exc:
            conn.close()
            raise _Unusable(_describe(exc), sent=False,
                            mark_down=True) from None
        try:
            reply = conn.recv()
        except _TRANSPORT_ERRORS as exc:
            conn.close()
            raise _Unusable(_describe(exc), sent=True, mark_down=True,
                            timed_out=isinstance(exc, TimeoutError)
                            ) from None
        if reply.get('id') not in (req_id, None):
            conn.close()
            raise _Unusable('reply to request %r instead of %d'
                            % (reply.get('id'), req_id),
                            sent=True, mark_down=True)
        return reply

    def _pop_idle(self, ep: _Endpoint) -> protocol.FramedSocket | None:
        with self._lock:
            return ep.idle.pop() if ep.idle else None

    def _release(self, ep: _Endpoint, conn: protocol.FramedSocket,
                 probe: bool) -> None:
        # Count the request out and pool the connection in one lock round.
        with self._lock:
            ep.in_flight -= 1
            if probe:
                ep.probing = False
            if (not ep.removed and not self._closed
                    and len(ep.idle) < self._pool_size):
                ep.idle.append(conn)
                return
        conn.close()

    def _connect(self, ep: _Endpoint) -> protocol.FramedSocket:
        deadline = time.monotonic() + self._connect_timeout
        sock = None
        try:
            sock = socket.create_connection(
                (ep.host, ep.port), timeout=self._connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(
                    sock, server_hostname=ep.host)
            conn = protocol.FramedSocket(sock, self._max_frame_size)
            hello = protocol.client_handshake(conn, self._secret,
                                              deadline=deadline)
        except protocol.Refused as exc:
            _close(sock)
            # A busy vHSM is alive; skip it for this request only.
            raise _Unusable('refused: %s' % exc, sent=False,
                            mark_down=False) from None
        except protocol.AuthenticationFailed as exc:
            _close(sock)
            LOG.warning('vHSM %s failed authentication, check the group '
                        'secret: %s', ep.name, exc)
            raise _Unusable('authentication failed: %s' % exc, sent=False,
                            mark_down=True) from None
        except _TRANSPORT_ERRORS as exc:
            _close(sock)
            raise _Unusable('cannot connect: %s' % _describe(exc),
                            sent=False, mark_down=True) from None
        conn.settimeout(self._timeout)
        member = hello.get('member')
        with self._lock:
            ep.member = member if isinstance(member, str) else None
            ep.down_until = 0.0
        return conn

    # -- health and life cycle -----------------------------------------

    def ping_all(self) -> dict[str, bool | str]:
        """Ping every endpoint, marked down or not.

        The value is ``True`` for an endpoint that answered, otherwise a
        string saying what went wrong (test with ``is True``).
        """
        with self._lock:
            eps = list(self._endpoints)
        results: dict[str, bool | str] = {}
        for ep in eps:
            req_id = next(self._ids)
            frame = protocol.encode_frame(
                {'id': req_id, 'op': 'ping', 'project': '', 'args': {}})
            with self._lock:
                ep.in_flight += 1
                conn = ep.idle.pop() if ep.idle else None
            try:
                reply = self._attempt(ep, conn, frame, req_id, True, False)
            except _Unusable as exc:
                results[ep.name] = exc.reason
                continue
            if reply.get('ok') is True:
                with self._lock:
                    ep.down_until = 0.0
                results[ep.name] = True
            else:
                error = reply.get('error')
                results[ep.name] = str(
                    error.get('message') if isinstance(error, dict)
                    else 'error reply')
        return results

    def close(self) -> None:
        """Close every idle connection; later calls raise VHSMUnavailable."""
        with self._lock:
            self._closed = True
            conns = [c for ep in self._endpoints for c in ep.idle]
            for ep in self._endpoints:
                ep.idle.clear()
        for conn in conns:
            conn.close()


def _looks_alive(conn: protocol.FramedSocket) -> bool:
    # An idle connection has nothing to read. If it is readable, the vHSM
    # closed it (EOF/RST) or sent something unexpected; either way it must
    # not carry a request. One zero-timeout poll costs a microsecond or
    # two and spares a retry after a restart.
    try:
        return not conn.readable_now()
    except (OSError, ValueError):
        return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return 'timed out'
    text = str(exc)
    return '%s: %s' % (type(exc).__name__, text) if text else (
        type(exc).__name__)


def _close(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
