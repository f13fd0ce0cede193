"""A call to a node whose queue is missing is sent again, not lost.

Right after a broker restart a compute daemon may not have declared its
queue again yet; the broker returns a mandatory message at once
(``MessageUndeliverable``) and the call is sent again until the node
takes it or the call's timeout has passed.
"""

# Before oslo.messaging, which would select oslo.service's eventlet
# backend.
from cryptocloud.common import threading_backend  # noqa: F401

# isort: split

from unittest import mock

import fixtures
import oslo_messaging as messaging
import testtools

from cryptocloud.common import exception
from cryptocloud.compute import rpcapi


def _undeliverable():
    return messaging.MessageUndeliverable(Exception('NO_ROUTE'),
                                          'cryptocloud', 'node-1', None)


class TestNodeCall(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.compute.rpcapi.UNROUTABLE_RETRY_INTERVAL', 0.01))

    def test_sent_again_until_the_queue_is_there(self):
        cctxt = mock.Mock()
        cctxt.call.side_effect = [_undeliverable(), _undeliverable(),
                                  {'state': 'running'}]
        call = rpcapi._NodeCall(cctxt, 'node-1', timeout=30)
        self.assertEqual({'state': 'running'},
                         call.call({}, 'start_vhsm', vhsm_id='v1'))
        self.assertEqual(3, cctxt.call.call_count)
        cctxt.call.assert_called_with({}, 'start_vhsm', vhsm_id='v1')

    def test_gives_up_after_the_timeout(self):
        cctxt = mock.Mock()
        cctxt.call.side_effect = _undeliverable()
        call = rpcapi._NodeCall(cctxt, 'node-1', timeout=0.05)
        exc = self.assertRaises(exception.ServiceUnavailable, call.call, {},
                                'list_workloads')
        self.assertIn('compute node node-1 has no queue', str(exc))
        self.assertGreater(cctxt.call.call_count, 1)

    def test_other_errors_are_not_retried(self):
        cctxt = mock.Mock()
        cctxt.call.side_effect = messaging.MessagingTimeout('no reply')
        call = rpcapi._NodeCall(cctxt, 'node-1', timeout=30)
        self.assertRaises(messaging.MessagingTimeout, call.call, {},
                          'list_workloads')
        self.assertEqual(1, cctxt.call.call_count)

    def test_calls_are_mandatory(self):
        api = rpcapi.ComputeAPI(timeout=7)
        client = mock.Mock(timeout=7)
        self.useFixture(fixtures.MockPatchObject(
            rpcapi.ComputeAPI, 'client', client))
        node_call = api._prepare('node-1', '1.2')
        _, kwargs = client.prepare.call_args
        self.assertEqual('node-1', kwargs['server'])
        self.assertTrue(kwargs['transport_options'].at_least_once)
        self.assertEqual(7, node_call._timeout)
