"""The vHSM's HTTP status endpoint and its operation counters."""

import json
import threading
import urllib.error
import urllib.request

import fixtures
import testtools

from cryptocloud.common import exception
from cryptocloud.compute import probes
from cryptocloud.compute.drivers import base as driver_base
from cryptocloud.vhsm import client as client_mod
from cryptocloud.vhsm import server as server_mod
from cryptocloud.vhsm import status

SECRET = b'g' * 32


def _dispatch(op, project, args):
    if op == 'key.get':
        raise exception.KeyNotFound(key_id='k')
    if op == 'explode':
        raise ValueError('boom')
    return {'op': op}


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class OpMetricsTest(testtools.TestCase):

    def test_counts_per_thread_add_up(self):
        metrics = status.OpMetrics(['sign', 'key.get'])

        def work():
            for _ in range(500):
                metrics.end('sign', metrics.begin())
            metrics.end('key.get', metrics.begin(), 'KeyNotFound')
            metrics.end('made.up', metrics.begin())

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        snap = metrics.snapshot()
        self.assertEqual(2000, snap['ops']['sign'][0])
        self.assertEqual(4, snap['ops'][status.OTHER_OP][0])
        self.assertEqual({('key.get', 'KeyNotFound'): 4}, snap['errors'])
        self.assertEqual(0, snap['in_flight'])
        text = metrics.render()
        self.assertIn('vhsm_requests_total{op="sign"} 2000', text)
        self.assertIn('vhsm_request_seconds_bucket{op="sign",le="+Inf"} '
                      '2000', text)
        self.assertIn('vhsm_errors_total{op="key.get",type="KeyNotFound"} '
                      '4', text)
        figures = probes.summarize(driver_base.VHSM,
                                   probes.parse_prometheus(text))
        self.assertEqual(2008, figures.requests)
        self.assertEqual(2008, figures.buckets[float('inf')])

    def test_in_flight(self):
        metrics = status.OpMetrics()
        started = metrics.begin()
        self.assertIn('vhsm_in_flight 1', metrics.render())
        metrics.end('x', started)
        self.assertIn('vhsm_in_flight 0', metrics.render())


class StatusEndpointTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger(level='INFO'))
        self.metrics = status.OpMetrics(['ping', 'key.get', 'explode'])
        self.srv = server_mod.VHSMServer(
            '127.0.0.1', 0, SECRET, _dispatch, group_id='g',
            member_id='m1', metrics=self.metrics)
        self.srv.start()
        self.addCleanup(self.srv.shutdown)
        self.keystore_ok = True
        self.status = status.StatusServer(
            '127.0.0.1', 0, self.metrics, self.health)
        self.status.start()
        self.addCleanup(self.status.stop)
        self.url = 'http://127.0.0.1:%d' % self.status.port

    def health(self):
        if not self.srv.serving:
            return 'not serving'
        return None if self.keystore_ok else 'keystore down'

    def test_metrics_count_served_operations(self):
        cli = client_mod.VHSMClient(['%s:%d' % self.srv.address], SECRET)
        self.addCleanup(cli.close)
        for _ in range(3):
            cli.call('ping', 'p', {})
        self.assertRaises(exception.KeyNotFound, cli.call, 'key.get', 'p',
                          {})
        self.assertRaises(exception.CryptoCloudException, cli.call,
                          'explode', 'p', {})
        code, text = _get(self.url + '/metrics')
        self.assertEqual(200, code)
        self.assertIn('vhsm_requests_total{op="ping"} 3', text)
        self.assertIn('vhsm_errors_total{op="key.get",type="KeyNotFound"} '
                      '1', text)
        self.assertIn('vhsm_errors_total{op="explode",type="InternalError"}'
                      ' 1', text)

    def test_healthz(self):
        code, body = _get(self.url + '/healthz')
        self.assertEqual(200, code)
        self.assertEqual('ok', json.loads(body)['status'])
        self.keystore_ok = False
        self.status._health_expires = 0.0
        code, body = _get(self.url + '/healthz')
        self.assertEqual(503, code)
        self.assertEqual('keystore down', json.loads(body)['reason'])
        self.assertEqual(404, _get(self.url + '/nope')[0])
