"""A real control plane for functional tests.

``ControlPlane`` runs ``cryptocloud-api``, ``cryptocloud-conductor`` and
several ``cryptocloud-compute`` daemons (distinct host names, one machine)
as processes over RabbitMQ, with the control database and the keystore on
the backend the test chose.  Each test gets its own RabbitMQ virtual host
and databases, so parallel workers never see each other's messages.
"""

import configparser
import io
import os
import signal
import subprocess
import sys
import time
import uuid

import bcrypt
import fixtures
import requests
from testtools import content

from cryptocloud.common import secretfile
from cryptocloud.common import workloads
from cryptocloud.db import migration
from cryptocloud.tests import ports

HOST = '127.0.0.1'
# The workload ports of one compute daemon.
PORTS_PER_NODE = 200
ADMIN = ('admin', 'admin-secret-pw')
TENANT = ('alice', 'alice-secret-pw')
TENANT_PROJECT = 'project-a'


def start_control_plane(test, **kwargs) -> 'ControlPlane':
    """The real control plane for ``test`` over RabbitMQ and MariaDB.

    Makes the test's own control and keystore databases and RabbitMQ
    virtual host, starts a :class:`ControlPlane` with ``kwargs``, makes a
    failing test carry its tasks and warnings, and waits until every
    compute node is UP.
    """
    from cryptocloud.tests import db as test_db

    control_db = test.useFixture(test_db.Database('mysql'))
    keystore_db = test.useFixture(test_db.Database('mysql'))
    vhost = test.useFixture(RabbitVhost())
    return start_control_plane_on(test, control_db.url, keystore_db.url,
                                  vhost.url, **kwargs)


def start_control_plane_on(test, database_url: str, keystore_url: str,
                           transport_url: str, **kwargs) -> 'ControlPlane':
    """Like :func:`start_control_plane`, on databases and a broker the
    test made itself (a private server it may restart, for instance).
    """
    cp = test.useFixture(ControlPlane(database_url, keystore_url,
                                      transport_url, **kwargs))
    test.addOnException(cp.attach_diagnostics(test))
    cp.wait_for('/v1/nodes', lambda b: len(
        [n for n in b['nodes'] if n['state'] == 'UP'])
        == len(cp.compute_specs))
    return cp


class RabbitVhost(fixtures.Fixture):
    """A RabbitMQ virtual host made for one test and deleted after it."""

    def _setUp(self):
        if not workloads.port_open(HOST, 5672):
            raise RuntimeError('RabbitMQ does not listen on 127.0.0.1:5672')
        self.name = 'cctest-%s' % uuid.uuid4().hex[:12]
        self._ctl('add_vhost', self.name)
        self.addCleanup(self._ctl, 'delete_vhost', self.name)
        self._ctl('set_permissions', '-p', self.name, 'guest', '.*', '.*',
                  '.*')
        self.url = 'rabbit://guest:guest@%s:5672/%s' % (HOST, self.name)

    @staticmethod
    def _ctl(*args):
        subprocess.run(['rabbitmqctl', '-q', *args], check=True,
                       capture_output=True, timeout=60)


def tenant_sm2_key(endpoint: dict, token: str) -> tuple[str, str, str]:
    """An SM2 key a tenant makes through its service ``endpoint``.

    Returns the service's base URL, the key's id and its public key PEM.
    """
    url = 'http://%s:%d' % (endpoint['host'], endpoint['port'])
    hdrs = {'Authorization': 'Bearer ' + token}
    key = requests.post(url + '/v1/keys', json={'algorithm': 'SM2'},
                        headers=hdrs, timeout=30)
    if key.status_code != 201:
        raise AssertionError('POST /v1/keys -> %d %s'
                             % (key.status_code, key.text[:800]))
    key_id = key.json()['key_id']
    pem = requests.get(url + '/v1/keys/%s/public-key' % key_id,
                       headers=hdrs, timeout=30)
    if pem.status_code != 200:
        raise AssertionError('GET public-key -> %d %s'
                             % (pem.status_code, pem.text[:800]))
    return url, key_id, pem.json()['public_key_pem']


def kill_processes_under(path: str) -> list[int]:
    """SIGKILL every process whose command line names ``path``."""
    killed = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmdline = f.read().replace(b'\0', b' ').decode(
                    'utf-8', 'replace')
        except OSError:
            continue
        if path in cmdline:
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
            except ProcessLookupError:
                pass
    return killed


def _htpasswd_line(user: str, password: str, project: str,
                   roles: str) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4))
    return '%s:%s:%s:%s\n' % (user, hashed.decode(), project, roles)


def _conf_text(groups: dict) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    for group, opts in groups.items():
        parser[group] = {k: str(v) for k, v in opts.items()
                         if v is not None}
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


