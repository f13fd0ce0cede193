"""Chaos: the broker and the database restart under a steady tenant load.

Real processes: cryptocloud-api, cryptocloud-conductor and three compute
daemons (two device nodes, one service node) over a RabbitMQ node of the
test's own, the control database and the keystore on a MariaDB server of
the test's own (``servers.py``: the shared servers on 5672 and 3306 serve
other tests and must never be restarted).  A vHSM group of two and a
service of one instance serve a tenant that signs in a loop through the
endpoint it was given, while the test stops the broker or the database
for longer than the heartbeat timeout and starts it again.  Then:

* tenant calls through the same endpoint go on succeeding (the broker:
  the data path does not use it) or succeed again within a second of the
  database's return; while the keystore is down they fail at once with a
  503 and a message, never a 500 or a hang;
* every key created before the restart still signs, the signature
  verifying with the ``openssl`` command line, and a new key works;
* no node was declared DOWN and nothing was rebuilt: every vHSM and
  instance runs where it ran, as the same workload;
* an admin request made during the broker's outage and others made
  after either restart reach SUCCEEDED, every task ends, and the counts
  are on their targets.

``TestChaos`` runs the workloads with the process driver,
``TestChaosDocker`` as containers of the test Docker Engine (host
networking: they reach the private servers on 127.0.0.1 too).
"""

import base64
import collections
import concurrent.futures
import datetime
import time
import uuid

import requests
import testtools
from testtools import content

from cryptocloud.tests.functional import controlplane
from cryptocloud.tests.functional import docker_env
from cryptocloud.tests.functional import servers
from cryptocloud.tests.functional.test_dataplane import openssl_sm2_verify
from cryptocloud.tests.functional.test_failover import TenantLoad

