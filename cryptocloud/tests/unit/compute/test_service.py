"""The compute daemon over the in-process fake:// bus."""

import os
import signal
import time

from cryptocloud.common import context as cc_context
from cryptocloud.common import rpc
from cryptocloud.compute import manager as manager_mod
from cryptocloud.compute import rpcapi
from cryptocloud.compute import service
from cryptocloud.compute.drivers import base as driver_base
from cryptocloud.compute.drivers import recording
from cryptocloud.conf import CONF
from cryptocloud.tests.unit.compute import base


class FakeConductor:
    """Records what a compute node reports."""

    def __init__(self):
        self.nodes = []
        self.heartbeats = []
        self.orphans = []

    def register_node(self, ctxt, host, address, roles, vhsm_capacity,
                      instance_capacity):
        self.nodes.append((host, address, roles, vhsm_capacity,
                           instance_capacity))
        return {'hostname': host}

    def heartbeat(self, ctxt, host, workloads, load):
        self.heartbeats.append((host, workloads, load))
        return {'orphans': list(self.orphans)}


class ServiceTest(base.ComputeTestCase):

    def setUp(self):
        super().setUp()
        CONF.set_override('transport_url', 'fake://')
        self.addCleanup(CONF.clear_override, 'transport_url')
        rpc.cleanup()
        rpc.init(CONF)
        self.addCleanup(rpc.cleanup)

    def start_service(self, driver):
        self.conductor = FakeConductor()
        mgr = manager_mod.ComputeManager(driver)
        svc = service.ComputeService(mgr, self.conductor)
        svc.start()
        self.addCleanup(svc.stop)
        return svc

    def wait_heartbeats(self, count):
        deadline = time.monotonic() + 20
        while len(self.conductor.heartbeats) < count:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)

    def test_rpc_round_trip_with_the_recording_driver(self):
        driver = recording.RecordingDriver(self.state_path)
        self.start_service(driver)
        api = rpcapi.ComputeAPI(timeout=30)
        ctxt = cc_context.get_admin_context()
        vhsm = api.start_vhsm(ctxt, 'node-1', 'vhsm-1', 'group-a')
        self.assertEqual('running', vhsm['state'])
        self.assertTrue(vhsm['healthy'])
        cred = {'id': 'c1', 'project_id': 'p', 'secret_sha256': 'a' * 64}
        inst = api.start_instance(ctxt, 'node-1', 'inst-1', 'svc-1',
                                  'group-a', ['127.0.0.1:%d' % vhsm['port']],
                                  [cred])
        self.assertEqual('cryptoservice', inst['kind'])
        api.update_instance(ctxt, 'node-1', 'inst-1', ['127.0.0.1:1'],
                            [cred])
        self.assertEqual(1, driver.reloads['inst-1'])
        listed = api.list_workloads(ctxt, 'node-1')
        self.assertEqual({'vhsm-1', 'inst-1'},
                         {w['workload_id'] for w in listed})
        self.assertEqual({}, api.stop_workload(ctxt, 'node-1', 'vhsm-1'))
        self.assertEqual({}, api.stop_workload(ctxt, 'node-1', 'vhsm-1'))
        # Errors cross the bus as their own class.
        from cryptocloud.common import exception
        self.assertRaises(exception.InvalidInput, api.start_vhsm, ctxt,
                          'node-1', 'vhsm-2', 'bad group!')
        # The specs the driver saw hold no secret the conductor sent:
        # the group secret was derived here.
        self.assertIn('group.secret', driver.specs['inst-1'].files)

        self.assertEqual(1, len(self.conductor.nodes))
        host, address, roles, vcap, icap = self.conductor.nodes[0]
        self.assertEqual(('node-1', '127.0.0.1'), (host, address))
        self.assertEqual(['device', 'service'], roles)

    def test_replicas_over_rpc_1_2(self):
        driver = recording.RecordingDriver(self.state_path)
        self.start_service(driver)
        api = rpcapi.ComputeAPI(timeout=30)
        ctxt = cc_context.get_admin_context()
        cred = {'id': 'c1', 'project_id': 'p', 'secret_sha256': 'a' * 64}
        primary = api.start_instance(ctxt, 'node-1', 'inst-1', 'svc-1',
                                     'group-a', ['127.0.0.1:1'], [cred])
        replica = api.prepare_instance(ctxt, 'node-1', 'inst-2', 'svc-1',
                                       'group-a', ['127.0.0.1:1'], [cred],
                                       port=primary['port'])
        self.assertEqual('prepared', replica['state'])
        self.assertEqual(primary['port'], replica['port'])
        self.assertEqual('prepared', {
            w['workload_id']: w for w in api.list_workloads(ctxt, 'node-1')
        }['inst-2']['state'])
        status = api.activate_workload(ctxt, 'node-1', 'inst-2')
        self.assertEqual(('running', True), (status['state'],
                                             status['healthy']))
        # Errors cross the bus as their own class.
        from cryptocloud.common import exception
        self.assertRaises(exception.ResourceNotFound, api.activate_workload,
                          ctxt, 'node-1', 'nothing')
        self.assertRaises(exception.InvalidInput, api.prepare_instance,
                          ctxt, 'node-1', 'inst-3', 'svc-1', 'group-a',
                          ['127.0.0.1:1'], [cred], port=1)

    def test_a_client_capped_below_1_2_has_no_replicas(self):
        from cryptocloud.common import exception
        driver = recording.RecordingDriver(self.state_path)
        self.start_service(driver)
        api = rpcapi.ComputeAPI(version_cap='1.1', timeout=30)
        ctxt = cc_context.get_admin_context()
        cred = {'id': 'c1', 'project_id': 'p', 'secret_sha256': 'a' * 64}
        exc = self.assertRaises(
            exception.ComputeTooOld, api.prepare_instance, ctxt, 'node-1',
            'inst-2', 'svc-1', 'group-a', ['127.0.0.1:1'], [cred])
        self.assertIn('node-1', str(exc))
        self.assertIn('1.2', str(exc))
        self.assertEqual(503, exc.code)
        self.assertRaises(exception.ComputeTooOld, api.activate_workload,
                          ctxt, 'node-1', 'inst-2')
        self.assertEqual({}, driver.specs)
        # What 1.1 has still works.
        api.start_instance(ctxt, 'node-1', 'inst-1', 'svc-1', 'group-a',
                           ['127.0.0.1:1'], [cred])
        self.assertEqual(['inst-1'], list(driver.specs))

    def test_a_workload_that_dies_is_reported_at_once(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        mgr.start_vhsm(None, 'vhsm-1', 'group-a')
        mgr.close()
        CONF.set_override('heartbeat_interval', 3600, group='compute')
        CONF.set_override('watch_interval', 0.1, group='compute')
        self.addCleanup(CONF.clear_override, 'watch_interval',
                        group='compute')
        self.start_service(self.new_driver())
        self.wait_heartbeats(1)
        time.sleep(0.5)  # the watcher has seen it running
        pid = driver.status('vhsm-1').pid
        os.kill(pid, signal.SIGKILL)
        # Not an hour later: within a few watch intervals.
        self.wait_heartbeats(2)
        _, workloads, _ = self.conductor.heartbeats[-1]
        self.assertEqual(['exited'], [w['state'] for w in workloads])

    def test_orphans_named_twice_are_removed(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        mgr.start_vhsm(None, 'vhsm-kept', 'group-a')
        mgr.start_vhsm(None, 'vhsm-orphan', 'group-a')
        mgr.close()
        self.conductor = FakeConductor()
        svc = service.ComputeService(self.new_manager(driver),
                                     self.conductor)
        svc.registered = True
        # Named once (a start may race the row being written): kept.
        self.conductor.orphans = ['vhsm-orphan']
        svc.heartbeat()
        self.assertEqual(driver_base.RUNNING,
                         driver.status('vhsm-orphan').state)
        # Named again: removed; the other workload is left alone.
        svc.heartbeat()
        self.assertEqual(driver_base.MISSING,
                         driver.status('vhsm-orphan').state)
        self.assertEqual(driver_base.RUNNING,
                         driver.status('vhsm-kept').state)
        svc.manager.close()

    def test_adopts_and_reports_running_workloads(self):
        driver = self.new_driver()
        first = self.new_manager(driver)
        vhsm = first.start_vhsm(None, 'vhsm-1', 'group-a')
        first.close()

        # A new daemon on the same state path finds the vHSM running.
        svc = self.start_service(self.new_driver())
        self.wait_heartbeats(2)
        host, workloads, load = self.conductor.heartbeats[-1]
        self.assertEqual('node-1', host)
        self.assertEqual(1, len(workloads))
        reported = workloads[0]
        self.assertEqual('vhsm-1', reported['workload_id'])
        self.assertEqual(vhsm['workload_ref'], reported['workload_ref'])
        self.assertEqual(driver_base.RUNNING, reported['state'])
        self.assertTrue(reported['healthy'])
        self.assertEqual(1, load['vhsms'])
        self.assertTrue(svc.registered)
        svc.stop()
        # Stopping the daemon leaves the workload running.
        self.assertEqual(driver_base.RUNNING,
                         driver.status('vhsm-1').state)

    def test_registers_with_its_own_node_config(self):
        """Several nodes in one process (the all-in-one) each register
        with their own roles, address and capacities, not the global
        [compute] ones."""
        import types

        opts = {name: getattr(CONF.compute, name) for name in CONF.compute}
        opts.update(host='device-7', roles=['device'], vhsm_capacity=3,
                    instance_capacity=0, address='127.0.0.1')
        conf = types.SimpleNamespace(compute=types.SimpleNamespace(**opts))
        mgr = manager_mod.ComputeManager(self.new_driver(), conf=conf)
        self.addCleanup(mgr.close)
        self.conductor = FakeConductor()
        service.ComputeService(mgr, self.conductor).register()
        self.assertEqual([('device-7', '127.0.0.1', ['device'], 3, 0)],
                         self.conductor.nodes)