class AdminClient:
    """Admin API calls and failure diagnostics of a running control plane.

    Needs ``url``, ``session``, ``admin_auth`` and ``dir`` (where the
    logs are).
    """

    admin_auth = ADMIN

    def attach_diagnostics(self, test):
        """An exception handler adding tasks and warnings to ``test``."""

        def attach(exc_info):
            for name in ('tasks', 'instances', 'vhsms'):
                try:
                    body = self.ok('GET', '/v1/%s' % name)
                except Exception as exc:  # noqa: BLE001 - best effort
                    body = 'no %s list: %s' % (name, exc)
                test.addDetail(name, content.text_content(str(body)))
            for path in self.log_files():
                with open(path, errors='replace') as f:
                    lines = [line for line in f
                             if ' WARNING ' in line or ' ERROR ' in line]
                if lines:
                    test.addDetail(os.path.relpath(path, self.dir),
                                   content.text_content(
                                       ''.join(lines[-60:])))
        return attach

    def log_files(self) -> list[str]:
        found = []
        for root, _, names in os.walk(self.dir):
            found += [os.path.join(root, n) for n in names
                      if n.endswith('.log')]
        return found

    # -- admin API calls --------------------------------------------------

    def call(self, method: str, path: str, body=None, auth=None,
             **kwargs):
        return self.session.request(method, self.url + path, json=body,
                                    auth=auth or self.admin_auth,
                                    timeout=60, **kwargs)

    def ok(self, method: str, path: str, body=None, auth=None,
           expect=(200, 201, 202)) -> dict:
        resp = self.call(method, path, body, auth)
        if resp.status_code not in expect:
            raise AssertionError('%s %s -> %d %s' % (
                method, path, resp.status_code, resp.text[:800]))
        return resp.json() if resp.content else {}

    def wait_for(self, path: str, predicate, timeout: float = 90.0,
                 auth=None) -> dict:
        """Poll ``path`` until ``predicate(body)``; fail with the last body."""
        deadline = time.monotonic() + timeout
        body = None
        while time.monotonic() < deadline:
            body = self.ok('GET', path, auth=auth)
            if predicate(body):
                return body
            time.sleep(0.3)
        raise AssertionError('timed out waiting on %s; last: %s'
                             % (path, body))

    def wait_task(self, task_id: str, timeout: float = 120.0) -> dict:
        task = self.wait_for('/v1/tasks/%s' % task_id,
                             lambda t: t['state'] in ('SUCCEEDED', 'FAILED'),
                             timeout)
        return task

    def wait_succeeded(self, task_id: str, timeout: float = 120.0) -> dict:
        """The task once SUCCEEDED; AssertionError (with it) if it fails."""
        task = self.wait_task(task_id, timeout)
        if task['state'] != 'SUCCEEDED':
            raise AssertionError('task %s ended %s: %s'
                                 % (task_id, task['state'], task))
        return task

    def provision(self, size: int = 2, instances: int = 1,
                  replicas: int = 0, group_name: str = 'g',
                  timeout: float = 120.0, **service) -> tuple:
        """A vHSM group of ``size`` and a service on it, both built.

        ``service``: more fields of the service (``name``, ``standby``...).
        Returns the group's id, the service as the API shows it, and the
        tenant's credential token.
        """
        made = self.ok('POST', '/v1/vhsm_groups',
                       {'name': group_name, 'size': size})
        group_id = made['vhsm_group']['id']
        self.wait_succeeded(made['task']['id'], timeout)
        made = self.ok('POST', '/v1/services', {
            'name': 'pay', 'vhsm_group_id': group_id,
            'instances': instances, 'replicas': replicas, **service})
        self.wait_succeeded(made['task']['id'], timeout)
        shown = self.ok('GET', '/v1/services/%s' % made['service']['id'])
        return group_id, shown, made['credential']['token']


