"""The container path end to end: claims 1, 4, 5 and 6 with real Docker.

Real processes and servers: cryptocloud-api, cryptocloud-conductor and
four compute daemons with distinct host names (two device nodes, two
service nodes) sharing one Docker Engine, over RabbitMQ, with the
control database and the keystore on MariaDB.  The vHSM and
crypto-service images were built and pushed to a real registry by the
test command; the compute daemons pull them by digest.
"""

import base64
import time
import uuid

import testtools

from cryptocloud.common import workloads
from cryptocloud.tests.functional import controlplane
from cryptocloud.tests.functional import docker_env
from cryptocloud.tests.functional.test_dataplane import openssl_sm2_verify

MESSAGE = b'claim 5: computed inside a vHSM container'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _digest(reference: str) -> str:
    return reference.rpartition('@')[2]


class TestContainers(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.env = docker_env.require(self)
        suffix = uuid.uuid4().hex[:6]
        self.hosts = (('dev1-' + suffix, 'device'),
                      ('dev2-' + suffix, 'device'),
                      ('svc1-' + suffix, 'service'),
                      ('svc2-' + suffix, 'service'))
        self.containers = self.env.node_containers(self, self.hosts)
        self.cp = controlplane.start_control_plane(
            self, computes=self.hosts, compute_driver='docker',
            compute_groups=self.env.compute_groups())
        self.env.publish_images(self.cp.database_url)

    def _tenant(self, endpoint: dict, token: str):
        import requests

        url = 'http://%s:%d' % (endpoint['host'], endpoint['port'])
        hdrs = {'Authorization': 'Bearer ' + token}

        def call(method, path, body=None, expect=200):
            resp = requests.request(method, url + path, json=body,
                                    headers=hdrs, timeout=30)
            self.assertEqual(expect, resp.status_code, resp.text)
            return resp.json()
        return call

    def _sign_and_verify(self, call, key_id: str, pem: str) -> None:
        sig = call('POST', '/v1/keys/%s/sign' % key_id,
                   {'message': b64(MESSAGE)})['signature']
        self.assertTrue(openssl_sm2_verify(pem, MESSAGE,
                                           base64.b64decode(sig)))

    def test_provision_adopt_replace_and_delete(self):
        cp = self.cp
        made = cp.ok('POST', '/v1/vhsm_groups', {'name': 'hsm', 'size': 3})
        group_id = made['vhsm_group']['id']
        self.assertEqual(self.env.vhsm_image, made['vhsm_group']['image'])
        task = cp.wait_task(made['task']['id'], timeout=240)
        self.assertEqual('SUCCEEDED', task['state'], task)
        made = cp.ok('POST', '/v1/services', {
            'name': 'pay', 'vhsm_group_id': group_id, 'instances': 2,
            'replicas': 0})
        service_id = made['service']['id']
        token = made['credential']['token']
        self.assertEqual(self.env.cryptoservice_image,
                         made['service']['image'])
        task = cp.wait_task(made['task']['id'], timeout=240)
        self.assertEqual('SUCCEEDED', task['state'], task)
        service = cp.ok('GET', '/v1/services/%s' % service_id)

        # Five containers, one per row, spread over the right nodes, each
        # from its pinned image, as the non-root user.
        vhsms = cp.ok('GET', '/v1/vhsms?group_id=%s' % group_id)['vhsms']
        instances = cp.ok('GET', '/v1/instances?service_id=%s'
                          % service_id)['instances']
        nodes = {n['id']: n for n in cp.ok('GET', '/v1/nodes')['nodes']}
        self.assertEqual(2, len({v['node_id'] for v in vhsms}))
        self.assertEqual(2, len({i['node_id'] for i in instances}))
        containers = self.containers.by_workload()
        self.assertEqual({r['id'] for r in vhsms + instances},
                         set(containers))
        for row in vhsms + instances:
            container = containers[row['id']]
            self.assertEqual('running', container.status)
            self.assertEqual(nodes[row['node_id']]['hostname'],
                             container.labels[docker_env.HOST_LABEL])
            self.assertEqual('10001:10001', container.attrs['Config']['User'])
            image = (self.env.vhsm_image if row in vhsms
                     else self.env.cryptoservice_image)
            self.assertIn(_digest(image),
                          container.image.attrs['RepoDigests'][0])

        # Claims 3 and 5: the tenant calls the endpoint it was handed.
        call = self._tenant(service['endpoint'], token)
        key_id = call('POST', '/v1/keys', {'algorithm': 'SM2'},
                      expect=201)['key_id']
        pem = call('GET', '/v1/keys/%s/public-key' % key_id)[
            'public_key_pem']
        self._sign_and_verify(call, key_id, pem)
        sm4 = call('POST', '/v1/keys', {'algorithm': 'SM4_GCM'},
                   expect=201)['key_id']
        sealed = call('POST', '/v1/keys/%s/encrypt' % sm4,
                      {'plaintext': b64(b'ledger row 7'),
                       'aad': b64(b'table=ledger')})
        opened = call('POST', '/v1/keys/%s/decrypt' % sm4,
                      {'ciphertext': sealed['ciphertext'],
                       'aad': b64(b'table=ledger')})
        self.assertEqual(b'ledger row 7',
                         base64.b64decode(opened['plaintext']))

        # kill -9 a compute daemon and start it again: it adopts its
        # containers; nothing is started twice.
        before = {c.id for c in self.containers.list()}
        index, (host, roles) = next(
            (i, h) for i, h in enumerate(self.hosts) if h[1] == 'device')
        cp.processes['compute-' + host].kill()
        cp.start_compute(host, roles, index)
        time.sleep(4)  # a few heartbeats of the new daemon
        cp.wait_for('/v1/vhsms?group_id=%s' % group_id, lambda b: all(
            v['state'] == 'ACTIVE' for v in b['vhsms']))
        self.assertEqual(before, {c.id for c in self.containers.list()})
        self._sign_and_verify(call, key_id, pem)

        # docker kill a vHSM container: detected, replaced, and the
        # service keeps answering throughout.
        victim = vhsms[0]['id']
        containers[victim].kill()
        self._sign_and_verify(call, key_id, pem)
        cp.wait_for('/v1/vhsms?group_id=%s' % group_id, lambda b: (
            victim not in {v['id'] for v in b['vhsms']}
            and [v['state'] for v in b['vhsms']] == ['ACTIVE'] * 3),
            timeout=120)
        cp.wait_for('/v1/associations', lambda b: len(
            b['associations']) == 6, timeout=60)
        self.assertNotIn(victim, self.containers.by_workload())
        self._sign_and_verify(call, key_id, pem)
        self.assertEqual(5, len(self.containers.list()))

        # Deleting leaves no container, port or row behind.
        ports = [i['port'] for i in cp.ok(
            'GET', '/v1/instances?service_id=%s' % service_id)['instances']]
        for vhsm in cp.ok('GET', '/v1/vhsms?group_id=%s'
                          % group_id)['vhsms']:
            ports += [vhsm['port'], vhsm['status_port']]
        task = cp.ok('DELETE', '/v1/services/%s' % service_id)['task']
        self.assertEqual('SUCCEEDED', cp.wait_task(task['id'])['state'])
        task = cp.ok('DELETE', '/v1/vhsm_groups/%s' % group_id)['task']
        self.assertEqual('SUCCEEDED', cp.wait_task(task['id'])['state'])
        self.assertEqual([], self.containers.list())
        self.assertEqual([], cp.ok('GET', '/v1/vhsms')['vhsms'])
        self.assertEqual([], cp.ok('GET', '/v1/instances')['instances'])
        self.assertEqual([], cp.ok('GET', '/v1/associations')[
            'associations'])
        for port in ports:
            self.assertFalse(workloads.port_open('127.0.0.1', port),
                             'port %d still open' % port)
