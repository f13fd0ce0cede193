"""Health and load probes of the workloads on this node.

Each workload answers ``GET /healthz`` and ``GET /metrics`` over HTTP (a
service instance on its own port, a vHSM on its status port).  The load
figures come from the Prometheus text: requests per second between two
probes, requests in flight, the 95th percentile latency from the
histogram buckets added between two probes, and CPU from
``/proc/<pid>/stat``.
"""

import dataclasses
import http.client
import os
import re
import threading
import time

from cryptocloud.compute.drivers import base

PROBE_TIMEOUT = 1.0
# The probes' own requests are not load.
_OWN_ROUTES = frozenset(('/healthz', '/metrics'))
_METRIC_NAMES = {
    base.VHSM: ('vhsm_requests_total', 'vhsm_in_flight',
                'vhsm_request_seconds_bucket'),
    base.CRYPTOSERVICE: ('cryptoservice_requests_total',
                         'cryptoservice_in_flight',
                         'cryptoservice_request_seconds_bucket'),
}
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_CLK_TCK = os.sysconf('SC_CLK_TCK')


def http_get(host: str, port: int, path: str,
             timeout: float = PROBE_TIMEOUT) -> tuple[int, bytes]:
    """(status, body) of GET http://host:port/path; OSError if no answer."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request('GET', path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from None
    finally:
        conn.close()


def parse_prometheus(text: str) -> list[tuple[str, dict, float]]:
    """(name, labels, value) of every sample in a text exposition."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, _, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        samples.append((name, dict(_LABEL.findall(labels or '')), number))
    return samples


@dataclasses.dataclass
class Figures:
    """Totals read from one /metrics answer."""

    requests: float = 0.0
    in_flight: float = 0.0
    # upper bound (inf for +Inf) -> cumulative count, summed over labels
    buckets: dict = dataclasses.field(default_factory=dict)


def summarize(kind: str, samples: list[tuple[str, dict, float]]) -> Figures:
    """Add up a workload's request counters, gauge and histogram."""
    requests_name, in_flight_name, bucket_name = _METRIC_NAMES[kind]
    figures = Figures()
    for name, labels, value in samples:
        if labels.get('route') in _OWN_ROUTES:
            continue
        if name == requests_name:
            figures.requests += value
        elif name == in_flight_name:
            figures.in_flight += value
        elif name == bucket_name and 'le' in labels:
            bound = float(labels['le'])
            figures.buckets[bound] = figures.buckets.get(bound, 0.0) + value
    return figures


def percentile_ms(buckets: dict, fraction: float = 0.95) -> float:
    """The bucket bound (ms) under which ``fraction`` of requests fell."""
    if not buckets:
        return 0.0
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return 0.0
    wanted = total * fraction
    finite = [b for b in bounds if b != float('inf')]
    for bound in bounds:
        if buckets[bound] >= wanted:
            if bound == float('inf'):
                # Beyond the largest bucket: report that bound, the most
                # the histogram can say.
                return finite[-1] * 1000.0 if finite else 0.0
            return bound * 1000.0
    return finite[-1] * 1000.0 if finite else 0.0


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of ``pid`` so far, None when gone."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b')') + 2:].split()
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@dataclasses.dataclass
class _Previous:
    when: float
    requests: float
    buckets: dict
    cpu: float | None


class Prober:
    """Probes workloads and turns counters into rates between probes."""

    def __init__(self, timeout: float = PROBE_TIMEOUT,
                 unhealthy_threshold: int = 0) -> None:
        self.timeout = timeout
        self.unhealthy_threshold = unhealthy_threshold
        self._previous: dict[str, _Previous] = {}
        # Failed probes in a row of workloads seen healthy since they
        # (re)started; a workload still starting is not counted.
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def forget(self, workload_id: str) -> None:
        """Drop what is remembered of a removed workload."""
        with self._lock:
            self._previous.pop(workload_id, None)
            self._failures.pop(workload_id, None)

    def _count_health(self, status: base.WorkloadStatus) -> None:
        with self._lock:
            if status.healthy:
                self._failures[status.workload_id] = 0
                return
            if status.workload_id not in self._failures:
                return
            failed = self._failures[status.workload_id] + 1
            self._failures[status.workload_id] = failed
        if self.unhealthy_threshold and failed >= self.unhealthy_threshold:
            status.failing = True
            status.reason = 'failed %d health probes in a row (%s)' % (
                failed, status.reason or 'unhealthy')

    def healthz(self, status: base.WorkloadStatus) -> int | None:
        """HTTP status of the workload's /healthz, None when no answer."""
        port = status.probe_port
        if not port:
            return None
        try:
            code, _ = http_get(status.host, port, '/healthz', self.timeout)
        except OSError:
            return None
        return code

    def probe(self, status: base.WorkloadStatus) -> base.WorkloadStatus:
        """Fill ``healthy`` and ``load`` of a running workload in place."""
        if status.state != base.RUNNING:
            status.healthy = False
            with self._lock:
                # Stopped or prepared: counting starts again when it runs.
                self._failures.pop(status.workload_id, None)
            return status
        code = self.healthz(status)
        status.healthy = code == 200
        if code is None:
            status.reason = status.reason or 'no answer from /healthz'
        elif code != 200:
            status.reason = '/healthz answered %d' % code
        self._count_health(status)
        now = time.monotonic()
        figures = None
        if code is not None:
            try:
                mcode, body = http_get(status.host, status.probe_port,
                                       '/metrics', self.timeout)
                if mcode == 200:
                    figures = summarize(status.kind, parse_prometheus(
                        body.decode('utf-8', 'replace')))
            except OSError:
                figures = None
        cpu = cpu_seconds(status.pid) if status.pid else None
        with self._lock:
            previous = self._previous.get(status.workload_id)
            load = base.empty_load()
            if figures is not None:
                in_flight = figures.in_flight
                if status.kind == base.CRYPTOSERVICE:
                    # The service counts the /metrics request being
                    # answered to us.
                    in_flight -= 1
                load['in_flight'] = max(0, int(in_flight))
                buckets = figures.buckets
                if previous is not None and previous.buckets:
                    delta = {b: n - previous.buckets.get(b, 0.0)
                             for b, n in figures.buckets.items()}
                    # A restarted workload starts its counters at zero.
                    if all(v >= 0 for v in delta.values()):
                        buckets = delta
                load['p95_ms'] = percentile_ms(buckets)
                if previous is not None and now > previous.when:
                    done = figures.requests - previous.requests
                    if done < 0:
                        done = figures.requests
                    load['requests_per_s'] = round(
                        done / (now - previous.when), 3)
            if (cpu is not None and previous is not None
                    and previous.cpu is not None and now > previous.when):
                load['cpu'] = round(max(0.0, cpu - previous.cpu)
                                    / (now - previous.when), 4)
            if figures is not None:
                self._previous[status.workload_id] = _Previous(
                    now, figures.requests, figures.buckets, cpu)
            elif cpu is not None:
                self._previous[status.workload_id] = _Previous(
                    now, previous.requests if previous else 0.0,
                    previous.buckets if previous else {}, cpu)
        status.load = load
        return status
