"""ComputeManager with the process driver and real workloads."""

import base64
import os
import signal
import socket
import stat
import threading
import time

import requests

from cryptocloud.common import exception
from cryptocloud.common import secretfile
from cryptocloud.common import workloads
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
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # The block is this test's, but a port of it may still be taken
        # (a server of another program), which allocation skips too.
        for start in range(*self.port_range):
            try:
                busy.bind(('127.0.0.1', start))
                break
            except OSError:
                continue
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


class ReplicaTest(base.ComputeTestCase):
    """prepare_instance and activate_workload (RPC 1.2)."""

    sign = ManagerTest.sign

    def start_primary(self, mgr, instance_id='inst-1', service_id='svc-1'):
        vhsm = mgr.start_vhsm(None, 'vhsm-1', 'group-a')
        self.endpoints = ['127.0.0.1:%d' % vhsm['port']]
        self.token, self.cred = credential()
        return mgr.start_instance(None, instance_id, service_id, 'group-a',
                                  self.endpoints, [self.cred])

    def prepare(self, mgr, instance_id='replica-1', service_id='svc-1',
                port=None, **kwargs):
        return mgr.prepare_instance(None, instance_id, service_id, 'group-a',
                                    self.endpoints, [self.cred], port=port,
                                    **kwargs)

    def wait_exited(self, mgr, workload_id):
        deadline = time.monotonic() + 10
        while mgr.driver.status(workload_id).state == driver_base.RUNNING:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)

    def test_prepared_replica_runs_nothing_until_activated(self):
        mgr = self.new_manager()
        primary = self.start_primary(mgr)
        replica = self.prepare(mgr)
        self.assertEqual('prepared', replica['state'])
        self.assertFalse(replica['healthy'])
        self.assertEqual('cryptoservice', replica['kind'])
        self.assertNotEqual(primary['port'], replica['port'])
        self.assertTrue(self.port_range[0] <= replica['port']
                        <= self.port_range[1])
        self.assertFalse(workloads.port_open('127.0.0.1', replica['port']))
        listed = {w['workload_id']: w for w in mgr.list_workloads(None)}
        self.assertEqual('prepared', listed['replica-1']['state'])
        self.assertEqual(replica['port'], listed['replica-1']['port'])
        # Credentials and vHSMs reach a prepared replica too.
        token2, cred2 = credential('d' * 32, 'other-secret')
        updated = mgr.update_instance(None, 'replica-1', self.endpoints,
                                      [self.cred, cred2])
        self.assertEqual('prepared', updated['state'])

        status = mgr.activate_workload(None, 'replica-1')
        self.assertEqual('running', status['state'])
        self.assertTrue(status['healthy'])
        self.assertEqual(replica['port'], status['port'])
        url = 'http://127.0.0.1:%d' % status['port']
        _, resp = self.sign(url, token2)
        self.assertEqual(200, resp.status_code, resp.text)
        # Activated again (a retried call): the same running workload.
        again = mgr.activate_workload(None, 'replica-1')
        self.assertEqual(status['workload_ref'], again['workload_ref'])
        # The primary was not touched: another port.
        self.assertEqual(driver_base.RUNNING,
                         mgr.driver.status('inst-1').state)
        mgr.stop_workload(None, 'replica-1')
        self.assertEqual(driver_base.MISSING,
                         mgr.driver.status('replica-1').state)

    def test_same_port_takeover_after_kill_9(self):
        mgr = self.new_manager()
        primary = self.start_primary(mgr)
        url = 'http://127.0.0.1:%d' % primary['port']
        key_id, resp = self.sign(url, self.token)
        self.assertEqual(200, resp.status_code, resp.text)
        replica = self.prepare(mgr, port=primary['port'])
        self.assertEqual(primary['port'], replica['port'])
        self.assertEqual('prepared', replica['state'])

        os.kill(mgr.driver.status('inst-1').pid, signal.SIGKILL)
        began = time.monotonic()
        status = mgr.activate_workload(None, 'replica-1')
        took = time.monotonic() - began
        self.assertEqual('running', status['state'])
        self.assertTrue(status['healthy'])
        self.assertEqual(primary['port'], status['port'])
        self.assertLess(took, 10)
        _, resp = self.sign(url, self.token, key_id)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertNotEqual(primary['workload_ref'], status['workload_ref'])
        self.assertNotEqual(driver_base.RUNNING,
                            mgr.driver.status('inst-1').state)

    def test_takeover_stops_a_primary_that_still_runs(self):
        mgr = self.new_manager()
        primary = self.start_primary(mgr)
        self.prepare(mgr, port=primary['port'])
        status = mgr.activate_workload(None, 'replica-1')
        self.assertEqual(primary['port'], status['port'])
        self.assertTrue(status['healthy'])
        # Never both on one host:port: the primary was stopped.
        self.assertEqual(driver_base.MISSING,
                         mgr.driver.status('inst-1').state)
        url = 'http://127.0.0.1:%d' % primary['port']
        _, resp = self.sign(url, self.token)
        self.assertEqual(200, resp.status_code, resp.text)

    def test_replica_that_found_its_port_taken_is_started_again(self):
        mgr = self.new_manager()
        self.start_primary(mgr)
        replica = self.prepare(mgr)
        # Something still holds the port when the program binds it
        # (checked free just before: a primary dying at that moment).
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(('127.0.0.1', replica['port']))
        holder.listen()
        self.addCleanup(holder.close)
        real = mgr._bindable
        lies = [True]
        self.patch(mgr, '_bindable',
                   lambda port: lies.pop() if lies else real(port))
        timer = threading.Timer(2.0, holder.close)
        timer.start()
        self.addCleanup(timer.cancel)
        status = mgr.activate_workload(None, 'replica-1')
        self.assertEqual('running', status['state'])
        self.assertEqual(replica['port'], status['port'])
        with open(os.path.join(mgr.driver.workdir('replica-1'),
                               'workload.log')) as f:
            self.assertIn('Address already in use', f.read())
        url = 'http://127.0.0.1:%d' % status['port']
        _, resp = self.sign(url, self.token)
        self.assertEqual(200, resp.status_code, resp.text)

    def test_failed_activation_leaves_it_prepared(self):
        CONF.set_override('start_timeout', 2.0, group='compute')
        mgr = self.new_manager()
        self.start_primary(mgr)
        replica = self.prepare(mgr)
        # Its port never comes free.
        holder = socket.socket()
        self.addCleanup(holder.close)
        # As the workloads bind: an earlier test's connections may sit
        # in TIME_WAIT on the port.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(('127.0.0.1', replica['port']))
        holder.listen()
        exc = self.assertRaises(exception.WorkloadStartFailed,
                                mgr.activate_workload, None, 'replica-1')
        self.assertIn('port %d' % replica['port'], str(exc))
        self.assertIn('still in use', str(exc))
        self.assertIn('left prepared', str(exc))
        self.assertNotIn('last lines of its log', str(exc))  # never ran
        self.assertEqual(503, exc.code)
        self.assertEqual(driver_base.PREPARED,
                         mgr.driver.status('replica-1').state)
        holder.close()

        # A program that cannot start: the log says why, and it is
        # prepared again (no process left).
        os.unlink(os.path.join(mgr.driver.workdir('replica-1'),
                               'group.secret'))
        exc = self.assertRaises(exception.WorkloadStartFailed,
                                mgr.activate_workload, None, 'replica-1')
        self.assertIn('last lines of its log', str(exc))
        self.assertIn('left prepared', str(exc))
        status = mgr.driver.status('replica-1')
        self.assertEqual(driver_base.PREPARED, status.state)
        self.assertIsNone(status.pid)

    def test_activate_errors(self):
        mgr = self.new_manager()
        self.assertRaises(exception.ResourceNotFound, mgr.activate_workload,
                          None, 'nothing')
        self.assertRaises(exception.InvalidInput, mgr.activate_workload,
                          None, '../etc')
        primary = self.start_primary(mgr)
        # A running workload is returned as it is.
        self.assertEqual(primary['workload_ref'],
                         mgr.activate_workload(None, 'inst-1')['workload_ref'])
        os.kill(mgr.driver.status('inst-1').pid, signal.SIGKILL)
        self.wait_exited(mgr, 'inst-1')
        self.assertRaises(exception.InvalidState, mgr.activate_workload,
                          None, 'inst-1')

    def test_prepare_refuses_a_running_instance_and_replaces_remains(self):
        mgr = self.new_manager()
        primary = self.start_primary(mgr)
        self.assertRaises(exception.Conflict, self.prepare, mgr, 'inst-1')
        self.assertRaises(exception.Conflict, self.prepare, mgr, 'vhsm-1')
        os.kill(mgr.driver.status('inst-1').pid, signal.SIGKILL)
        self.wait_exited(mgr, 'inst-1')
        status = self.prepare(mgr, 'inst-1')
        self.assertEqual('prepared', status['state'])
        self.assertNotEqual(primary['workload_ref'], status['workload_ref'])

    def test_prepared_again_keeps_its_port_unless_given_one(self):
        mgr = self.new_manager()
        primary = self.start_primary(mgr)
        first = self.prepare(mgr)
        again = self.prepare(mgr)
        self.assertEqual(first['port'], again['port'])
        moved = self.prepare(mgr, port=primary['port'])
        self.assertEqual(primary['port'], moved['port'])
        self.assertEqual(primary['port'],
                         self.prepare(mgr)['port'])

    def test_port_is_shared_only_within_a_service_when_given(self):
        mgr = self.new_manager()
        primary = self.start_primary(mgr)
        vhsm = mgr.driver.status('vhsm-1')
        start, end = self.port_range
        for bad in (start - 1, end + 1, str(primary['port']), True, 0):
            self.assertRaises(exception.InvalidInput, self.prepare, mgr,
                              port=bad)
        # A vHSM's ports, another service's instance port: refused.
        for port in (vhsm.port, vhsm.status_port):
            exc = self.assertRaises(exception.Conflict, self.prepare, mgr,
                                    port=port)
            self.assertIn('vhsm-1', str(exc))
        exc = self.assertRaises(exception.Conflict, self.prepare, mgr,
                                service_id='svc-2', port=primary['port'])
        self.assertIn('inst-1', str(exc))
        # A port some other program of the node holds: refused.
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(20):
            # Another test may take a free port of the range meanwhile.
            port = mgr.allocate_ports(1)[0]
            mgr.release_ports([port])
            try:
                busy.bind(('127.0.0.1', port))
                break
            except OSError:
                continue
        busy.listen()
        exc = self.assertRaises(exception.Conflict, self.prepare, mgr,
                                port=port)
        self.assertIn('none of its workloads', str(exc))
        self.assertEqual({'vhsm-1', 'inst-1'},
                         {s.workload_id for s in mgr.driver.list()})
        # Two replicas of the same service may share the primary's port.
        self.prepare(mgr, 'replica-1', port=primary['port'])
        self.prepare(mgr, 'replica-2', port=primary['port'])

    def test_prepared_ports_are_not_allocated_again(self):
        start = self.port_range[0]
        CONF.set_override('port_range_end', start + 5, group='compute')
        mgr = self.new_manager()
        self.start_primary(mgr)  # three ports
        replica = self.prepare(mgr)  # the fourth
        free = mgr.allocate_ports(2)
        self.assertNotIn(replica['port'], free)
        self.assertRaises(exception.NoValidHost, mgr.allocate_ports, 1)
        mgr.release_ports(free)
        # Gone, its port is free again.
        mgr.stop_workload(None, 'replica-1')
        self.assertEqual([replica['port']], mgr.allocate_ports(1))

    def test_prepared_replicas_count_toward_capacity(self):
        CONF.set_override('instance_capacity', 2, group='compute')
        self.addCleanup(CONF.clear_override, 'instance_capacity',
                        group='compute')
        mgr = self.new_manager()
        self.start_primary(mgr)
        self.prepare(mgr, 'replica-1')
        exc = self.assertRaises(exception.NoValidHost, self.prepare, mgr,
                                'replica-2')
        self.assertIn('1 of them prepared', str(exc))
        self.assertRaises(exception.NoValidHost, mgr.start_instance, None,
                          'inst-2', 'svc-1', 'group-a', self.endpoints,
                          [self.cred])
        # Preparing the same replica again takes no new slot.
        self.assertEqual('prepared',
                         self.prepare(mgr, 'replica-1')['state'])

    def test_prepare_validation(self):
        mgr = self.new_manager()
        self.endpoints = ['127.0.0.1:1']
        _, self.cred = credential()
        bad_cred = dict(self.cred, secret_sha256='not-hex')
        for args in (
                ('inst-1', 'svc-1', 'bad group!', self.endpoints,
                 [self.cred]),
                ('../x', 'svc-1', 'group-a', self.endpoints, [self.cred]),
                ('inst-1', 'svc 1', 'group-a', self.endpoints, [self.cred]),
                ('inst-1', 'svc-1', 'group-a', [], [self.cred]),
                ('inst-1', 'svc-1', 'group-a', ['nohost'], [self.cred]),
                ('inst-1', 'svc-1', 'group-a', self.endpoints, [bad_cred])):
            self.assertRaises(exception.InvalidInput, mgr.prepare_instance,
                              None, *args)
        self.assertRaises(exception.InvalidInput, mgr.prepare_instance,
                          None, 'inst-1', 'svc-1', 'group-a',
                          self.endpoints, [self.cred], image='latest')
        self.assertEqual([], mgr.driver.list())
        CONF.set_override('roles', ['device'], group='compute')
        self.addCleanup(CONF.clear_override, 'roles', group='compute')
        self.assertRaises(exception.Conflict, self.prepare, mgr, 'inst-1')
        self.assertEqual([], mgr.driver.list())
