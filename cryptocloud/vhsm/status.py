"""The vHSM's HTTP status endpoint: ``/healthz`` and ``/metrics``.

The compute daemon probes a vHSM the way it probes a service instance:
``GET /healthz`` answers 200 while the protocol server accepts connections
and the keystore answers, and ``GET /metrics`` gives Prometheus text with
operations and errors per operation, a latency histogram and the number
of operations in flight.

Counting is on the hot path, so it takes no lock: each server thread
counts into its own record and a scrape adds the records up.  A scrape may
see one thread's record half-updated; it is off by at most one operation,
which is fine for metrics.
"""

import bisect
import http.server
import json
import threading
import time

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

# 0.25 ms .. 5 s: an SM2 sign takes ~0.4 ms, a large batch seconds.
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                   0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
# Unknown operation names are counted under this label, so a client
# cannot create any number of series.
OTHER_OP = 'other'
HEALTH_CACHE_SECONDS = 1.0


class _ThreadRecord:
    __slots__ = ('in_flight', 'ops', 'errors')

    def __init__(self) -> None:
        self.in_flight = 0
        # op -> [count, seconds, bucket counts (last is +Inf)]
        self.ops: dict[str, list] = {}
        self.errors: dict[tuple[str, str], int] = {}


class OpMetrics:
    """Operation counters of one vHSM, cheap to update from any thread."""

    def __init__(self, operations=None, *,
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._known = frozenset(operations) if operations else None
        self._buckets = tuple(buckets)
        self._local = threading.local()
        self._records: list[_ThreadRecord] = []
        self._lock = threading.Lock()

    def _record(self) -> _ThreadRecord:
        try:
            return self._local.record
        except AttributeError:
            record = _ThreadRecord()
            self._local.record = record
            with self._lock:
                self._records.append(record)
            return record

    def begin(self) -> float:
        """Mark one operation in flight; returns its start time."""
        self._record().in_flight += 1
        return time.perf_counter()

    def end(self, op: str, started: float,
            error_type: str | None = None) -> None:
        """Count the operation begun at ``started`` and its outcome."""
        elapsed = time.perf_counter() - started
        record = self._local.record
        record.in_flight -= 1
        if self._known is not None and op not in self._known:
            op = OTHER_OP
        entry = record.ops.get(op)
        if entry is None:
            entry = record.ops[op] = [0, 0.0,
                                      [0] * (len(self._buckets) + 1)]
        entry[0] += 1
        entry[1] += elapsed
        entry[2][bisect.bisect_left(self._buckets, elapsed)] += 1
        if error_type is not None:
            key = (op, error_type)
            record.errors[key] = record.errors.get(key, 0) + 1

    def snapshot(self) -> dict:
        """Totals over every thread: ops, errors and in_flight."""
        with self._lock:
            records = list(self._records)
        ops: dict[str, list] = {}
        errors: dict[tuple[str, str], int] = {}
        in_flight = 0
        for record in records:
            in_flight += record.in_flight
            for op, (count, seconds, buckets) in list(record.ops.items()):
                total = ops.setdefault(
                    op, [0, 0.0, [0] * (len(self._buckets) + 1)])
                total[0] += count
                total[1] += seconds
                for i, n in enumerate(list(buckets)):
                    total[2][i] += n
            for key, n in list(record.errors.items()):
                errors[key] = errors.get(key, 0) + n
        return {'ops': ops, 'errors': errors, 'in_flight': max(0, in_flight)}

    def render(self) -> str:
        """Prometheus text exposition of every counter."""
        snap = self.snapshot()
        out = ['# HELP vhsm_requests_total Operations served, by operation.',
               '# TYPE vhsm_requests_total counter']
        for op in sorted(snap['ops']):
            out.append('vhsm_requests_total{op="%s"} %d'
                       % (_label(op), snap['ops'][op][0]))
        out += ['# HELP vhsm_errors_total Operations that failed, by '
                'operation and error type.',
                '# TYPE vhsm_errors_total counter']
        for (op, kind), n in sorted(snap['errors'].items()):
            out.append('vhsm_errors_total{op="%s",type="%s"} %d'
                       % (_label(op), _label(kind), n))
        out += ['# HELP vhsm_request_seconds Time to run an operation, by '
                'operation.',
                '# TYPE vhsm_request_seconds histogram']
        bounds = [repr(b) for b in self._buckets] + ['+Inf']
        for op in sorted(snap['ops']):
            count, seconds, buckets = snap['ops'][op]
            label = _label(op)
            cumulative = 0
            for bound, n in zip(bounds, buckets, strict=True):
                cumulative += n
                out.append('vhsm_request_seconds_bucket{op="%s",le="%s"} %d'
                           % (label, bound, cumulative))
            out.append('vhsm_request_seconds_sum{op="%s"} %r'
                       % (label, seconds))
            out.append('vhsm_request_seconds_count{op="%s"} %d'
                       % (label, count))
        out += ['# HELP vhsm_in_flight Operations being run now.',
                '# TYPE vhsm_in_flight gauge',
                'vhsm_in_flight %d' % snap['in_flight']]
        return '\n'.join(out) + '\n'


def _label(value: str) -> str:
    return (value.replace('\\', '\\\\').replace('"', '\\"')
            .replace('\n', '\\n'))


class StatusServer:
    """A small threaded HTTP server for /healthz and /metrics."""

    def __init__(self, host: str, port: int, metrics: OpMetrics,
                 health_check) -> None:
        """``health_check()`` returns None when healthy, else a reason."""
        self.metrics = metrics
        self._health_check = health_check
        self._health: tuple[bool, str | None] | None = None
        self._health_expires = 0.0
        self._health_lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(
            (host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name='vhsm-status', daemon=True)
        self._thread.start()
        LOG.info('vHSM status endpoint on http://%s:%d', self.host,
                 self.port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def health(self) -> tuple[bool, str | None]:
        """(healthy, reason), checked at most once a second."""
        with self._health_lock:
            now = time.monotonic()
            if self._health is None or now >= self._health_expires:
                try:
                    reason = self._health_check()
                except Exception as exc:
                    reason = 'health check failed: %s' % type(exc).__name__
                self._health = (reason is None, reason)
                self._health_expires = now + HEALTH_CACHE_SECONDS
            return self._health


def _make_handler(status: StatusServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = 'cryptocloud-vhsm'
        protocol_version = 'HTTP/1.1'

        def do_GET(self):  # noqa: N802 - http.server's naming
            path = self.path.split('?', 1)[0]
            if path == '/healthz':
                healthy, reason = status.health()
                body = {'status': 'ok' if healthy else 'unavailable'}
                if reason:
                    body['reason'] = reason
                self._send(200 if healthy else 503, 'application/json',
                           json.dumps(body).encode())
            elif path == '/metrics':
                self._send(200, CONTENT_TYPE,
                           status.metrics.render().encode())
            else:
                self._send(404, 'application/json',
                           b'{"status": "not found"}')

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header('Content-Type', ctype)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            LOG.debug('status endpoint: ' + fmt, *args)

    return Handler
