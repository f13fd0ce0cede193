"""The /metrics text parses and counts what the app did."""

from prometheus_client import parser

from cryptocloud.tests.unit.cryptoservice import base


class TestMetrics(base.AppTestCase):

    def samples(self):
        text = self.request('GET', '/metrics', token=None).body.decode()
        found = {}
        for family in parser.text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                found[key] = sample.value
        return found

    def test_counts(self):
        self.request('POST', '/v1/random', {'length': 2})
        self.request('POST', '/v1/random', {'length': 2})
        self.request('POST', '/v1/random', {'length': 0})
        self.request('GET', '/v1/keys/%s' % ('0' * 8 + '-0000-4000-8000-'
                                             + '0' * 12))
        self.request('GET', '/no/such/path/' + 'x' * 50)
        samples = self.samples()
        route = (('method', 'POST'), ('route', '/v1/random'))
        self.assertEqual(2, samples[('cryptoservice_requests_total',
                                     route + (('status', '200'),))])
        self.assertEqual(1, samples[('cryptoservice_requests_total',
                                     route + (('status', '400'),))])
        self.assertEqual(1, samples[(
            'cryptoservice_errors_total',
            (('route', '/v1/random'), ('type', 'InvalidInput')))])
        self.assertEqual(1, samples[(
            'cryptoservice_errors_total',
            (('route', '/v1/keys/{key_id}'), ('type', 'KeyNotFound')))])
        self.assertEqual(1, samples[(
            'cryptoservice_errors_total',
            (('route', 'unmatched'), ('type', 'RouteNotFound')))])
        self.assertEqual(3, samples[('cryptoservice_request_seconds_count',
                                     (('route', '/v1/random'),))])
        self.assertIn(('cryptoservice_request_seconds_bucket',
                       (('le', '0.0005'), ('route', '/v1/random'))), samples)
        # The scrape itself is in flight while it renders.
        self.assertEqual(1, samples[('cryptoservice_in_flight', ())])
        # Raw paths never become label values.
        self.assertFalse([k for k in samples if 'xxxxx' in str(k)])
