"""The docker driver against a real Docker Engine and image registry.

The engine tests need ``tools/docker-env.sh`` (they skip without it
unless ``CRYPTOCLOUD_TEST_REQUIRE_DOCKER=1``) and run a stand-in image
(``tests/docker_fixtures.StubImage``) built and pushed once per test
class.  Each test uses a compute host name of its own, so parallel test
workers sharing the engine never see each other's containers.
"""

import concurrent.futures
import hashlib
import json
import os
import shutil
import socket
import stat
import threading
import time
import uuid

import docker.errors
import fixtures

from cryptocloud.common import exception
from cryptocloud.common import workloads
from cryptocloud.compute import manager as manager_mod
from cryptocloud.compute import probes
from cryptocloud.compute.drivers import base as driver_base
from cryptocloud.compute.drivers import docker as docker_driver
from cryptocloud.conf import CONF
from cryptocloud.tests import docker_fixtures
from cryptocloud.tests.unit.compute import base

CREDENTIALS = [{'id': 'cred-1', 'project_id': 'project-1',
                'secret_sha256': 'a' * 64}]
FAKE_IMAGE = '127.0.0.1:1/cryptocloud/vhsm@sha256:' + 'b' * 64


def _sha256_file(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def _read_text(path: str) -> str:
    with open(path, encoding='utf-8') as f:
        return f.read()


def _override(testcase, group: str, **values) -> None:
    for name, value in values.items():
        CONF.set_override(name, value, group=group)
        testcase.addCleanup(CONF.clear_override, name, group=group)


class _SilentServer:
    """Accepts TCP connections and never answers (a hung registry)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


# Containers cannot share a SQLite keystore file (the manager refuses
# it); the stand-in programs never open this one.
STAND_IN_KEYSTORE = 'mysql+pymysql://stand-in@127.0.0.1/keystore'


class DockerDriverOfflineTest(base.ComputeTestCase):
    """What needs no engine: checks, container settings, a dead engine."""

    def setUp(self):
        super().setUp()
        self.host = 'dtest-%s' % uuid.uuid4().hex[:8]
        # Nothing listens here.
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            self.dead_tcp = 'tcp://127.0.0.1:%d' % s.getsockname()[1]
        self.dead_unix = 'unix://%s/no-such/docker.sock' % self.tmp
        _override(self, 'docker', url=self.dead_unix, api_timeout=5)
        _override(self, 'compute', keystore_connection=STAND_IN_KEYSTORE)

    def new_driver(self, **kwargs):
        return docker_driver.DockerDriver(self.state_path, host=self.host,
                                          **kwargs)

    def spec(self, driver, image=FAKE_IMAGE, workload_id='vhsm-1'):
        # Not new_manager(): its cleanup lists workloads, which a dead
        # engine refuses.
        mgr = manager_mod.ComputeManager(driver)
        self.addCleanup(mgr.close)
        return mgr._vhsm_spec(workload_id, 'group-a', 41000, 41001,
                              image=image)

    def test_loaded_by_name(self):
        driver = driver_base.load_driver('docker', self.state_path)
        self.assertIsInstance(driver, docker_driver.DockerDriver)
        self.assertEqual('node-1', driver.host)

    def test_container_name_is_deterministic_and_sanitized(self):
        self.assertEqual('cryptocloud-node_1.a-b-vhsm-1',
                         docker_driver.container_name('node_1.a b',
                                                      'vhsm-1'))
        self.assertRaises(exception.InvalidInput,
                          docker_driver.container_name, 'h', '../x')

    def test_no_image_says_to_publish_one(self):
        driver = self.new_driver()
        spec = self.spec(driver, image=None)
        exc = self.assertRaises(exception.ConfigurationError,
                                driver.start, spec)
        self.assertIn('cryptocloud-manage images build --push', str(exc))
        self.assertFalse(os.path.exists(driver.workdir('vhsm-1')))

    def test_unpinned_image_is_refused(self):
        driver = self.new_driver()
        spec = self.spec(driver, image='127.0.0.1:5000/cryptocloud/vhsm:1')
        exc = self.assertRaises(exception.InvalidInput, driver.start, spec)
        self.assertIn('pinned by digest', str(exc))

    def _check_dead_engine(self, url):
        _override(self, 'docker', url=url)
        began = time.monotonic()
        driver = self.new_driver()  # logs, does not raise
        spec = self.spec(driver)
        exc = self.assertRaises(exception.WorkloadStartFailed,
                                driver.start, spec)
        self.assertIn('cannot reach the Docker Engine at %s' % url,
                      str(exc))
        self.assertFalse(os.path.exists(driver.workdir('vhsm-1')))
        for call in (driver.list, lambda: driver.status('vhsm-1'),
                     lambda: driver.stop('vhsm-1')):
            exc = self.assertRaises(exception.WorkloadDriverError, call)
            self.assertIn('cannot reach the Docker Engine', str(exc))
            self.assertEqual(503, exc.code)
        self.assertEqual('', driver.log_tail('vhsm-1'))
        self.assertLess(time.monotonic() - began, 5.0)
        return exc

    def test_dead_engine_unix_socket(self):
        exc = self._check_dead_engine(self.dead_unix)
        self.assertIn('No such file or directory', str(exc))

    def test_dead_engine_tcp(self):
        exc = self._check_dead_engine(self.dead_tcp)
        self.assertIn('refused', str(exc))

    def test_host_network_container_config(self):
        _override(self, 'docker', vhsm_cpus=0.5, vhsm_memory_mb=128,
                  workload_user='10001:10002')
        driver = self.new_driver()
        spec = self.spec(driver)
        config_file = os.path.join(driver.workdir('vhsm-1'), 'vhsm.conf')
        kwargs = driver.container_config(spec, config_file)
        self.assertEqual('host', kwargs['network_mode'])
        self.assertNotIn('ports', kwargs)
        self.assertNotIn('environment', kwargs)
        self.assertEqual(['cryptocloud-vhsm', '--config-file', config_file],
                         kwargs['command'])
        self.assertEqual('10001:10002', kwargs['user'])
        self.assertEqual(500000000, kwargs['nano_cpus'])
        self.assertEqual('128m', kwargs['mem_limit'])
        self.assertEqual('128m', kwargs['memswap_limit'])
        self.assertEqual({'Name': 'no'}, kwargs['restart_policy'])
        self.assertTrue(kwargs['read_only'])
        labels = kwargs['labels']
        self.assertEqual(self.host, labels['io.cryptocloud.host'])
        self.assertEqual('41001', labels['io.cryptocloud.status_port'])
        self.assertEqual({'group_id': 'group-a', 'image': FAKE_IMAGE},
                         json.loads(labels['io.cryptocloud.metadata']))

    def test_no_limits_when_zero(self):
        _override(self, 'docker', instance_cpus=0.0, instance_memory_mb=0)
        driver = self.new_driver()
        mgr = manager_mod.ComputeManager(driver)
        self.addCleanup(mgr.close)
        spec = mgr._instance_spec('inst-1', 'svc-1', 'group-a', 41002,
                                  ['127.0.0.1:41000'], CREDENTIALS,
                                  image=FAKE_IMAGE)
        kwargs = driver.container_config(spec, '/x/cryptoservice.conf')
        for key in ('nano_cpus', 'mem_limit', 'memswap_limit'):
            self.assertNotIn(key, kwargs)
        self.assertEqual('', kwargs['labels']['io.cryptocloud.status_port'])

    def test_bridge_publishes_on_the_address_only(self):
        _override(self, 'docker', network_mode='bridge')
        driver = self.new_driver()
        spec = self.spec(driver)
        kwargs = driver.container_config(spec, '/x/vhsm.conf')
        self.assertEqual('bridge', kwargs['network_mode'])
        self.assertEqual({'41000/tcp': ('127.0.0.1', 41000),
                          '41001/tcp': ('127.0.0.1', 41001)},
                         kwargs['ports'])
        # Inside its own network namespace the program listens on all of
        # the container's addresses.
        text = driver._config_text(spec)
        self.assertIn('host = 0.0.0.0', text)
        self.assertIn('status_port = 41001', text)
        self.assertNotIn('host = 0.0.0.0', spec.config_text)


class DockerDriverTest(base.ComputeTestCase):
    """The driver with containers of the test engine."""

    stub: docker_fixtures.StubImage | None = None
    stub_error: str | None = None

    @classmethod
    def tearDownClass(cls):
        if cls.stub is not None:
            cls.stub.cleanup()
            cls.stub = None
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.settings = docker_fixtures.require_docker(self)
        _override(self, 'compute', keystore_connection=STAND_IN_KEYSTORE)
        if os.geteuid() != 0:
            self.skipTest('the docker driver gives the workload files to '
                          'uid 10001, which only root can do')
        cls = type(self)
        if cls.stub is None and cls.stub_error is None:
            stub = docker_fixtures.StubImage(self.settings)
            try:
                stub.build_and_push()
            except Exception as exc:
                cls.stub_error = '%s: %s' % (type(exc).__name__, exc)
                stub.cleanup()
            else:
                cls.stub = stub
        if cls.stub_error:
            self.fail('the stand-in image could not be built: %s'
                      % cls.stub_error)
        self.image = cls.stub.reference
        self.host = 'dtest-%s' % uuid.uuid4().hex[:8]
        _override(self, 'docker', url=self.settings.url, api_timeout=30,
                  pull_timeout=60, stop_timeout=5, vhsm_memory_mb=256,
                  instance_memory_mb=256, vhsm_cpus=1.0)
        _override(self, 'registry', address=self.settings.registry,
                  username=self.settings.username,
                  password=self.settings.password)
        self.engine = docker_fixtures.client(self.settings)
        self.addCleanup(self.engine.close)
        self.hosts = [self.host]
        self.addCleanup(self._remove_containers)

    def _remove_containers(self):
        for host in self.hosts:
            docker_fixtures.remove_host_containers(self.engine, host)

    # -- helpers ----------------------------------------------------------

    def new_driver(self, host=None, state_path=None):
        """A docker driver (like a new daemon) on this test's host."""
        host = host or self.host
        if host not in self.hosts:
            self.hosts.append(host)
        return docker_driver.DockerDriver(state_path or self.state_path,
                                          host=host)

    def vhsm_spec(self, mgr, workload_id='vhsm-1', group_id='group-a',
                  image=None):
        port, status_port = mgr.allocate_ports(2)
        self.addCleanup(mgr.release_ports, [port, status_port])
        return mgr._vhsm_spec(workload_id, group_id, port, status_port,
                              image=image or self.image)

    def instance_spec(self, mgr, workload_id='inst-1', credentials=None,
                      port=None):
        if port is None:
            port = mgr.allocate_ports(1)[0]
            self.addCleanup(mgr.release_ports, [port])
        return mgr._instance_spec(workload_id, 'svc-1', 'group-a', port,
                                  ['127.0.0.1:1'],
                                  credentials or CREDENTIALS,
                                  image=self.image)

    def wait_listening(self, driver, spec, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not workloads.port_open(spec.host, spec.port):
            status = driver.status(spec.workload_id)
            self.assertEqual(driver_base.RUNNING, status.state,
                             '%s\n%s' % (status.reason,
                                         driver.log_tail(spec.workload_id)))
            self.assertLess(time.monotonic(), deadline,
                            driver.log_tail(spec.workload_id))
            time.sleep(0.05)

    def start(self, driver, spec):
        driver.start(spec)
        self.wait_listening(driver, spec)
        return driver.status(spec.workload_id)

    @staticmethod
    def stub_state(spec) -> dict:
        code, body = probes.http_get(spec.host, spec.port, '/state', 5.0)
        assert code == 200, code
        return json.loads(body)

    def wait_for(self, predicate, timeout=20.0, what='condition'):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail('timed out waiting for %s' % what)
            time.sleep(0.1)

    def wait_state(self, driver, workload_id, state):
        def reached():
            status = driver.status(workload_id)
            return status if status.state == state else None
        return self.wait_for(reached, what='%s %s' % (workload_id, state))

    def wait_reloads(self, spec, count):
        def reached():
            state = self.stub_state(spec)
            return state if state['reloads'] == count else None
        return self.wait_for(reached, what='%d reloads' % count)

    def containers(self, host=None) -> list:
        return self.engine.containers.list(
            all=True, filters={'label': 'io.cryptocloud.host=%s'
                               % (host or self.host)})

    # -- start ------------------------------------------------------------

    def test_start_runs_the_image_as_its_user_with_private_files(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        spec = self.vhsm_spec(mgr)
        status = self.start(driver, spec)
        name = 'cryptocloud-%s-vhsm-1' % self.host
        container = self.engine.containers.get(name)
        attrs = container.attrs

        self.assertEqual(driver_base.RUNNING, status.state)
        self.assertEqual('docker:%s' % container.id[:12],
                         status.workload_ref)
        self.assertEqual(attrs['State']['Pid'], status.pid)
        self.assertIsNotNone(probes.cpu_seconds(status.pid))
        self.assertEqual((spec.host, spec.port, spec.status_port),
                         (status.host, status.port, status.status_port))
        self.assertEqual({'group_id': 'group-a', 'image': self.image,
                          'config_file': os.path.join(
                              spec.workdir, 'vhsm.conf')},
                         status.metadata)

        # Labels map the container to its workload.
        labels = attrs['Config']['Labels']
        self.assertEqual('vhsm-1', labels['io.cryptocloud.workload_id'])
        self.assertEqual('vhsm', labels['io.cryptocloud.kind'])
        self.assertEqual(self.host, labels['io.cryptocloud.host'])
        self.assertEqual(str(spec.port), labels['io.cryptocloud.port'])
        self.assertEqual(str(spec.status_port),
                         labels['io.cryptocloud.status_port'])
        self.assertEqual({'group_id': 'group-a', 'image': self.image},
                         json.loads(labels['io.cryptocloud.metadata']))

        # Settings: user, limits, network, restart, hardening.
        host_config = attrs['HostConfig']
        self.assertEqual('10001:10001', attrs['Config']['User'])
        self.assertEqual(self.image, attrs['Config']['Image'])
        self.assertEqual(['cryptocloud-vhsm', '--config-file',
                          os.path.join(spec.workdir, 'vhsm.conf')],
                         attrs['Config']['Cmd'])
        self.assertEqual('host', host_config['NetworkMode'])
        self.assertEqual(10 ** 9, host_config['NanoCpus'])
        self.assertEqual(256 * 2 ** 20, host_config['Memory'])
        self.assertEqual('no', host_config['RestartPolicy']['Name'])
        self.assertTrue(host_config['ReadonlyRootfs'])
        self.assertEqual(['ALL'], host_config['CapDrop'])
        mounts = attrs['Mounts']
        self.assertEqual(1, len(mounts))
        self.assertEqual((spec.workdir, spec.workdir, False),
                         (mounts[0]['Source'], mounts[0]['Destination'],
                          mounts[0]['RW']))

        # The program runs as the image's user and read every file.
        state = self.stub_state(spec)
        self.assertEqual((10001, 10001), (state['uid'], state['gid']))
        self.assertEqual('cryptocloud-vhsm', state['program'])
        workdir = spec.workdir
        self.assertEqual({
            'config': _sha256_file(os.path.join(workdir, 'vhsm.conf')),
            'master_key_file': _sha256_file(self.master_key_file),
            'auth_secret_file': _sha256_file(
                os.path.join(workdir, 'group.secret')),
        }, state['files'])

        # Files: owned by the workload user, private, the key read-only.
        st = os.stat(workdir)
        self.assertEqual((10001, 10001, 0o700),
                         (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)))
        for name, mode in (('vhsm.conf', 0o600), ('group.secret', 0o600),
                           ('master.key', 0o400)):
            st = os.lstat(os.path.join(workdir, name))
            self.assertTrue(stat.S_ISREG(st.st_mode), name)
            self.assertEqual((10001, 10001, mode),
                             (st.st_uid, st.st_gid,
                              stat.S_IMODE(st.st_mode)), name)
        self.assertEqual(0, os.stat(os.path.join(workdir,
                                                 'workload.json')).st_uid)

        # Mounted read-only, root file system read-only, /tmp writable.
        for path, expect_ok in ((os.path.join(workdir, 'x'), False),
                                ('/etc/x', False), ('/tmp/x', True)):
            code, output = container.exec_run(
                ['python3', '-c', 'open(%r, "w").write("x")' % path])
            if expect_ok:
                self.assertEqual(0, code, output)
            else:
                self.assertNotEqual(0, code, path)
                self.assertIn(b'Read-only file system', output)

        # No secret in what `docker inspect` shows.
        shown = json.dumps(attrs)
        secrets = [_read_text(self.master_key_file).strip(),
                   _read_text(os.path.join(workdir, 'group.secret')).strip(),
                   self.database.url]
        for secret in secrets:
            self.assertNotIn(secret, shown)
        # Nor in the environment: the driver adds nothing to what the
        # image itself sets (PATH, LANG).
        env = attrs['Config']['Env'] or []
        inherited = set(container.image.attrs['Config']['Env'] or [])
        self.assertEqual([], [e for e in env if e not in inherited])

    def test_start_refuses_a_duplicate(self):
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        self.start(driver, spec)
        self.assertRaises(exception.Conflict, driver.start, spec)
        self.assertEqual(1, len(self.containers()))

    def test_manager_runs_workloads_in_containers(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        vhsm = mgr.start_vhsm(None, 'vhsm-m', 'group-a', image=self.image)
        self.assertEqual('running', vhsm['state'])
        self.assertTrue(vhsm['healthy'])
        self.assertTrue(vhsm['workload_ref'].startswith('docker:'))
        inst = mgr.start_instance(
            None, 'inst-m', 'svc-1', 'group-a',
            ['127.0.0.1:%d' % vhsm['port']], CREDENTIALS, image=self.image)
        self.assertEqual('running', inst['state'])
        listed = {w['workload_id']: w for w in mgr.list_workloads(None)}
        self.assertEqual({'vhsm-m', 'inst-m'}, set(listed))
        self.assertTrue(all(w['healthy'] for w in listed.values()))
        # A repeated start gets the running workload.
        again = mgr.start_vhsm(None, 'vhsm-m', 'group-a', image=self.image)
        self.assertEqual(vhsm['workload_ref'], again['workload_ref'])

        creds = CREDENTIALS + [{'id': 'cred-2', 'project_id': 'p',
                                'secret_sha256': 'c' * 64}]
        updated = mgr.update_instance(None, 'inst-m',
                                      ['127.0.0.1:%d' % vhsm['port']],
                                      creds)
        self.assertEqual(inst['workload_ref'], updated['workload_ref'])
        mgr.stop_workload(None, 'vhsm-m')
        mgr.stop_workload(None, 'inst-m')
        self.assertEqual([], mgr.list_workloads(None))
        self.assertEqual([], self.containers())

        exc = self.assertRaises(exception.ConfigurationError,
                                mgr.start_vhsm, None, 'vhsm-n', 'group-a')
        self.assertIn('images build --push', str(exc))
        self.assertEqual([], driver.list())

    # -- status, list, hosts, adoption ------------------------------------

    def test_hosts_sharing_an_engine_see_only_their_own(self):
        driver_a = self.new_driver()
        other = 'dtest-%s' % uuid.uuid4().hex[:8]
        state_b = os.path.join(self.tmp, 'state-b')
        driver_b = self.new_driver(host=other, state_path=state_b)
        mgr_a = self.new_manager(driver_a)
        mgr_b = self.new_manager(driver_b)
        spec_a = self.vhsm_spec(mgr_a)
        self.start(driver_a, spec_a)
        spec_b = self.vhsm_spec(mgr_b)  # same workload id
        self.start(driver_b, spec_b)

        self.assertEqual(
            [('vhsm-1', spec_a.port)],
            [(s.workload_id, s.port) for s in driver_a.list()])
        self.assertEqual(
            [('vhsm-1', spec_b.port)],
            [(s.workload_id, s.port) for s in driver_b.list()])
        self.assertNotEqual(driver_a.status('vhsm-1').workload_ref,
                            driver_b.status('vhsm-1').workload_ref)
        # Neither's orphan sweep nor stop touches the other's container,
        # even when the other's files are gone.
        shutil.rmtree(driver_b.workdir('vhsm-1'))
        self.assertEqual([], driver_a.remove_orphans())
        driver_a.stop('vhsm-1')
        self.assertEqual([], driver_a.list())
        self.assertEqual(driver_base.RUNNING,
                         driver_b.status('vhsm-1').state)
        self.assertEqual(1, len(self.containers(other)))
        self.assertEqual(['vhsm-1'], driver_b.remove_orphans())
        self.assertEqual([], self.containers(other))

    def test_new_driver_adopts_running_containers(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        vhsm = self.vhsm_spec(mgr)
        inst = self.instance_spec(mgr)
        before = {s.workload_id: s for s in (self.start(driver, vhsm),
                                             self.start(driver, inst))}

        restarted = self.new_driver()  # the daemon restarted
        listed = {s.workload_id: s for s in restarted.list()}
        self.assertEqual(set(before), set(listed))
        for workload_id, old in before.items():
            new = restarted.status(workload_id)
            self.assertEqual(driver_base.RUNNING, new.state)
            self.assertEqual(old.workload_ref, new.workload_ref)
            self.assertEqual(old.pid, new.pid)
            self.assertEqual(old.metadata, new.metadata)
            self.assertEqual(old.kind, listed[workload_id].kind)
        self.assertEqual('svc-1',
                         restarted.status('inst-1').metadata['service_id'])
        # No duplicate: the adopted workload runs already.
        self.assertRaises(exception.Conflict, restarted.start, vhsm)
        self.assertEqual(2, len(self.containers()))
        restarted.reload('vhsm-1')
        self.wait_reloads(vhsm, 1)
        restarted.stop('vhsm-1')
        restarted.stop('inst-1')
        self.assertEqual([], self.containers())

    def test_killed_container_is_exited_with_its_reason(self):
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        self.start(driver, spec)
        container = self.engine.containers.get(
            driver.container_name('vhsm-1'))
        container.kill()
        status = self.wait_state(driver, 'vhsm-1', driver_base.EXITED)
        self.assertIn('exited with status 137', status.reason)
        self.assertNotIn('OOMKilled', status.reason)
        self.assertIsNone(status.pid)
        self.assertEqual([driver_base.EXITED],
                         [s.state for s in driver.list()])
        self.assertIn('stub: vhsm listening', driver.log_tail('vhsm-1'))
        self.assertRaises(exception.InvalidState, driver.reload, 'vhsm-1')
        # A start replaces the remains.
        status = self.start(driver, spec)
        self.assertEqual(driver_base.RUNNING, status.state)
        self.assertEqual(1, len(self.containers()))

    def test_container_removed_behind_its_back_is_exited(self):
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        self.start(driver, spec)
        self.engine.containers.get(
            driver.container_name('vhsm-1')).remove(force=True)
        status = driver.status('vhsm-1')
        self.assertEqual(driver_base.EXITED, status.state)
        self.assertIn('is gone', status.reason)
        self.assertEqual((spec.port, spec.status_port),
                         (status.port, status.status_port))
        self.assertEqual(['vhsm-1'],
                         [s.workload_id for s in driver.list()])
        driver.stop('vhsm-1')
        self.assertEqual(driver_base.MISSING,
                         driver.status('vhsm-1').state)
        self.assertEqual([], driver.list())

    def test_unhealthy_container_says_so(self):
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        self.start(driver, spec)
        code, _ = probes.http_get(spec.host, spec.status_port, '/sick', 5)
        self.assertEqual(200, code)
        status = self.wait_for(
            lambda: (driver.status('vhsm-1').reason or '').find(
                'unhealthy') >= 0 and driver.status('vhsm-1'),
            what='the healthcheck')
        self.assertEqual(driver_base.RUNNING, status.state)
        self.assertIn('unhealthy', status.reason)

    def test_out_of_memory_is_reported(self):
        _override(self, 'docker', vhsm_memory_mb=64)
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        self.start(driver, spec)
        try:
            probes.http_get(spec.host, spec.port, '/oom', 10)
        except OSError:
            pass  # it died answering
        status = self.wait_state(driver, 'vhsm-1', driver_base.EXITED)
        # The engine may record the exit (137) a moment before it hears
        # of the OOM kill; a later status (the next heartbeat) says so.
        deadline = time.monotonic() + 10
        while ('OOMKilled' not in status.reason
               and time.monotonic() < deadline):
            time.sleep(0.2)
            status = driver.status('vhsm-1')
        self.assertIn('OOMKilled', status.reason)
        self.assertIn('limit 64 MiB', status.reason)

    def test_stats(self):
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        self.start(driver, spec)
        figures = driver.stats('vhsm-1')
        self.assertEqual(256 * 2 ** 20, figures['memory_limit_bytes'])
        self.assertGreater(figures['memory_bytes'], 0)
        self.assertGreater(figures['cpu_seconds'], 0)
        self.assertGreaterEqual(figures['cpu'], 0.0)
        self.assertIsNone(driver.stats('nothing'))

    # -- stop, orphans ----------------------------------------------------

    def test_stop_removes_container_and_files(self):
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        self.start(driver, spec)
        driver.stop('vhsm-1')
        self.assertEqual([], self.containers())
        self.assertFalse(os.path.exists(spec.workdir))
        self.assertEqual(driver_base.MISSING,
                         driver.status('vhsm-1').state)
        self.assertFalse(workloads.port_open(spec.host, spec.port))
        driver.stop('vhsm-1')  # gone is fine
        driver.stop('never-was')

    def test_orphans_are_removed_when_the_driver_starts(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        kept = self.vhsm_spec(mgr, 'vhsm-kept')
        lost = self.vhsm_spec(mgr, 'vhsm-lost')
        self.start(driver, kept)
        self.start(driver, lost)
        # As if a crash had left the container without its files.
        shutil.rmtree(lost.workdir)
        logs = self.useFixture(fixtures.FakeLogger())
        restarted = self.new_driver()
        self.assertIn('Removing orphan container', logs.output)
        self.assertIn('vhsm-lost', logs.output)
        self.assertEqual(['vhsm-kept'],
                         [s.workload_id for s in restarted.list()])
        self.assertEqual([driver.container_name('vhsm-kept')],
                         [c.name for c in self.containers()])
        self.assertEqual([], restarted.remove_orphans())

    # -- prepared workloads (cold standbys) --------------------------------

    def test_prepare_creates_a_container_that_does_not_run(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        spec = self.vhsm_spec(mgr)
        status = driver.prepare(spec)
        self.assertEqual(driver_base.PREPARED, status.state)
        self.assertIsNone(status.pid)
        [container] = self.containers()
        self.assertEqual('created', container.status)
        self.assertEqual('docker:%s' % container.id[:12],
                         status.workload_ref)
        attrs = container.attrs
        labels = attrs['Config']['Labels']
        self.assertEqual('1', labels['io.cryptocloud.prepared'])
        self.assertEqual(str(spec.port), labels['io.cryptocloud.port'])
        # Every setting of a started container.
        host_config = attrs['HostConfig']
        self.assertEqual('10001:10001', attrs['Config']['User'])
        self.assertEqual(self.image, attrs['Config']['Image'])
        self.assertEqual('host', host_config['NetworkMode'])
        self.assertEqual(256 * 2 ** 20, host_config['Memory'])
        self.assertTrue(host_config['ReadonlyRootfs'])
        self.assertEqual(['ALL'], host_config['CapDrop'])
        self.assertEqual([(spec.workdir, spec.workdir, False)],
                         [(m['Source'], m['Destination'], m['RW'])
                          for m in attrs['Mounts']])
        st = os.stat(os.path.join(spec.workdir, 'master.key'))
        self.assertEqual((10001, 0o400),
                         (st.st_uid, stat.S_IMODE(st.st_mode)))
        time.sleep(0.3)
        self.assertFalse(workloads.port_open(spec.host, spec.port))
        self.assertEqual([('vhsm-1', driver_base.PREPARED)],
                         [(s.workload_id, s.state) for s in driver.list()])

        status = driver.activate('vhsm-1')
        self.assertEqual(driver_base.RUNNING, status.state)
        self.wait_listening(driver, spec)
        self.assertEqual('cryptocloud-vhsm', self.stub_state(spec)['program'])
        # The same container, now running; activated again: as it is.
        self.assertEqual('docker:%s' % container.id[:12],
                         driver.activate('vhsm-1').workload_ref)
        self.assertRaises(exception.Conflict, driver.prepare, spec)
        driver.stop('vhsm-1')
        self.assertEqual([], self.containers())
        self.assertFalse(os.path.exists(spec.workdir))
        self.assertEqual(driver_base.MISSING,
                         driver.status('vhsm-1').state)

    def test_prepared_again_and_updated_while_prepared(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        spec = self.instance_spec(mgr)
        first = driver.prepare(spec)
        again = driver.prepare(spec)
        self.assertEqual(driver_base.PREPARED, again.state)
        self.assertNotEqual(first.workload_ref, again.workload_ref)
        self.assertEqual(1, len(self.containers()))
        creds = CREDENTIALS + [{'id': 'cred-2', 'project_id': 'p',
                                'secret_sha256': 'd' * 64}]
        status = driver.update(self.instance_spec(mgr, credentials=creds,
                                                  port=spec.port))
        self.assertEqual(driver_base.PREPARED, status.state)
        creds_file = os.path.join(spec.workdir, 'credentials.json')
        self.assertIn('cred-2', _read_text(creds_file))
        driver.activate('inst-1')
        self.wait_listening(driver, spec)
        self.assertEqual(_sha256_file(creds_file),
                         self.stub_state(spec)['files']['credentials_file'])

    def test_new_driver_adopts_a_prepared_container(self):
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        prepared = driver.prepare(spec)
        restarted = self.new_driver()  # no orphan: its files are there
        [found] = restarted.list()
        self.assertEqual(('vhsm-1', driver_base.PREPARED,
                          prepared.workload_ref),
                         (found.workload_id, found.state, found.workload_ref))
        self.assertEqual('group-a', found.metadata['group_id'])
        restarted.activate('vhsm-1')
        self.wait_listening(restarted, spec)
        restarted.stop('vhsm-1')
        self.assertEqual([], self.containers())

    def test_deactivate_makes_a_workload_prepared_again(self):
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        started = self.start(driver, spec)
        status = driver.deactivate('vhsm-1')
        self.assertEqual(driver_base.PREPARED, status.state)
        self.assertNotEqual(started.workload_ref, status.workload_ref)
        [container] = self.containers()
        self.assertEqual('created', container.status)
        self.assertFalse(workloads.port_open(spec.host, spec.port))
        self.assertEqual(status.workload_ref,
                         driver.deactivate('vhsm-1').workload_ref)
        driver.activate('vhsm-1')
        self.wait_listening(driver, spec)
        self.assertRaises(exception.InvalidState, driver.deactivate,
                          'nothing')

    def test_activate_refuses_what_is_not_prepared(self):
        driver = self.new_driver()
        spec = self.vhsm_spec(self.new_manager(driver))
        self.assertRaises(exception.InvalidState, driver.activate, 'vhsm-1')
        self.start(driver, spec)
        self.engine.containers.get(driver.container_name('vhsm-1')).kill()
        self.wait_state(driver, 'vhsm-1', driver_base.EXITED)
        self.assertRaises(exception.InvalidState, driver.activate, 'vhsm-1')
        # A container created but never started, not prepared: exited.
        driver.stop('vhsm-1')
        config_file = driver._write_files(spec)
        self.engine.containers.create(
            **driver.container_config(spec, config_file))
        status = driver.status('vhsm-1')
        self.assertEqual(driver_base.EXITED, status.state)
        self.assertIn('never started', status.reason)
        self.assertRaises(exception.InvalidState, driver.activate, 'vhsm-1')

    def test_failed_prepare_leaves_nothing(self):
        driver = self.new_driver()
        image = '%s@sha256:%s' % (self.stub.repository, 'e' * 64)
        spec = self.vhsm_spec(self.new_manager(driver), image=image)
        exc = self.assertRaises(exception.WorkloadPrepareFailed,
                                driver.prepare, spec)
        self.assertIn('could not be prepared', str(exc))
        self.assertIn('could not pull image %s' % image, str(exc))
        self.assertEqual([], self.containers())
        self.assertFalse(os.path.exists(spec.workdir))

    def test_manager_takes_over_the_port_of_a_killed_container(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        primary = mgr.start_instance(None, 'inst-1', 'svc-1', 'group-a',
                                     ['127.0.0.1:1'], CREDENTIALS,
                                     image=self.image)
        replica = mgr.prepare_instance(None, 'inst-2', 'svc-1', 'group-a',
                                       ['127.0.0.1:1'], CREDENTIALS,
                                       image=self.image,
                                       port=primary['port'])
        self.assertEqual(('prepared', primary['port']),
                         (replica['state'], replica['port']))
        self.engine.containers.get(driver.container_name('inst-1')).kill()
        began = time.monotonic()
        status = mgr.activate_workload(None, 'inst-2')
        self.assertLess(time.monotonic() - began, 10)
        self.assertEqual(('running', True, primary['port']),
                         (status['state'], status['healthy'],
                          status['port']))
        spec = self.instance_spec(mgr, 'inst-2', port=primary['port'])
        self.assertEqual(_sha256_file(os.path.join(spec.workdir,
                                                   'cryptoservice.conf')),
                         self.stub_state(spec)['files']['config'])

    # -- update -----------------------------------------------------------

    def test_update_rewrites_files_and_sends_sighup(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        spec = self.instance_spec(mgr)
        self.start(driver, spec)
        creds_file = os.path.join(spec.workdir, 'credentials.json')
        self.assertEqual(_sha256_file(creds_file),
                         self.stub_state(spec)['files']['credentials_file'])

        creds = CREDENTIALS + [{'id': 'cred-2', 'project_id': 'p',
                                'secret_sha256': 'd' * 64}]
        new_spec = self.instance_spec(mgr, credentials=creds,
                                      port=spec.port)
        status = driver.update(new_spec)
        self.assertEqual(driver_base.RUNNING, status.state)
        self.assertIn('cred-2', _read_text(creds_file))
        st = os.stat(creds_file)
        self.assertEqual((10001, 0o600),
                         (st.st_uid, stat.S_IMODE(st.st_mode)))
        state = self.wait_reloads(spec, 1)
        self.assertEqual(_sha256_file(creds_file),
                         state['files']['credentials_file'])
        driver.reload('inst-1')
        self.wait_reloads(spec, 2)
        driver.stop('inst-1')
        self.assertRaises(exception.InvalidState, driver.update, new_spec)

    # -- images -----------------------------------------------------------

    def test_missing_digest_fails_quickly(self):
        driver = self.new_driver()
        image = '%s@sha256:%s' % (self.stub.repository, 'e' * 64)
        spec = self.vhsm_spec(self.new_manager(driver), image=image)
        began = time.monotonic()
        exc = self.assertRaises(exception.WorkloadStartFailed,
                                driver.start, spec)
        self.assertLess(time.monotonic() - began, 15)
        self.assertIn('could not pull image %s' % image, str(exc))
        self.assertIn('manifest unknown', str(exc).lower())
        self.assertEqual([], self.containers())
        self.assertFalse(os.path.exists(spec.workdir))
        self.assertEqual(driver_base.MISSING,
                         driver.status('vhsm-1').state)

    def test_pull_with_registry_auth(self):
        self.stub.forget_locally()
        self.assertRaises(docker.errors.ImageNotFound,
                          self.engine.images.get, self.image)
        _override(self, 'registry', password='wrong')
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        spec = self.vhsm_spec(mgr)
        exc = self.assertRaises(exception.WorkloadStartFailed,
                                driver.start, spec)
        self.assertIn('could not pull image', str(exc))
        self.assertIn('unauthorized', str(exc).lower())
        self.assertNotIn('wrong', str(exc))
        self.assertFalse(os.path.exists(spec.workdir))

        CONF.set_override('password', self.settings.password,
                          group='registry')
        driver = self.new_driver()
        status = self.start(driver, spec)
        self.assertEqual(driver_base.RUNNING, status.state)
        self.engine.images.get(self.image)

    def test_hung_registry_is_bounded_by_pull_timeout(self):
        silent = _SilentServer()
        self.addCleanup(silent.close)
        _override(self, 'docker', pull_timeout=2)
        driver = self.new_driver()
        image = '127.0.0.1:%d/cryptocloud/vhsm@sha256:%s' % (silent.port,
                                                             'f' * 64)
        spec = self.vhsm_spec(self.new_manager(driver), image=image)
        began = time.monotonic()
        exc = self.assertRaises(exception.WorkloadStartFailed,
                                driver.start, spec)
        self.assertLess(time.monotonic() - began, 10)
        self.assertIn('took longer than 2 s', str(exc))
        self.assertFalse(os.path.exists(spec.workdir))

    # -- threads ----------------------------------------------------------

    def test_parallel_starts_while_listing(self):
        driver = self.new_driver()
        mgr = self.new_manager(driver)
        specs = [self.vhsm_spec(mgr, 'vhsm-%d' % i) for i in range(3)]
        done = threading.Event()
        seen = []

        def lister():
            while not done.is_set():
                seen.append(len(driver.list()))
                time.sleep(0.02)

        thread = threading.Thread(target=lister)
        thread.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                list(pool.map(lambda s: self.start(driver, s), specs))
        finally:
            done.set()
            thread.join()
        self.assertEqual(['vhsm-0', 'vhsm-1', 'vhsm-2'],
                         [s.workload_id for s in driver.list()
                          if s.state == driver_base.RUNNING])
        self.assertEqual(3, len(self.containers()))
        self.assertTrue(seen)
