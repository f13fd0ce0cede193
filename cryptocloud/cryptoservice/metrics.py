"""Prometheus metrics of one crypto-service instance.

A private registry keeps these apart from anything else in the process
(tests build many apps; the global registry would refuse duplicates).
Label values are route templates, never raw paths, so key ids cannot
blow up the number of series.
"""

import threading

import prometheus_client
from prometheus_client import exposition

# 0.5 ms .. 5 s: an SM2 sign through the vHSM takes ~1 ms, a large batch
# or a failover can take seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0)

CONTENT_TYPE = exposition.CONTENT_TYPE_LATEST


class Metrics:
    """Counters, histogram and gauge of the tenant REST API."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry(
            auto_describe=True)
        self._requests = prometheus_client.Counter(
            'cryptoservice_requests', 'Requests answered.',
            ('method', 'route', 'status'), registry=self.registry)
        self._errors = prometheus_client.Counter(
            'cryptoservice_errors', 'Error responses by error type.',
            ('route', 'type'), registry=self.registry)
        self._seconds = prometheus_client.Histogram(
            'cryptoservice_request_seconds',
            'Time to answer a request, by route template.',
            ('route',), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = prometheus_client.Gauge(
            'cryptoservice_in_flight', 'Requests being served now.',
            registry=self.registry)
        self._batch_items = prometheus_client.Counter(
            'cryptoservice_batch_items', 'Items received in batch requests.',
            registry=self.registry)
        # labels() takes a lock and builds a tuple on every call; caching
        # the children keeps the per-request cost to a dict lookup.
        self._children: dict = {}
        self._lock = threading.Lock()

    def _child(self, metric, *labels):
        key = (id(metric),) + labels
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.get(key)
                if child is None:
                    child = metric.labels(*labels)
                    self._children[key] = child
        return child

    def observe(self, method: str, route: str, status: int,
                seconds: float) -> None:
        """Count one answered request and its latency."""
        self._child(self._requests, method, route, status).inc()
        self._child(self._seconds, route).observe(seconds)

    def error(self, route: str, error_type: str) -> None:
        """Count one error response of ``error_type``."""
        self._child(self._errors, route, error_type).inc()

    def batch_items(self, count: int) -> None:
        """Count the items of one batch request."""
        self._batch_items.inc(count)

    def render(self) -> bytes:
        """Prometheus text exposition of every metric."""
        return exposition.generate_latest(self.registry)
