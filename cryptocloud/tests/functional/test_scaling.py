"""Pressure-based scaling end to end (the patent's claim 7).

Real processes: cryptocloud-api, cryptocloud-conductor (balancer every
second) and three compute daemons (one device node, two service nodes)
over RabbitMQ, the control database and keystore on MariaDB, the process
driver running real vHSMs and service instances.  A load generator of
tenant threads calls ``POST /v1/hash`` (SM3) at a steady rate, spread
round-robin over the service's ACTIVE instances as a load balancer in
front of them would (the HAProxy front end is another test's business),
so the per-instance request rate falls as instances are added.

60 requests/s against a band of [4, 15] per instance: one instance is
at 60, two at 30, three at 20, so the balancer adds instances (and a
vHSM) up to the policy's maximum of three and then says it is limited.
When the load stops every instance drops to 0 and the balancer removes
them, a step per window, down to the minimum of one.  No flapping: the
scale tasks go out, out, then in, in, and never back.
"""

import base64
import collections
import threading
import time

import requests
import testtools

from cryptocloud.tests.functional import controlplane

RATE = 60.0
THREADS = 4
POLICY = {'metric': 'requests_per_s', 'lower': 4, 'upper': 15,
          'add_instances': 1, 'remove_instances': 1, 'add_vhsms': 1,
          'remove_vhsms': 1, 'min_instances': 1, 'max_instances': 3,
          'min_vhsms': 1, 'max_vhsms': 2, 'cooldown': 2, 'window': 3}


class LoadGenerator:
    """Tenant calls at ``rate`` per second, round-robin over instances."""

    def __init__(self, cp: controlplane.ControlPlane, service_id: str,
                 token: str, rate: float = RATE, threads: int = THREADS):
        self._cp = cp
        self._service_id = service_id
        self._headers = {'Authorization': 'Bearer ' + token}
        self._rate = rate
        self._threads = threads
        self._targets: list[str] = []
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.results: collections.Counter = collections.Counter()
        self.errors: list[str] = []

    def refresh(self) -> None:
        """Follow the service's ACTIVE primaries (the admin API's view)."""
        found = self._cp.ok('GET', '/v1/instances?service_id=%s'
                            % self._service_id)['instances']
        targets = sorted('http://%s:%d' % (i['host'], i['port'])
                         for i in found if i['state'] == 'ACTIVE'
                         and i.get('role', 'primary') == 'primary')
        with self._lock:
            self._targets = targets

    def _target(self) -> str | None:
        with self._lock:
            if not self._targets:
                return None
            self._next += 1
            return self._targets[self._next % len(self._targets)]

    def _work(self) -> None:
        session = requests.Session()
        body = {'algorithm': 'SM3',
                'data': base64.b64encode(b'business pressure').decode()}
        interval = self._threads / self._rate
        due = time.monotonic()
        while not self._stop.is_set():
            due += interval
            url = self._target()
            if url is not None:
                try:
                    resp = session.post(url + '/v1/hash', json=body,
                                        headers=self._headers, timeout=10)
                    self.results[resp.status_code] += 1
                    if resp.status_code != 200:
                        self.errors.append(resp.text[:200])
                except requests.RequestException as exc:
                    # An instance removed by a scale-in while we call it.
                    self.results['error'] += 1
                    self.errors.append(str(exc)[:200])
            pause = due - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)
            else:
                due = time.monotonic()
        session.close()

    def _follow(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep the old list
                self.errors.append('refresh: %s' % exc)

    def start(self) -> None:
        self.refresh()
        self._workers = [threading.Thread(target=self._work, daemon=True)
                         for _ in range(self._threads)]
        self._workers.append(threading.Thread(target=self._follow,
                                              daemon=True))
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)


