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


class HealthCountTest(testtools.TestCase):
    """A running workload that stops answering is reported failing."""

    def setUp(self):
        super().setUp()
        self.answers = []
        self.prober = probes.Prober(unhealthy_threshold=3)
        self.prober.healthz = lambda status: self.answers.pop(0)

    def probe(self, workload_id='w1', state=base.RUNNING):
        status = base.WorkloadStatus(workload_id, base.CRYPTOSERVICE, state,
                                     port=1)
        return self.prober.probe(status)

    def test_hung_after_being_healthy(self):
        self.answers = [200, None, None]
        self.assertTrue(self.probe().healthy)
        self.assertFalse(self.probe().failing)
        self.assertFalse(self.probe().failing)
        self.answers = [None]
        status = self.probe()
        self.assertTrue(status.failing)
        self.assertFalse(status.healthy)
        self.assertEqual('failed 3 health probes in a row (no answer from '
                         '/healthz)', status.reason)
        self.assertTrue(status.to_dict()['failing'])

    def test_one_good_answer_starts_the_count_again(self):
        self.answers = [200, None, None, 200, None, 503]
        for _ in range(6):
            self.assertFalse(self.probe().failing)

    def test_still_starting_is_not_failing(self):
        # Never healthy yet: the start path's timeout deals with it.
        self.answers = [None] * 5
        for _ in range(5):
            self.assertFalse(self.probe().failing)

    def test_stopped_and_forgotten_workloads_start_again(self):
        self.answers = [200, None, None]
        for _ in range(3):
            self.probe()
        self.probe(state=base.PREPARED)
        self.answers = [None] * 3
        for _ in range(3):
            self.assertFalse(self.probe().failing)

    def test_threshold_zero_never_fails(self):
        self.prober.unhealthy_threshold = 0
        self.answers = [200] + [None] * 10
        for _ in range(11):
            self.assertFalse(self.probe().failing)
