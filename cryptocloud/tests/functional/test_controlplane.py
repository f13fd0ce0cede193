"""The control plane end to end, as the patent's claims 1, 4 and 5 say.

The same scenarios run twice, with four compute nodes of distinct host
names (two device nodes, two service nodes) and the process driver
starting real vHSMs and service instances:

* as separate processes -- cryptocloud-api, cryptocloud-conductor and
  four cryptocloud-compute daemons -- over RabbitMQ, with the control
  database and the keystore on MariaDB;
* in one process, cryptocloud-all-in-one, on the in-process bus with
  SQLite.  Its conductor cannot be killed alone, so the whole process
  is; a stopped compute daemon is a node the next start leaves out.
"""

import base64
import signal
import time

import testtools

from cryptocloud.common import workloads
from cryptocloud.tests.functional import controlplane
from cryptocloud.tests.functional import inprocess
from cryptocloud.tests.functional.test_dataplane import openssl_sm2_verify

MESSAGE = b'claim 1: sign through the provisioned endpoint'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


COMPUTES = (('device-1', 'device'), ('device-2', 'device'),
            ('service-1', 'service'), ('service-2', 'service'))


class ControlPlaneScenarios:
    """The scenarios; a subclass makes ``self.cp`` and says how its
    conductor is killed and a compute daemon stopped."""

    def kill_conductor_and_restart(self) -> None:
        raise NotImplementedError

    def stop_compute(self, host: str) -> None:
        raise NotImplementedError

    def _provision(self, size=3, instances=2):
        return self.cp.provision(size, instances, group_name='bank-hsm',
                                 name='payments')

    def _tenant_sign(self, endpoint: dict, token: str):
        import requests
        url, key_id, pem = controlplane.tenant_sm2_key(endpoint, token)
        sig = requests.post(url + '/v1/keys/%s/sign' % key_id,
                            json={'message': b64(MESSAGE)},
                            headers={'Authorization': 'Bearer ' + token},
                            timeout=30)
        self.assertEqual(200, sig.status_code, sig.text)
        return pem, base64.b64decode(sig.json()['signature'])

    def test_provision_sign_resize_and_delete(self):
        cp = self.cp
        group_id, service, token = self._provision()
        self.assertEqual('ACTIVE', service['state'])
        vhsms = cp.ok('GET', '/v1/vhsms?group_id=%s' % group_id)['vhsms']
        self.assertEqual(3, len(vhsms))
        nodes = {n['id']: n for n in cp.ok('GET', '/v1/nodes')['nodes']}
        # Spread over both device nodes, only on device nodes.
        self.assertEqual(2, len({v['node_id'] for v in vhsms}))
        self.assertTrue(all('device' in nodes[v['node_id']]['roles']
                            for v in vhsms))
        instances = cp.ok('GET', '/v1/instances?service_id=%s'
                          % service['id'])['instances']
        self.assertEqual(2, len({i['node_id'] for i in instances}))
        self.assertTrue(all('service' in nodes[i['node_id']]['roles']
                            for i in instances))
        # Every instance is associated with every vHSM of the group.  A
        # vHSM that failed meanwhile (a node's heartbeat late on a busy
        # machine) is replaced and re-associated by the reconciler.
        cp.wait_for('/v1/associations',
                    lambda b: len(b['associations']) == 6, timeout=60)

        # Claim 3: the tenant uses the endpoint it was handed.
        pem, sig = self._tenant_sign(service['endpoint'], token)
        self.assertTrue(openssl_sm2_verify(pem, MESSAGE, sig))

        # Resize both ways.
        task = cp.ok('PATCH', '/v1/vhsm_groups/%s' % group_id,
                     {'size': 4})['task']
        self.assertEqual('SUCCEEDED', cp.wait_task(task['id'])['state'])
        task = cp.ok('PATCH', '/v1/services/%s' % service['id'],
                     {'instances': 1})['task']
        self.assertEqual('SUCCEEDED', cp.wait_task(task['id'])['state'])
        self.assertEqual(4, len(cp.ok(
            'GET', '/v1/vhsms?group_id=%s' % group_id)['vhsms']))
        self.assertEqual(1, len(cp.ok(
            'GET', '/v1/instances?service_id=%s' % service['id'])[
                'instances']))
        service = cp.ok('GET', '/v1/services/%s' % service['id'])
        pem, sig = self._tenant_sign(service['endpoint'], token)
        self.assertTrue(openssl_sm2_verify(pem, MESSAGE, sig))

        # Delete leaves no process, port or row behind.
        ports = [i['port'] for i in cp.ok(
            'GET', '/v1/instances?service_id=%s' % service['id'])[
                'instances']]
        ports += [v['port'] for v in cp.ok(
            'GET', '/v1/vhsms?group_id=%s' % group_id)['vhsms']]
        task = cp.ok('DELETE', '/v1/services/%s' % service['id'])['task']
        self.assertEqual('SUCCEEDED', cp.wait_task(task['id'])['state'])
        task = cp.ok('DELETE', '/v1/vhsm_groups/%s' % group_id)['task']
        self.assertEqual('SUCCEEDED', cp.wait_task(task['id'])['state'])
        self.assertEqual([], cp.ok('GET', '/v1/vhsms')['vhsms'])
        self.assertEqual([], cp.ok('GET', '/v1/instances')['instances'])
        self.assertEqual([], cp.ok('GET', '/v1/associations')[
            'associations'])
        for port in ports:
            self.assertFalse(workloads.port_open('127.0.0.1', port),
                             'port %d still open' % port)

    def test_conductor_killed_during_provisioning(self):
        cp = self.cp
        made = cp.ok('POST', '/v1/vhsm_groups', {'name': 'g', 'size': 3})
        time.sleep(0.3)
        self.kill_conductor_and_restart()
        task = cp.wait_task(made['task']['id'], timeout=180)
        self.assertIn(task['state'], ('SUCCEEDED', 'FAILED'))
        if task['state'] == 'FAILED':
            self.assertTrue(task['error'])
        else:
            group = cp.ok('GET', '/v1/vhsm_groups/%s'
                          % made['vhsm_group']['id'])
            self.assertEqual('ACTIVE', group['state'])

    def test_stopped_compute_node_goes_down_and_gets_no_work(self):
        cp = self.cp
        self.stop_compute('device-2')
        cp.wait_for('/v1/nodes', lambda b: any(
            n['hostname'] == 'device-2' and n['state'] == 'DOWN'
            for n in b['nodes']), timeout=60)
        made = cp.ok('POST', '/v1/vhsm_groups', {'name': 'g', 'size': 2})
        self.assertEqual('SUCCEEDED',
                         cp.wait_task(made['task']['id'])['state'])
        nodes = {n['id']: n['hostname']
                 for n in cp.ok('GET', '/v1/nodes')['nodes']}
        vhsms = cp.ok('GET', '/v1/vhsms?group_id=%s'
                      % made['vhsm_group']['id'])['vhsms']
        self.assertEqual({'device-1'}, {nodes[v['node_id']] for v in vhsms})