MESSAGE = b'signed before the restart'
OTHER_MESSAGE = b'signed after the restart'
# Seconds without a heartbeat before the conductor calls a node DOWN.
HEARTBEAT_TIMEOUT = 10
# Seconds each server stays down: longer than the heartbeat timeout, so
# that every node looks silent when it comes back (none is), and for the
# database longer than the vHSMs trust a cached key record ([vhsm]
# key_cache_ttl, 2 s), so that signing needs the keystore.
BROKER_DOWN_SECONDS = HEARTBEAT_TIMEOUT
DB_DOWN_SECONDS = HEARTBEAT_TIMEOUT + 2
# A tenant call during an outage must answer within this (no hang).
OUTAGE_CALL_TIMEOUT = 15.0
UNFINISHED = ('PENDING', 'RUNNING')


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class _ChaosScenarios:
    """The stack, the provisioning, and the checks after a restart (a
    mixin, so that only the driver variants below are collected)."""

    computes = (('device-1', 'device'), ('device-2', 'device'),
                ('service-1', 'service'))
    compute_driver = 'process'

    def compute_groups(self) -> dict | None:
        return None

    def setUp(self):
        super().setUp()
        self.phases: list[tuple[str, float]] = []
        self._phase_start = time.monotonic()
        self.addDetail('phases', content.Content(
            content.UTF8_TEXT, lambda: [''.join(
                '%6.1f s  %s\n' % (took, name)
                for name, took in self.phases).encode()]))
        self.prepare()
        self.rabbit = self.useFixture(servers.PrivateRabbitMQ())
        self.mariadb = self.useFixture(servers.PrivateMariaDB())
        self.addDetail('server-times', content.Content(
            content.UTF8_TEXT, self._server_times))
        self.cp = controlplane.start_control_plane_on(
            self, self.mariadb.create_database(),
            self.mariadb.create_database(), self.rabbit.url,
            computes=self.computes, compute_driver=self.compute_driver,
            compute_groups=self.compute_groups(),
            heartbeat_timeout=HEARTBEAT_TIMEOUT)
        self.before_provisioning()
        self.group_id, self.service, token = self.cp.provision(
            timeout=240)
        endpoint = self.service['endpoint']
        self.url = 'http://%s:%d' % (endpoint['host'], endpoint['port'])
        self.tenant = requests.Session()
        self.tenant.headers['Authorization'] = 'Bearer ' + token
        self.addCleanup(self.tenant.close)
        self.keys = {}
        for _ in range(3):
            key_id, pem = self._create_key()
            self.keys[key_id] = pem
        self.load = TenantLoad(self.url, token, next(iter(self.keys)))
        self.addCleanup(self.load.stop)
        self.slowest = 0.0

    def prepare(self) -> None:
        """A hook for variants: what they need before the servers."""

    def before_provisioning(self) -> None:
        """A hook for variants: what they need before provisioning."""

    def _server_times(self):
        # The last stop of each is the clean-up's.
        lines = ['rabbitmq start s: %s; stop s: %s' % (
                     _fmt(self.rabbit.start_seconds),
                     _fmt(self.rabbit.stop_seconds)),
                 'mariadb install s: %.2f; start s: %s; stop s: %s' % (
                     self.mariadb.install_seconds,
                     _fmt(self.mariadb.start_seconds),
                     _fmt(self.mariadb.stop_seconds))]
        return [('\n'.join(lines) + '\n').encode()]

    # -- the stack ---------------------------------------------------------

    def _tenant(self, method: str, path: str, body=None,
                timeout: float = 30.0) -> requests.Response:
        return self.tenant.request(method, self.url + path, json=body,
                                   timeout=timeout)

    def _create_key(self) -> tuple[str, str]:
        resp = self._tenant('POST', '/v1/keys', {'algorithm': 'SM2'})
        self.assertEqual(201, resp.status_code, resp.text)
        key_id = resp.json()['key_id']
        resp = self._tenant('GET', '/v1/keys/%s/public-key' % key_id)
        self.assertEqual(200, resp.status_code, resp.text)
        return key_id, resp.json()['public_key_pem']

    def _assert_signs(self, key_id: str, pem: str, message: bytes) -> None:
        resp = self._tenant('POST', '/v1/keys/%s/sign' % key_id,
                            {'message': b64(message)})
        self.assertEqual(200, resp.status_code, resp.text)
        signature = base64.b64decode(resp.json()['signature'])
        self.assertTrue(openssl_sm2_verify(pem, message, signature),
                        'the signature of %s does not verify' % key_id)

    # -- checks --------------------------------------------------------------

    def _phase(self, name: str) -> None:
        """Note how long the step that ends now took (for the details)."""
        now = time.monotonic()
        self.phases.append((name, now - self._phase_start))
        self._phase_start = now

    def _start_load(self) -> None:
        self.load.start()
        deadline = time.monotonic() + 30
        while not any(ok for _, ok in list(self.load.outcomes)):
            self.assertLess(time.monotonic(), deadline,
                            'the tenant load never succeeded')
            time.sleep(0.1)

    def _wait_recovered(self, moment: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            took = self.load.recovered_after(moment)
            if took is not None:
                return took
            self.assertLess(time.monotonic(), deadline,
                            'tenant calls did not succeed again')
            time.sleep(0.1)

    def _wait_nodes_reporting(self, since: datetime.datetime) -> None:
        """Every node is UP and has been heard from since ``since``: the
        control plane sees its nodes again."""
        def fresh(node):
            beat = node['last_heartbeat']
            return (node['state'] == 'UP' and beat is not None
                    and datetime.datetime.fromisoformat(beat) > since)
        self.cp.wait_for('/v1/nodes', lambda b: sorted(
            n['hostname'] for n in b['nodes'] if fresh(n))
            == sorted(h for h, _ in self.computes), timeout=90)

    def _grow_group(self, size: int) -> None:
        """An admin request after the restart: it must succeed."""
        made = self.cp.ok('PATCH', '/v1/vhsm_groups/%s' % self.group_id,
                          {'size': size})
        task = self.cp.wait_task(made['task']['id'], timeout=180)
        self.assertEqual('SUCCEEDED', task['state'], task)

    def _resize_service(self, instances: int) -> None:
        made = self.cp.ok('PATCH', '/v1/services/%s' % self.service['id'],
                          {'instances': instances})
        task = self.cp.wait_task(made['task']['id'], timeout=180)
        self.assertEqual('SUCCEEDED', task['state'], task)

    def _wait_settled(self, vhsms: int, instances: int) -> None:
        """Every task ended; the counts are on their targets."""
        cp = self.cp
        cp.wait_for('/v1/vhsms?group_id=%s' % self.group_id,
                    lambda b: len(b['vhsms']) == vhsms and all(
                        v['state'] == 'ACTIVE' for v in b['vhsms']),
                    timeout=120)
        cp.wait_for('/v1/instances?service_id=%s' % self.service['id'],
                    lambda b: len(b['instances']) == instances and all(
                        i['state'] == 'ACTIVE' for i in b['instances']),
                    timeout=120)
        tasks = cp.wait_for('/v1/tasks', lambda b: not [
            t for t in b['tasks'] if t['state'] in UNFINISHED],
            timeout=120)['tasks']
        failed = [t for t in tasks if t['state'] != 'SUCCEEDED']
        self.assertEqual([], failed)
        group = cp.ok('GET', '/v1/vhsm_groups/%s' % self.group_id)
        self.assertEqual(('ACTIVE', vhsms), (group['state'], group['size']))
        service = cp.ok('GET', '/v1/services/%s' % self.service['id'])
        self.assertEqual('ACTIVE', service['state'])
        # The tenant's endpoint did not move.
        self.assertEqual(self.service['endpoint'], service['endpoint'])

    def _workloads(self) -> dict:
        """Where each vHSM and instance runs: id -> (node, port, ref)."""
        rows = (self.cp.ok('GET', '/v1/vhsms?group_id=%s'
                           % self.group_id)['vhsms']
                + self.cp.ok('GET', '/v1/instances?service_id=%s'
                             % self.service['id'])['instances'])
        return {r['id']: (r['node_id'], r['port'], r['workload_ref'])
                for r in rows}

    def _assert_not_rebuilt(self, before: dict) -> None:
        """The outage replaced nothing: every workload is where it was."""
        after = self._workloads()
        self.assertEqual(before, {k: v for k, v in after.items()
                                  if k in before})

    def _assert_keys_kept(self) -> None:
        """Every key made so far signs, and a new key works."""
        for key_id, pem in self.keys.items():
            self._assert_signs(key_id, pem, MESSAGE)
        key_id, pem = self._create_key()
        self._assert_signs(key_id, pem, OTHER_MESSAGE)
        listed = self._tenant('GET', '/v1/keys?limit=100')
        self.assertEqual(200, listed.status_code, listed.text)
        found = {k['key_id'] for k in listed.json()['keys']}
        self.assertEqual(set(), set(self.keys) - found)

    def _outage_call(self, method: str, path: str, body=None) -> str:
        """One tenant call while the keystore is down: it must answer in
        time, and a failure must be a 503 (retry later) with a message,
        never a 500 or a hang.  Returns what happened, for the details."""
        started = time.monotonic()
        try:
            resp = self._tenant(method, path, body,
                                timeout=OUTAGE_CALL_TIMEOUT)
        except requests.Timeout:
            self.fail('%s %s hung for more than %.0f s during the outage'
                      % (method, path, OUTAGE_CALL_TIMEOUT))
        self.slowest = max(self.slowest, time.monotonic() - started)
        if resp.status_code < 300:
            return '%s %s -> %d' % (method, path, resp.status_code)
        self.assertEqual(503, resp.status_code, resp.text)
        error = resp.json().get('error') or {}
        self.assertTrue(error.get('message'), resp.text)
        return '%s %s -> %d %s: %s' % (method, path, resp.status_code,
                                       error.get('type'),
                                       error.get('message'))

    def _admin(self, method: str, path: str, body=None
               ) -> tuple[requests.Response, float]:
        """An admin call on its own connection (threads may call this)."""
        started = time.monotonic()
        resp = requests.request(method, self.cp.url + path, json=body,
                                auth=controlplane.ADMIN, timeout=120)
        return resp, time.monotonic() - started

    def _add_outage_detail(self, seen: list[str]) -> None:
        counts = collections.Counter(seen)
        self.addDetail('outage-calls', content.text_content(''.join(
            '%4d x %s\n' % (n, what) for what, n in counts.items())
            + 'slowest tenant call: %.2f s\n' % self.slowest))

    # -- the tests -----------------------------------------------------------

    def test_rabbitmq_restart(self):
        self._phase('set-up')
        before = self._workloads()
        self._start_load()
        stopped_at = time.monotonic()
        self.rabbit.stop()
        # An admin request while the broker is down: its task is
        # recorded, the cast waits for the broker.
        pool = concurrent.futures.ThreadPoolExecutor(1)
        self.addCleanup(pool.shutdown)
        during = pool.submit(self._admin, 'PATCH', '/v1/vhsm_groups/%s'
                             % self.group_id, {'size': 3})
        time.sleep(BROKER_DOWN_SECONDS)
        self.rabbit.start()
        back = _utcnow()
        self._phase('broker down and started again')
        resp, took = during.result(timeout=180)
        self.addDetail('admin-during-outage', content.text_content(
            'PATCH group -> %d after %.2f s' % (resp.status_code, took)))
        self.assertEqual(202, resp.status_code, resp.text)
        self._phase('admin request made during the outage answered')
        task = self.cp.wait_task(resp.json()['task']['id'], timeout=180)
        self.assertEqual('SUCCEEDED', task['state'], task)
        self._phase('its task SUCCEEDED')
        # The data path never uses the broker.
        self.assertEqual(0.0, self._wait_recovered(stopped_at, 60))
        # A request after the restart.
        self._wait_nodes_reporting(back)
        self._phase('every node reported')
        self._resize_service(2)
        self._phase('service resized')
        key_id, pem = self._create_key()
        self.keys[key_id] = pem
        self.load.stop()
        self._assert_keys_kept()
        self._wait_settled(vhsms=3, instances=2)
        self._assert_not_rebuilt(before)
        self._phase('keys checked, settled')
        failures = [when for when, ok in self.load.outcomes if not ok]
        self.assertEqual([], failures,
                         'tenant calls failed while the broker restarted')

    def test_mariadb_restart(self):
        self._phase('set-up')
        before = self._workloads()
        self._start_load()
        key_id = next(iter(self.keys))
        stopped_at = time.monotonic()
        self.mariadb.stop()
        seen = []
        while time.monotonic() - stopped_at < DB_DOWN_SECONDS:
            seen.append(self._outage_call(
                'POST', '/v1/keys/%s/sign' % key_id,
                {'message': b64(MESSAGE)}))
            time.sleep(0.3)
        seen.append(self._outage_call('POST', '/v1/keys',
                                      {'algorithm': 'SM2'}))
        # The admin API answers at once too, 503 with a message.
        resp, took = self._admin('PATCH', '/v1/vhsm_groups/%s'
                                 % self.group_id, {'size': 3})
        self.assertEqual(503, resp.status_code, resp.text)
        self.assertLess(took, OUTAGE_CALL_TIMEOUT)
        seen.append('admin PATCH group -> 503: %s'
                    % resp.json()['error']['message'])
        self.mariadb.start()
        back = _utcnow()
        self._phase('database down and started again')
        self._add_outage_detail(seen)
        took = self._wait_recovered(stopped_at, 60)
        self.addDetail('tenant-recovery', content.text_content(
            '%.2f s after the database stopped' % took))
        # The keystore is needed once cached records expire: calls failed
        # while it was down, cleanly (checked above), and succeed again.
        self.assertTrue(any(not ok for when, ok in self.load.outcomes
                            if when > stopped_at))
        self.assertLess(took, DB_DOWN_SECONDS + 20)
        self.load.stop()
        self._assert_keys_kept()
        self._phase('tenant calls back, keys checked')
        self._wait_nodes_reporting(back)
        self._phase('every node reported')
        self._grow_group(3)
        self._resize_service(2)
        self._phase('group and service resized')
        self._wait_settled(vhsms=3, instances=2)
        self._assert_not_rebuilt(before)
        self._phase('settled')


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _fmt(values: list[float]) -> str:
    return ', '.join('%.2f' % v for v in values) or '-'


class TestChaos(_ChaosScenarios, testtools.TestCase):
    """Process driver: vHSMs and instances run as local processes."""


class TestChaosDocker(_ChaosScenarios, testtools.TestCase):
    """Docker driver: vHSM and instance containers (host networking)
    reach the private MariaDB on 127.0.0.1 as the daemons do."""

    compute_driver = 'docker'

    def prepare(self) -> None:
        self.env = docker_env.require(self)
        # Host names are container labels on the shared engine: unique.
        suffix = uuid.uuid4().hex[:6]
        self.computes = tuple(('%s-%s' % (host, suffix), roles)
                              for host, roles in self.computes)
        self.env.node_containers(self, self.computes)

    def compute_groups(self) -> dict:
        return self.env.compute_groups()

    def before_provisioning(self) -> None:
        self.env.publish_images(self.cp.database_url)
