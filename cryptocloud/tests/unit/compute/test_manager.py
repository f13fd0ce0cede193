"""ComputeManager with the process driver and real workloads."""

import base64
import os
import socket
import stat

import requests

from cryptocloud.common import exception
from cryptocloud.common import secretfile
from cryptocloud.compute import manager as manager_mod
from cryptocloud.compute.drivers import base as driver_base
from cryptocloud.compute.drivers import process
from cryptocloud.compute.drivers import recording
from cryptocloud.conf import CONF
from cryptocloud.cryptoservice import auth
from cryptocloud.tests.unit.compute import base

PROJECT = 'project-a'


def credential(cred_id='c' * 32, secret='s3cret-token',  # noqa: S107
               project=PROJECT):
    """(token, hash dict) of a service credential."""
    return ('%s.%s' % (cred_id, secret),
            {'id': cred_id, 'project_id': project,
             'secret_sha256': auth.hash_secret(secret)})


class PortAllocationTest(base.ComputeTestCase):

    def test_skips_ports_in_use_and_reserved(self):
        mgr = self.new_manager()
        start = self.port_range[0]
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(('127.0.0.1', start))
        busy.listen()
        first = mgr.allocate_ports(2)
        self.assertNotIn(start, first)
        self.assertEqual(2, len(set(first)))
        # Reserved until released, so a concurrent start gets others.
        second = mgr.allocate_ports(1)
        self.assertFalse(set(first) & set(second))
        self.assertGreater(second[0], max(first))
        mgr.release_ports(first)
        self.assertEqual([min(first)], mgr.allocate_ports(1))

    def test_exhausted_range(self):
        start = self.port_range[0]
        CONF.set_override('port_range_end', start + 1, group='compute')
        mgr = self.new_manager()
        mgr.allocate_ports(2)
        self.assertRaises(exception.NoValidHost, mgr.allocate_ports, 1)


class ContainerKeystoreTest(base.ComputeTestCase):

    def test_container_driver_refuses_a_sqlite_keystore(self):
        class ContainerDriver(recording.RecordingDriver):
            shares_node_filesystem = False

        driver = ContainerDriver(self.state_path)
        CONF.set_override('keystore_connection', 'sqlite:////tmp/ks.sqlite',
                          group='compute')
        self.addCleanup(CONF.clear_override, 'keystore_connection',
                        group='compute')
        exc = self.assertRaises(exception.ConfigurationError,
                                self.new_manager, driver)
        self.assertIn('MariaDB or PostgreSQL', str(exc))
        # A service-only node starts no vHSM: no keystore needed.
        CONF.set_override('roles', ['service'], group='compute')
        self.addCleanup(CONF.clear_override, 'roles', group='compute')
        self.new_manager(driver).close()


class GroupSecretTest(base.ComputeTestCase):

    def test_same_seed_same_secret_on_two_managers(self):
        one = self.new_manager()
        other_state = os.path.join(self.tmp, 'other-node')
        two = self.new_manager(process.ProcessDriver(other_state))
        self.assertNotEqual(one.driver.state_path, two.driver.state_path)
        self.assertEqual(one._group_files('group-a'),
                         two._group_files('group-a'))
        self.assertNotEqual(one._group_files('group-a'),
                            one._group_files('group-b'))

    def test_derivation(self):
        import hashlib
        import hmac
        seed = secretfile.read_secret_file(self.seed_file)
        expected = hmac.new(seed, b'vhsm-group|group-a',
                            hashlib.sha256).digest()
        self.assertEqual(expected, manager_mod.derive_group_secret(
            self.seed_file, 'group-a'))

    def test_secret_file_is_readable_as_a_secret_file(self):
        mgr = self.new_manager()
        status = mgr.start_vhsm(None, 'vhsm-1', 'group-a')
        path = os.path.join(mgr.driver.workdir('vhsm-1'), 'group.secret')
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))
        self.assertEqual(
            manager_mod.derive_group_secret(self.seed_file, 'group-a'),
            secretfile.read_secret_file(path))
        self.assertTrue(status['healthy'])