class TestControlPlaneRabbitMariaDB(ControlPlaneScenarios,
                                    testtools.TestCase):
    """Separate daemons over RabbitMQ, with MariaDB."""

    def setUp(self):
        super().setUp()
        self.cp = controlplane.start_control_plane(self, computes=COMPUTES)

    def kill_conductor_and_restart(self) -> None:
        self.cp.processes['conductor'].kill()
        self.cp.start_conductor()

    def stop_compute(self, host: str) -> None:
        self.cp.processes['compute-' + host].signal(signal.SIGTERM)
        self.cp.processes['compute-' + host].stop()


class TestControlPlaneInProcessSQLite(ControlPlaneScenarios,
                                      testtools.TestCase):
    """cryptocloud-all-in-one: one process, the in-process bus, SQLite."""

    def setUp(self):
        super().setUp()
        self.cp = self.useFixture(inprocess.InProcessControlPlane(
            COMPUTES))
        self.addOnException(self.cp.attach_diagnostics(self))
        self.cp.wait_for('/v1/nodes', lambda b: len(
            [n for n in b['nodes'] if n['state'] == 'UP']) == len(COMPUTES))

    def kill_conductor_and_restart(self) -> None:
        self.cp.kill()
        self.cp.start()

    def stop_compute(self, host: str) -> None:
        self.cp.stop()
        self.cp.start([c for c in COMPUTES if c[0] != host])