class TestPressureScalingRabbitMariaDB(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.cp = controlplane.start_control_plane(
            self, computes=(('device-1', 'device'), ('service-1', 'service'),
                            ('service-2', 'service')),
            periodic_interval=1,
            conductor_groups={'conductor': {'balancer_interval': 1}})

    def counts(self, service_id: str, group_id: str) -> tuple[int, int]:
        cp = self.cp
        instances = cp.ok('GET', '/v1/instances?service_id=%s'
                          % service_id)['instances']
        vhsms = cp.ok('GET', '/v1/vhsms?group_id=%s' % group_id)['vhsms']
        return (sum(1 for i in instances if i['state'] == 'ACTIVE'),
                sum(1 for v in vhsms if v['state'] == 'ACTIVE'))

    def wait_counts(self, service_id, group_id, wanted, timeout):
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.counts(service_id, group_id)
            service = self.cp.ok('GET', '/v1/services/%s' % service_id)
            if seen == wanted and service['state'] == 'ACTIVE':
                return
            time.sleep(0.3)
        policy = self.cp.ok('GET', '/v1/services/%s/scaling_policy'
                            % service_id)
        self.fail('counts %s, wanted %s; policy says %s: %s'
                  % (seen, wanted, policy['last_decision'],
                     policy['last_reason']))

    def test_load_scales_out_to_the_maximum_and_back_to_the_minimum(self):
        cp = self.cp
        started = time.monotonic()
        made = cp.ok('POST', '/v1/vhsm_groups', {'name': 'g', 'size': 1},
                     auth=controlplane.TENANT)
        group_id = made['vhsm_group']['id']
        self.assertEqual('SUCCEEDED',
                         cp.wait_task(made['task']['id'])['state'])
        made = cp.ok('POST', '/v1/services', {
            'name': 'payments', 'vhsm_group_id': group_id, 'instances': 1,
            'replicas': 0}, auth=controlplane.TENANT)
        service_id = made['service']['id']
        token = made['credential']['token']
        self.assertEqual('SUCCEEDED',
                         cp.wait_task(made['task']['id'])['state'])
        path = '/v1/services/%s/scaling_policy' % service_id
        policy = cp.ok('PUT', path, POLICY, auth=controlplane.TENANT)
        self.assertEqual(3, policy['max_instances'])

        load = LoadGenerator(cp, service_id, token)
        load.start()
        self.addCleanup(load.stop)
        self.wait_counts(service_id, group_id, (3, 2), timeout=40)
        # At the maximum, with the pressure still above the band: it
        # says it cannot go further (and does not try).
        policy = cp.wait_for(path, lambda p: p['last_decision'] == 'limited',
                             timeout=15)
        self.assertIn('max_instances 3', policy['last_reason'])
        self.assertIn('max_vhsms 2', policy['last_reason'])
        load.stop()
        total = sum(load.results.values())
        self.assertGreater(total, 300)
        # Scaling never broke the tenant's calls for long: a call may
        # only fail against an instance being removed (none here).
        self.assertEqual(total, load.results[200], load.errors[:5])

        self.wait_counts(service_id, group_id, (1, 1), timeout=40)
        tasks = cp.ok('GET', '/v1/tasks?action=scale_service&resource_id=%s'
                      % service_id)['tasks']
        tasks.sort(key=lambda t: t['created_at'])
        directions = [t['params']['direction'] for t in tasks]
        # No flapping: out to the maximum, in to the minimum, once each.
        self.assertEqual(['out', 'out', 'in', 'in'], directions)
        self.assertEqual(['SUCCEEDED'] * 4, [t['state'] for t in tasks])
        self.assertEqual([(1, 2), (2, 3), (3, 2), (2, 1)],
                         [(t['params']['instances_before'],
                           t['params']['instances_after']) for t in tasks])
        self.assertEqual([(1, 2), (2, 2), (2, 1), (1, 1)],
                         [(t['params']['vhsms_before'],
                           t['params']['vhsms_after']) for t in tasks])
        for task in tasks[:2]:
            self.assertGreater(task['params']['value'], 15)
            self.assertEqual('requests_per_s', task['params']['metric'])
        for task in tasks[2:]:
            self.assertLess(task['params']['highest'], 4)
        # And it stays there: at the minimum, holding.
        policy = cp.wait_for(path, lambda p: p['last_decision'] in (
            'limited', 'hold') and p['evaluated_at'] is not None)
        time.sleep(3)
        self.assertEqual(4, len(cp.ok(
            'GET', '/v1/tasks?action=scale_service')['tasks']))
        self.assertEqual((1, 1), self.counts(service_id, group_id))
        self.assertLess(time.monotonic() - started, 90)