class ControlPlane(AdminClient, fixtures.Fixture):
    """API + conductor + ``computes`` compute daemons as processes."""

    def __init__(self, database_url: str, keystore_url: str,
                 transport_url: str, *, computes: tuple = (
                     ('device-1', 'device'), ('device-2', 'device'),
                     ('service-1', 'service'), ('service-2', 'service')),
                 heartbeat_timeout: int = 10, periodic_interval: int = 2,
                 compute_driver: str = 'process',
                 compute_groups: dict | None = None,
                 port_base: int | None = None,
                 conductor_groups: dict | None = None,
                 api_groups: dict | None = None):
        super().__init__()
        # Extra config groups of the API ([api], [keystone_authtoken]...).
        self.api_groups = api_groups or {}
        # Extra config groups of the conductor ([proxy]...).
        self.conductor_groups = conductor_groups or {}
        self.compute_driver = compute_driver
        # Extra config groups of every compute daemon ([docker]...).
        self.compute_groups = compute_groups or {}
        # Each compute daemon gets 200 ports from here; by default from
        # a block this test holds (tests/ports.py).
        self.port_base = port_base
        self.database_url = database_url
        self.keystore_url = keystore_url
        self.transport_url = transport_url
        self.compute_specs = computes
        self.heartbeat_timeout = heartbeat_timeout
        self.periodic_interval = periodic_interval

    def _setUp(self):
        self.dir = self.useFixture(fixtures.TempDir()).path
        # Compute daemons leave their workloads running when they stop
        # (they are adopted at the next start); the test must not.
        self.addCleanup(kill_processes_under, self.dir)
        self.master_key = os.path.join(self.dir, 'master.key')
        self.seed = os.path.join(self.dir, 'group-secret.seed')
        secretfile.create_secret_file(self.master_key)
        secretfile.create_secret_file(self.seed)
        self.htpasswd = os.path.join(self.dir, 'htpasswd')
        with open(self.htpasswd, 'w') as f:
            f.write(_htpasswd_line(*ADMIN, 'admin', 'admin'))
            f.write(_htpasswd_line(*TENANT, TENANT_PROJECT, 'member'))
        migration.upgrade(self.database_url, schema='control')
        migration.upgrade(self.keystore_url, schema='keystore')
        self.api_port = workloads.free_port()
        if self.port_base is None:
            self.port_base = self.useFixture(ports.PortBlock(
                PORTS_PER_NODE * len(self.compute_specs))).start
        self.processes: dict[str, workloads.LocalProcess] = {}
        self.start_conductor()
        for index, (host, roles) in enumerate(self.compute_specs):
            self.start_compute(host, roles, index)
        api_conf = self._common()
        for name, values in self.api_groups.items():
            api_conf.setdefault(name, {}).update(values)
        self._start('api', 'cryptocloud.cmd.api',
                    self._write_conf('api', api_conf))
        self.processes['api'].wait_listening(HOST, self.api_port)
        self.url = 'http://%s:%d' % (HOST, self.api_port)
        self.session = requests.Session()
        self.addCleanup(self.session.close)

    def _common(self) -> dict:
        return {
            'DEFAULT': {'transport_url': self.transport_url, 'debug': 'true'},
            'database': {'connection': self.database_url},
            'api': {'host': HOST, 'port': self.api_port,
                    'auth_strategy': 'http_basic',
                    'http_basic_auth_user_file': self.htpasswd},
            'conductor': {'host': 'conductor-1',
                          'heartbeat_timeout': self.heartbeat_timeout,
                          'periodic_interval': self.periodic_interval},
        }

    def _write_conf(self, name: str, groups: dict) -> str:
        return workloads.write_config(
            os.path.join(self.dir, '%s.conf' % name), _conf_text(groups))

    def _start(self, name: str, module: str, conf: str):
        proc = workloads.LocalProcess(
            name, [sys.executable, '-m', module, '--config-file', conf],
            os.path.join(self.dir, '%s.log' % name))
        proc.start()
        self.addCleanup(proc.stop)
        self.processes[name] = proc
        return proc

    def start_conductor(self) -> None:
        """Start (or restart) the conductor."""
        groups = self._common()
        for name, values in self.conductor_groups.items():
            groups.setdefault(name, {}).update(values)
        if 'proxy' in groups:
            # Under the fixture's directory, so that the cleanup that
            # kills the daemons' workloads kills HAProxy too.
            groups['proxy'].setdefault('state_path',
                                       os.path.join(self.dir, 'proxy'))
        self._start('conductor', 'cryptocloud.cmd.conductor',
                    self._write_conf('conductor', groups))

    def start_compute(self, host: str, roles: str, index: int) -> None:
        """Start (or restart) the compute daemon named ``host``."""
        groups = self._common()
        base = self.port_base + index * PORTS_PER_NODE
        groups['compute'] = {
            'host': host, 'address': HOST, 'roles': roles,
            'driver': self.compute_driver,
            'state_path': os.path.join(self.dir, 'compute-' + host),
            'port_range_start': base,
            'port_range_end': base + PORTS_PER_NODE - 1,
            'heartbeat_interval': 1,
            'master_key_file': self.master_key,
            'group_secret_seed_file': self.seed,
            'keystore_connection': self.keystore_url,
        }
        for name, values in self.compute_groups.items():
            groups.setdefault(name, {}).update(values)
        self._start('compute-' + host, 'cryptocloud.cmd.compute',
                    self._write_conf('compute-' + host, groups))