class ManagerTest(base.ComputeTestCase):

    def sign(self, url, token, key_id=None):
        headers = {'Authorization': 'Bearer %s' % token}
        if key_id is None:
            resp = requests.post(url + '/v1/keys', headers=headers,
                                 json={'algorithm': 'SM2',
                                       'purpose': 'sign'}, timeout=10)
            self.assertEqual(201, resp.status_code, resp.text)
            key_id = resp.json()['key_id']
        resp = requests.post(
            url + '/v1/keys/%s/sign' % key_id, headers=headers,
            json={'message': base64.b64encode(b'hello').decode()},
            timeout=10)
        return key_id, resp

    def test_start_vhsm_then_instance_serves_a_tenant(self):
        mgr = self.new_manager()
        vhsm = mgr.start_vhsm(None, 'vhsm-1', 'group-a')
        self.assertEqual('running', vhsm['state'])
        self.assertTrue(vhsm['healthy'])
        self.assertEqual('vhsm', vhsm['kind'])
        self.assertIsNotNone(vhsm['status_port'])
        self.assertEqual({'requests_per_s', 'in_flight', 'p95_ms', 'cpu'},
                         set(vhsm['load']))
        token, cred = credential()
        inst = mgr.start_instance(
            None, 'inst-1', 'svc-1', 'group-a',
            ['127.0.0.1:%d' % vhsm['port']], [cred])
        self.assertEqual('cryptoservice', inst['kind'])
        self.assertTrue(inst['healthy'])
        url = 'http://127.0.0.1:%d' % inst['port']
        key_id, resp = self.sign(url, token)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertIn('signature', resp.json())
        # A wrong secret for the same id is refused.
        _, resp = self.sign(url, cred['id'] + '.wrong', key_id)
        self.assertEqual(401, resp.status_code)

        # The probes now see the traffic.
        listed = {w['workload_id']: w for w in mgr.list_workloads(None)}
        self.assertEqual({'vhsm-1', 'inst-1'}, set(listed))
        self.assertGreater(listed['inst-1']['load']['requests_per_s'], 0)
        self.assertGreater(listed['vhsm-1']['load']['requests_per_s'], 0)
        self.assertGreater(listed['vhsm-1']['load']['p95_ms'], 0)

        # Nothing secret in what goes back over RPC.
        seed = secretfile.read_secret_file(self.seed_file)
        text = repr(listed)
        for secret in (base64.b64encode(seed).decode(),
                       'trmcqnmaxapaxer', self.database.url):
            self.assertNotIn(secret, text)

    def test_update_instance_switches_vhsms_without_restart(self):
        mgr = self.new_manager()
        one = mgr.start_vhsm(None, 'vhsm-1', 'group-a')
        two = mgr.start_vhsm(None, 'vhsm-2', 'group-a')
        token, cred = credential()
        inst = mgr.start_instance(None, 'inst-1', 'svc-1', 'group-a',
                                  ['127.0.0.1:%d' % one['port']], [cred])
        url = 'http://127.0.0.1:%d' % inst['port']
        key_id, resp = self.sign(url, token)
        self.assertEqual(200, resp.status_code, resp.text)

        token2, cred2 = credential('d' * 32, 'other-secret')
        updated = mgr.update_instance(
            None, 'inst-1', ['127.0.0.1:%d' % two['port']], [cred2])
        self.assertEqual(inst['workload_ref'], updated['workload_ref'])
        mgr.stop_workload(None, 'vhsm-1')
        # Served by vhsm-2 now, with the new credential only.
        deadline = 50
        for _ in range(deadline):
            _, resp = self.sign(url, token2, key_id)
            if resp.status_code == 200:
                break
            import time
            time.sleep(0.1)
        self.assertEqual(200, resp.status_code, resp.text)
        _, resp = self.sign(url, token, key_id)
        self.assertEqual(401, resp.status_code)
        self.assertEqual(inst['workload_ref'],
                         mgr.driver.status('inst-1').workload_ref)

    def test_start_is_idempotent_and_stop_too(self):
        mgr = self.new_manager()
        first = mgr.start_vhsm(None, 'vhsm-1', 'group-a')
        again = mgr.start_vhsm(None, 'vhsm-1', 'group-a')
        self.assertEqual(first['workload_ref'], again['workload_ref'])
        self.assertEqual(first['port'], again['port'])
        self.assertEqual({}, mgr.stop_workload(None, 'vhsm-1'))
        self.assertEqual({}, mgr.stop_workload(None, 'vhsm-1'))
        self.assertEqual([], mgr.list_workloads(None))

    def test_new_manager_adopts_and_keeps_ports(self):
        mgr = self.new_manager()
        first = mgr.start_vhsm(None, 'vhsm-1', 'group-a')
        again = self.new_manager()
        listed = again.list_workloads(None)
        self.assertEqual(['vhsm-1'], [w['workload_id'] for w in listed])
        self.assertTrue(listed[0]['healthy'])
        self.assertEqual(first['workload_ref'], listed[0]['workload_ref'])
        second = again.start_vhsm(None, 'vhsm-2', 'group-a')
        self.assertFalse({first['port'], first['status_port']}
                         & {second['port'], second['status_port']})

    def test_failed_start_reports_the_log_without_secrets(self):
        os.chmod(self.master_key_file, 0o644)
        mgr = self.new_manager()
        exc = self.assertRaises(exception.WorkloadStartFailed,
                                mgr.start_vhsm, None, 'vhsm-1', 'group-a')
        self.assertIn('vhsm-1', str(exc))
        self.assertIn('chmod 600', str(exc))
        master = secretfile.read_secret_file
        os.chmod(self.master_key_file, 0o600)
        for path in (self.master_key_file, self.seed_file):
            self.assertNotIn(base64.b64encode(master(path)).decode(),
                             str(exc))
        self.assertEqual([], mgr.driver.list())
        self.assertEqual(503, exc.code)

    def test_bad_arguments(self):
        mgr = self.new_manager()
        _, cred = credential()
        self.assertRaises(exception.InvalidInput, mgr.start_vhsm, None,
                          'vhsm-1', 'bad group!')
        self.assertRaises(exception.InvalidInput, mgr.start_vhsm, None,
                          '../etc', 'group-a')
        self.assertRaises(exception.InvalidInput, mgr.start_instance, None,
                          'inst-1', 'svc', 'group-a', [], [cred])
        self.assertRaises(exception.InvalidInput, mgr.start_instance, None,
                          'inst-1', 'svc', 'group-a', ['nohost'], [cred])
        bad = dict(cred, secret_sha256='not-hex')
        self.assertRaises(exception.InvalidInput, mgr.start_instance, None,
                          'inst-1', 'svc', 'group-a', ['127.0.0.1:1'],
                          [bad])
        self.assertRaises(exception.ResourceNotFound, mgr.update_instance,
                          None, 'inst-1', ['127.0.0.1:1'], [cred])
        self.assertEqual([], mgr.driver.list())

    def test_roles_and_capacity(self):
        CONF.set_override('roles', ['service'], group='compute')
        self.addCleanup(CONF.clear_override, 'roles', group='compute')
        mgr = self.new_manager()
        self.assertRaises(exception.Conflict, mgr.start_vhsm, None,
                          'vhsm-1', 'group-a')
        self.assertEqual(driver_base.MISSING,
                         mgr.driver.status('vhsm-1').state)
