"""The process driver with real cryptocloud-vhsm processes."""

import os
import signal
import stat
import subprocess
import sys
import time

from cryptocloud.common import exception
from cryptocloud.common import workloads
from cryptocloud.compute import probes
from cryptocloud.compute.drivers import base as driver_base
from cryptocloud.compute.drivers import process
from cryptocloud.tests.unit.compute import base

# Ignores SIGTERM, so stop() must escalate to SIGKILL.  Its argv carries
# the config path, as a real workload's does.
STUBBORN = '''
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(1)
'''


class StubbornDriver(process.ProcessDriver):
    """Runs a program that ignores SIGTERM instead of a vHSM."""

    def argv(self, kind, config_file):
        return [sys.executable, '-c', STUBBORN, '--config-file',
                config_file]


class ProcessDriverTest(base.ComputeTestCase):

    def vhsm_spec(self, mgr, workload_id='vhsm-1', group_id='group-a'):
        port, status_port = mgr.allocate_ports(2)
        self.addCleanup(mgr.release_ports, [port, status_port])
        return mgr._vhsm_spec(workload_id, group_id, port, status_port)

    def start_vhsm(self, driver, workload_id='vhsm-1'):
        mgr = self.new_manager(driver)
        spec = self.vhsm_spec(mgr, workload_id)
        driver.start(spec)
        proc_deadline = time.monotonic() + 30
        while not workloads.port_open('127.0.0.1', spec.port):
            self.assertEqual(driver_base.RUNNING,
                             driver.status(workload_id).state,
                             driver.log_tail(workload_id))
            self.assertLess(time.monotonic(), proc_deadline)
            time.sleep(0.05)
        return spec

    def test_start_writes_private_files_and_stop_removes_them(self):
        driver = self.new_driver()
        spec = self.start_vhsm(driver)
        status = driver.status('vhsm-1')
        self.assertEqual(driver_base.RUNNING, status.state)
        self.assertEqual('pid:%d' % status.pid, status.workload_ref)
        self.assertEqual(spec.port, status.port)
        self.assertEqual(spec.status_port, status.status_port)
        self.assertEqual({'group_id': 'group-a'},
                         {k: v for k, v in status.metadata.items()
                          if k != 'config_file'})
        workdir = driver.workdir('vhsm-1')
        self.assertEqual(0o700, stat.S_IMODE(os.stat(workdir).st_mode))
        for name in ('vhsm.conf', 'group.secret', 'workload.json', 'pid'):
            mode = os.stat(os.path.join(workdir, name)).st_mode
            self.assertEqual(0o600, stat.S_IMODE(mode), name)
        # A new session: the daemon's signals and exit do not reach it.
        self.assertEqual(status.pid, os.getsid(status.pid))

        driver.stop('vhsm-1')
        self.assertFalse(os.path.exists(workdir))
        self.assertEqual(driver_base.MISSING,
                         driver.status('vhsm-1').state)
        self.assertFalse(workloads.port_open('127.0.0.1', spec.port))

    def test_stop_is_idempotent(self):
        driver = self.new_driver()
        self.start_vhsm(driver)
        driver.stop('vhsm-1')
        driver.stop('vhsm-1')
        driver.stop('never-started')
        self.assertEqual([], driver.list())

    def test_new_driver_adopts_running_workloads(self):
        first = self.new_driver()
        spec = self.start_vhsm(first)
        pid = first.status('vhsm-1').pid

        second = self.new_driver()
        found = second.list()
        self.assertEqual(['vhsm-1'], [s.workload_id for s in found])
        self.assertEqual(driver_base.RUNNING, found[0].state)
        self.assertEqual(pid, found[0].pid)
        self.assertEqual(driver_base.VHSM, found[0].kind)
        self.assertEqual(spec.port, found[0].port)
        # The adopting driver can stop a process it did not start.
        second.stop('vhsm-1')
        self.assertEqual([], second.list())
        deadline = time.monotonic() + 10
        while os.path.exists('/proc/%d' % pid) and (
                process._proc_state(pid) not in (None, 'Z')):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)

    def test_recycled_pid_is_not_adopted_or_signalled(self):
        driver = self.new_driver()
        self.start_vhsm(driver)
        driver.stop('vhsm-1')
        spec = self.start_vhsm(driver)
        # The workload dies; an unrelated process gets "its" pid.
        real_pid = driver.status('vhsm-1').pid
        os.kill(real_pid, signal.SIGKILL)
        stranger = subprocess.Popen([sys.executable, '-c',
                                     'import time; time.sleep(60)'])
        self.addCleanup(stranger.wait)
        self.addCleanup(stranger.kill)
        with open(os.path.join(driver.workdir('vhsm-1'), 'pid'), 'w') as f:
            f.write('%d\n' % stranger.pid)

        adopter = self.new_driver()
        status = adopter.status('vhsm-1')
        self.assertEqual(driver_base.EXITED, status.state)
        self.assertIsNone(status.pid)
        self.assertIn(str(stranger.pid), status.reason)
        self.assertRaises(exception.InvalidState, adopter.reload, 'vhsm-1')
        adopter.stop('vhsm-1')
        self.assertIsNone(stranger.poll(), 'the stranger was signalled')
        self.assertFalse(os.path.exists(spec.workdir))

    def test_exited_workload_is_reported(self):
        driver = self.new_driver()
        self.start_vhsm(driver)
        pid = driver.status('vhsm-1').pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while driver.status('vhsm-1').state == driver_base.RUNNING:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        status = driver.status('vhsm-1')
        self.assertEqual(driver_base.EXITED, status.state)
        self.assertIn(str(pid), status.reason)
        self.assertIsNone(status.pid)

    def test_stop_kills_a_workload_that_ignores_sigterm(self):
        driver = StubbornDriver(self.state_path, stop_timeout=0.5)
        mgr = self.new_manager(driver)
        spec = self.vhsm_spec(mgr, 'stubborn')
        driver.start(spec)
        pid = driver.status('stubborn').pid
        time.sleep(0.3)  # let it install its SIGTERM handler
        driver.stop('stubborn')
        self.assertEqual(driver_base.MISSING,
                         driver.status('stubborn').state)
        # Gone (or its pid already reused by another program).
        self.assertNotIn(os.path.join(spec.workdir, 'vhsm.conf'),
                         process._cmdline(pid))

    def test_reload_sends_sighup_without_restart(self):
        driver = self.new_driver()
        spec = self.start_vhsm(driver)
        pid = driver.status('vhsm-1').pid
        driver.reload('vhsm-1')
        deadline = time.monotonic() + 5
        while 'SIGHUP' not in driver.log_tail('vhsm-1'):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        status = driver.status('vhsm-1')
        self.assertEqual(driver_base.RUNNING, status.state)
        self.assertEqual(pid, status.pid)
        self.assertTrue(workloads.port_open('127.0.0.1', spec.port))
        self.assertIn('SIGHUP', driver.log_tail('vhsm-1'))

    def test_start_refuses_a_running_workload(self):
        driver = self.new_driver()
        spec = self.start_vhsm(driver)
        self.assertRaises(exception.Conflict, driver.start, spec)

    def wait_listening(self, driver, spec, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not workloads.port_open('127.0.0.1', spec.port):
            self.assertEqual(driver_base.RUNNING,
                             driver.status(spec.workload_id).state,
                             driver.log_tail(spec.workload_id))
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)

    def test_prepare_writes_the_files_and_runs_nothing(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        spec = self.vhsm_spec(mgr)
        status = driver.prepare(spec)
        self.assertEqual(driver_base.PREPARED, status.state)
        self.assertFalse(status.healthy)
        self.assertIsNone(status.pid)
        self.assertEqual((spec.port, spec.status_port),
                         (status.port, status.status_port))
        workdir = driver.workdir('vhsm-1')
        for name in ('vhsm.conf', 'group.secret', 'workload.json'):
            mode = os.stat(os.path.join(workdir, name)).st_mode
            self.assertEqual(0o600, stat.S_IMODE(mode), name)
        self.assertTrue(os.path.islink(os.path.join(workdir, 'master.key')))
        self.assertFalse(os.path.exists(os.path.join(workdir, 'pid')))
        time.sleep(0.3)
        self.assertFalse(workloads.port_open('127.0.0.1', spec.port))
        self.assertEqual([('vhsm-1', driver_base.PREPARED, spec.port)],
                         [(s.workload_id, s.state, s.port)
                          for s in driver.list()])
        # Re-preparing rewrites it; it stays prepared.
        self.assertEqual(driver_base.PREPARED, driver.prepare(spec).state)

        driver.stop('vhsm-1')
        self.assertFalse(os.path.exists(workdir))
        self.assertEqual(driver_base.MISSING,
                         driver.status('vhsm-1').state)
        self.assertEqual([], driver.list())

    def test_activate_runs_a_prepared_workload(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        spec = self.vhsm_spec(mgr)
        driver.prepare(spec)
        status = driver.activate('vhsm-1')
        self.assertEqual(driver_base.RUNNING, status.state)
        self.assertEqual('pid:%d' % status.pid, status.workload_ref)
        self.assertEqual(status.pid, os.getsid(status.pid))
        self.wait_listening(driver, spec)
        # Running: activated again it is returned as it is, and neither
        # prepared nor started a second time.
        self.assertEqual(status.pid, driver.activate('vhsm-1').pid)
        self.assertRaises(exception.Conflict, driver.prepare, spec)
        self.assertRaises(exception.Conflict, driver.start, spec)
        driver.reload('vhsm-1')
        driver.stop('vhsm-1')
        self.assertEqual(driver_base.MISSING,
                         driver.status('vhsm-1').state)
        self.assertFalse(os.path.exists(spec.workdir))
        self.assertFalse(workloads.port_open('127.0.0.1', spec.port))

    def test_activate_refuses_what_is_not_prepared(self):
        driver = self.new_driver()
        self.assertRaises(exception.InvalidState, driver.activate, 'nothing')
        self.start_vhsm(driver)
        pid = driver.status('vhsm-1').pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while driver.status('vhsm-1').state == driver_base.RUNNING:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        exc = self.assertRaises(exception.InvalidState, driver.activate,
                                'vhsm-1')
        self.assertIn('exited', str(exc))

    def test_deactivate_stops_the_program_and_keeps_the_files(self):
        driver = self.new_driver()
        spec = self.start_vhsm(driver)
        pid = driver.status('vhsm-1').pid
        status = driver.deactivate('vhsm-1')
        self.assertEqual(driver_base.PREPARED, status.state)
        self.assertNotIn(os.path.join(spec.workdir, 'vhsm.conf'),
                         process._cmdline(pid))
        self.assertFalse(workloads.port_open('127.0.0.1', spec.port))
        self.assertTrue(os.path.exists(os.path.join(spec.workdir,
                                                    'group.secret')))
        self.assertEqual(driver_base.PREPARED,
                         driver.deactivate('vhsm-1').state)
        again = driver.activate('vhsm-1')
        self.assertNotEqual(pid, again.pid)
        self.wait_listening(driver, spec)
        self.assertRaises(exception.InvalidState, driver.deactivate,
                          'nothing')

    def test_update_of_a_prepared_workload_rewrites_its_files(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        spec = self.vhsm_spec(mgr)
        driver.prepare(spec)
        other = mgr._vhsm_spec('vhsm-1', 'group-b', spec.port,
                               spec.status_port)
        status = driver.update(other)
        self.assertEqual(driver_base.PREPARED, status.state)
        self.assertEqual('group-b', status.metadata['group_id'])
        with open(os.path.join(spec.workdir, 'group.secret')) as f:
            self.assertEqual(other.files['group.secret'], f.read())
        self.assertFalse(os.path.exists(os.path.join(spec.workdir, 'pid')))

    def test_new_driver_adopts_a_prepared_workload(self):
        first = self.new_driver()
        mgr = self.new_manager(first)
        spec = self.vhsm_spec(mgr)
        first.prepare(spec)

        second = self.new_driver()  # the daemon restarted
        found = second.list()
        self.assertEqual([('vhsm-1', driver_base.PREPARED, spec.port)],
                         [(s.workload_id, s.state, s.port) for s in found])
        self.assertEqual('group-a', found[0].metadata['group_id'])
        status = second.activate('vhsm-1')
        self.assertEqual(driver_base.RUNNING, status.state)
        self.wait_listening(second, spec)
        # And a third one adopts it running.
        third = self.new_driver()
        self.assertEqual(status.pid, third.status('vhsm-1').pid)
        third.stop('vhsm-1')
        self.assertEqual([], third.list())

    def test_replica_on_the_same_port_takes_over_after_kill_9(self):
        driver = self.new_driver()
        primary = self.start_vhsm(driver, 'vhsm-1')
        mgr = self.new_manager(driver)
        replica = mgr._vhsm_spec('vhsm-2', 'group-a', primary.port,
                                 primary.status_port)
        driver.prepare(replica)
        self.assertEqual(driver_base.PREPARED,
                         driver.status('vhsm-2').state)
        pid = driver.status('vhsm-1').pid
        os.kill(pid, signal.SIGKILL)
        began = time.monotonic()
        # The driver does not wait for the port (the manager does): only
        # activate once the primary is gone.
        while driver.status('vhsm-1').state == driver_base.RUNNING:
            self.assertLess(time.monotonic() - began, 5)
            time.sleep(0.01)
        status = driver.activate('vhsm-2')
        self.wait_listening(driver, replica, timeout=10)
        self.assertLess(time.monotonic() - began, 10)
        self.assertNotEqual(pid, status.pid)
        # The status endpoint comes up a moment after the main port.
        deadline = time.monotonic() + 10
        while True:
            try:
                code, _ = probes.http_get('127.0.0.1', replica.status_port,
                                          '/healthz', 5.0)
                break
            except OSError:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
        self.assertEqual(200, code)
        self.assertEqual(status.pid, driver.status('vhsm-2').pid)

    def test_unsafe_ids_are_refused(self):
        driver = self.new_driver()
        for bad in ('../x', '.hidden', 'a/b', '', 'x' * 65):
            self.assertRaises(exception.InvalidInput, driver.status, bad)
            self.assertRaises(exception.InvalidInput, driver.workdir, bad)
            self.assertRaises(exception.InvalidInput, driver.activate, bad)
            self.assertRaises(exception.InvalidInput, driver.deactivate,
                              bad)


class LoadDriverTest(base.ComputeTestCase):

    def test_entry_points(self):
        from cryptocloud.compute.drivers import recording
        self.assertIsInstance(
            driver_base.load_driver('process', self.state_path),
            process.ProcessDriver)
        self.assertIsInstance(
            driver_base.load_driver('recording', self.state_path),
            recording.RecordingDriver)
        self.assertRaises(exception.ConfigurationError,
                          driver_base.load_driver, 'nope', self.state_path)
