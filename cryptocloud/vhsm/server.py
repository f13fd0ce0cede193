"""The vHSM side of the internal protocol: accept, authenticate, dispatch.

One thread serves one connection for as long as it stays open; the
threads come from a bounded pool that grows on demand up to ``workers``
and keeps its threads. When every worker is taken a new connection gets a
503 frame and is closed, so a client fails over instead of waiting.
"""

import collections.abc
import logging as std_logging
import queue
import selectors
import socket
import ssl
import threading
import time
import traceback

import msgpack
from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.vhsm import protocol

LOG = logging.getLogger(__name__)

Dispatch = collections.abc.Callable[[str, str, dict], dict]

_INTERNAL_ERROR = {'code': 500, 'type': 'InternalError',
                   'message': 'internal error in the vHSM'}
_BUSY_ERROR = exception.ServiceUnavailable('vHSM busy').to_dict()
# Rejections wait in this queue for the thread that answers them; beyond
# it connections are dropped without a word, which bounds the work an
# overload can cause.
_REJECT_BACKLOG = 64
_REJECT_TIMEOUT = 0.5
_JOIN_TIMEOUT = 5.0


class VHSMServer:
    """Serves the internal protocol on one TCP (or TLS) listening socket."""

    def __init__(self, host: str, port: int, secret: bytes,
                 dispatch: Dispatch, *, group_id: str, member_id: str,
                 workers: int = 32,
                 max_frame_size: int = protocol.DEFAULT_MAX_FRAME_SIZE,
                 handshake_timeout: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None,
                 metrics=None):
        if workers < 1:
            raise ValueError('workers must be at least 1')
        self._secret = secret
        self._dispatch = dispatch
        self.group_id = group_id
        self.member_id = member_id
        self._workers = workers
        self._max_frame_size = max_frame_size
        self._handshake_timeout = handshake_timeout
        self._ssl_context = ssl_context
        # A status.OpMetrics (or None): counts every dispatched operation.
        self._metrics = metrics

        self._lock = threading.Lock()
        self._stopping = False
        self._busy = 0
        self._threads: list[threading.Thread] = []
        self._conns: set = set()
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._rejects: queue.Queue = queue.Queue(_REJECT_BACKLOG)
        self._serve_thread: threading.Thread | None = None
        self._reject_thread: threading.Thread | None = None
        self._serving = threading.Event()
        self._accept_done = threading.Event()
        self._stopped = threading.Event()

        self._listener = _listen(host, port)
        self._address = self._listener.getsockname()[:2]
        # A socketpair wakes the accept loop on shutdown: closing a
        # listening socket does not interrupt a thread blocked on it.
        self._wake_r, self._wake_w = socket.socketpair()

    @property
    def serving(self) -> bool:
        """Whether the server accepts connections now."""
        return self._serving.is_set() and not self._stopping

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually listened on."""
        return self._address

    def start(self) -> None:
        """Serve in a background thread; return once accepting."""
        self._serve_thread = threading.Thread(
            target=self.serve_forever, name='vhsm-accept', daemon=True)
        self._serve_thread.start()
        self._serving.wait()

    def serve_forever(self) -> None:
        """Accept connections until shutdown() is called."""
        if self._stopping:
            self._serving.set()
            self._accept_done.set()
            return
        self._reject_thread = threading.Thread(
            target=self._reject_loop, name='vhsm-reject', daemon=True)
        self._reject_thread.start()
        LOG.info('vHSM %(member)s of group %(group)s listening on '
                 '%(host)s:%(port)s (%(tls)s)',
                 {'member': self.member_id, 'group': self.group_id,
                  'host': self._address[0], 'port': self._address[1],
                  'tls': 'TLS' if self._ssl_context else 'plain TCP'})
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            self._serving.set()
            while not self._stopping:
                for key, _ in sel.select():
                    if key.fileobj is self._listener:
                        self._accept()
        finally:
            sel.close()
            self._serving.set()
            self._accept_done.set()

    def _accept(self) -> None:
        try:
            sock, addr = self._listener.accept()
        except OSError:
            # The client gave up before we got to it, or we are stopping.
            return
        with self._lock:
            if self._stopping:
                sock.close()
                return
            if self._busy >= self._workers:
                busy = True
            else:
                busy = False
                self._busy += 1
                if len(self._threads) < self._busy:
                    self._spawn_worker()
        if busy:
            LOG.warning('All %d vHSM workers are busy; refusing the '
                        'connection from %s', self._workers, addr[0])
            try:
                self._rejects.put_nowait(sock)
            except queue.Full:
                sock.close()
            return
        self._work.put((sock, addr))

    def _spawn_worker(self) -> None:
        thread = threading.Thread(
            target=self._worker_loop, daemon=True,
            name='vhsm-worker-%d' % len(self._threads))
        self._threads.append(thread)
        thread.start()

    def _worker_loop(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            sock, addr = item
            try:
                self._serve_connection(sock, addr)
            except Exception:
                LOG.exception('Unexpected error serving %s', addr[0])
            finally:
                with self._lock:
                    self._busy -= 1

    def _reject_loop(self) -> None:
        while True:
            sock = self._rejects.get()
            if sock is None:
                return
            try:
                sock.settimeout(_REJECT_TIMEOUT)
                if self._ssl_context is not None:
                    sock = self._ssl_context.wrap_socket(sock,
                                                         server_side=True)
                sock.sendall(protocol.encode_frame(
                    {'ok': False, 'error': _BUSY_ERROR}))
            except (OSError, ValueError):
                pass
            finally:
                sock.close()

    def _serve_connection(self, sock: socket.socket, addr) -> None:
        peer = '%s:%s' % addr[:2]
        deadline = time.monotonic() + self._handshake_timeout
        conn = None
        authenticated = False
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._handshake_timeout)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_side=True)
            conn = protocol.FramedSocket(sock, self._max_frame_size)
            conn.peer = peer
            if not self._track(conn):
                return
            protocol.server_handshake(
                conn, self._secret, group_id=self.group_id,
                member_id=self.member_id, deadline=deadline)
            # Authenticated connections are pooled by clients and may be
            # idle for a long time; shutdown() wakes them.
            conn.settimeout(None)
            authenticated = True
            LOG.debug('Client %s authenticated', peer)
            self._request_loop(conn)
        except protocol.AuthenticationFailed as exc:
            LOG.warning('Handshake with %s failed: %s', peer, exc)
        except protocol.ConnectionClosed:
            LOG.debug('Client %s closed the connection', peer)
        except protocol.FrameTooLarge as exc:
            LOG.warning('Closing the connection from %s: %s', peer, exc)
        except protocol.MalformedFrame as exc:
            LOG.warning('Closing the connection from %s: %s', peer, exc)
            # Before authentication a peer gets nothing but the handshake.
            if authenticated:
                self._send_error(conn, None, exception.InvalidInput(
                    reason='malformed frame').to_dict())
        except TimeoutError:
            LOG.warning('Client %s did not complete the handshake within '
                        '%.1f s', peer, self._handshake_timeout)
        except (OSError, ValueError) as exc:
            # Resets, TLS failures, and use of a socket shutdown() closed.
            if not self._stopping:
                LOG.debug('Connection from %s ended: %s', peer, exc)
        finally:
            if conn is not None:
                self._untrack(conn)
                conn.close()
            else:
                sock.close()

    def _track(self, conn: protocol.FramedSocket) -> bool:
        with self._lock:
            if self._stopping:
                return False
            self._conns.add(conn)
            return True

    def _untrack(self, conn: protocol.FramedSocket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _request_loop(self, conn: protocol.FramedSocket) -> None:
        debug = LOG.isEnabledFor(std_logging.DEBUG)
        while not self._stopping:
            request = conn.recv()
            started = time.monotonic() if debug else 0.0
            frame = self._handle(request)
            conn.send_frame(frame)
            if debug:
                LOG.debug('op %s id %s project %s served in %.3f ms',
                          request.get('op'), request.get('id'),
                          request.get('project'),
                          (time.monotonic() - started) * 1000)

    def _handle(self, request: dict) -> bytes:
        req_id = request.get('id')
        if not isinstance(req_id, int) or isinstance(req_id, bool):
            return self._error_frame(None, exception.InvalidInput(
                reason='request id must be an integer'))
        op = request.get('op')
        project = request.get('project')
        args = request.get('args', {})
        if not isinstance(op, str):
            return self._error_frame(req_id, exception.InvalidInput(
                reason='op must be a string'))
        if not isinstance(project, str):
            return self._error_frame(req_id, exception.InvalidInput(
                reason='project must be a string'))
        if not isinstance(args, dict):
            return self._error_frame(req_id, exception.InvalidInput(
                reason='args must be a map'))
        metrics = self._metrics
        started = metrics.begin() if metrics is not None else 0.0
        try:
            result = self._dispatch(op, project, args)
        except exception.CryptoCloudException as exc:
            if metrics is not None:
                metrics.end(op, started, exc.error_type)
            return self._error_frame(req_id, exc)
        except Exception as exc:
            if metrics is not None:
                metrics.end(op, started, 'InternalError')
            _log_unexpected(exc, 'Unexpected error in op %s (request %s)'
                            % (op, req_id))
            return protocol.encode_frame(
                {'id': req_id, 'ok': False, 'error': _INTERNAL_ERROR})
        if metrics is not None:
            metrics.end(op, started)
        try:
            if not isinstance(result, dict):
                raise TypeError('dispatch returned %s, not a map'
                                % type(result).__name__)
            return protocol.encode_frame(
                {'id': req_id, 'ok': True, 'result': result})
        except (TypeError, ValueError, OverflowError,
                msgpack.PackException) as exc:
            _log_unexpected(exc, 'Result of op %s (request %s) cannot be '
                            'encoded' % (op, req_id))
            return protocol.encode_frame(
                {'id': req_id, 'ok': False, 'error': _INTERNAL_ERROR})

    @staticmethod
    def _error_frame(req_id: int | None,
                     exc: exception.CryptoCloudException) -> bytes:
        return protocol.encode_frame(
            {'id': req_id, 'ok': False, 'error': exc.to_dict()})

    @staticmethod
    def _send_error(conn: protocol.FramedSocket, req_id, error: dict) -> None:
        try:
            conn.send({'id': req_id, 'ok': False, 'error': error})
        except OSError:
            pass

    def shutdown(self) -> None:
        """Stop accepting, close every connection and join the threads."""
        with self._lock:
            if self._stopping:
                already = True
            else:
                already = False
                self._stopping = True
                conns = list(self._conns)
                threads = list(self._threads)
        if already:
            self._stopped.wait(_JOIN_TIMEOUT)
            return
        try:
            self._wake_w.send(b'x')
        except OSError:
            pass
        if self._serve_thread is not None:
            self._serve_thread.join(_JOIN_TIMEOUT)
        elif self._serving.is_set():
            # serve_forever() runs in a thread the caller owns.
            self._accept_done.wait(_JOIN_TIMEOUT)
        self._listener.close()
        for conn in conns:
            conn.shutdown()
        for _ in threads:
            self._work.put(None)
        if self._reject_thread is not None:
            while True:
                try:
                    self._rejects.get_nowait().close()
                except queue.Empty:
                    break
            self._rejects.put_nowait(None)
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for thread in threads + [self._reject_thread]:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        # Sockets accepted but never picked up by a worker.
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].close()
        self._wake_r.close()
        self._wake_w.close()
        self._stopped.set()
        LOG.info('vHSM %s stopped', self.member_id)


def _log_unexpected(exc: BaseException, what: str) -> None:
    # The traceback shows where it failed; the exception's message is
    # withheld because libraries quote their arguments in it, and those
    # are tenant plaintext or key material.
    LOG.error('%s: %s (message withheld)\nTraceback (most recent call '
              'last):\n%s', what, type(exc).__name__,
              ''.join(traceback.format_tb(exc.__traceback__)).rstrip())


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A restarted vHSM must be able to bind while old connections
        # sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
