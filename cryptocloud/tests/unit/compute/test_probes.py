"""Parsing workload metrics into load figures."""

import testtools

from cryptocloud.compute import probes
from cryptocloud.compute.drivers import base

SERVICE_METRICS = '''# HELP cryptoservice_requests_total Requests answered.
# TYPE cryptoservice_requests_total counter
cryptoservice_requests_total{route="/v1/k/{id}/sign",status="200"} 90.0
cryptoservice_requests_total{method="GET",route="/healthz",status="200"} 50.0
cryptoservice_requests_total{method="POST",route="/v1/keys",status="201"} 10.0
# TYPE cryptoservice_in_flight gauge
cryptoservice_in_flight 3.0
cryptoservice_request_seconds_bucket{le="0.001",route="/v1/k/{id}/sign"} 80.0
cryptoservice_request_seconds_bucket{le="0.01",route="/v1/k/{id}/sign"} 90.0
cryptoservice_request_seconds_bucket{le="+Inf",route="/v1/k/{id}/sign"} 90.0
cryptoservice_request_seconds_bucket{le="0.001",route="/v1/keys"} 0.0
cryptoservice_request_seconds_bucket{le="0.01",route="/v1/keys"} 10.0
cryptoservice_request_seconds_bucket{le="+Inf",route="/v1/keys"} 10.0
cryptoservice_request_seconds_bucket{le="0.001",route="/healthz"} 50.0
cryptoservice_request_seconds_bucket{le="+Inf",route="/healthz"} 50.0
'''


class ProbeParsingTest(testtools.TestCase):

    def test_summarize_skips_the_probes_own_routes(self):
        figures = probes.summarize(
            base.CRYPTOSERVICE, probes.parse_prometheus(SERVICE_METRICS))
        self.assertEqual(100.0, figures.requests)
        self.assertEqual(3.0, figures.in_flight)
        self.assertEqual({0.001: 80.0, 0.01: 100.0, float('inf'): 100.0},
                         figures.buckets)
        # 95 of 100 fall at or under 10 ms, not under 1 ms.
        self.assertEqual(10.0, probes.percentile_ms(figures.buckets))
        self.assertEqual(1.0, probes.percentile_ms(figures.buckets, 0.8))

    def test_percentile_edges(self):
        self.assertEqual(0.0, probes.percentile_ms({}))
        self.assertEqual(0.0, probes.percentile_ms({float('inf'): 0.0}))
        self.assertEqual(5000.0, probes.percentile_ms(
            {5.0: 1.0, float('inf'): 10.0}))

    def test_labels_with_escapes(self):
        samples = probes.parse_prometheus(
            'x_total{op="a\\"b",type="c"} 2\nbad line\n# comment\n')
        self.assertEqual([('x_total', {'op': 'a\\"b', 'type': 'c'}, 2.0)],
                         samples)
