"""Replicas take over (claim 2) with the docker driver, under load.

cryptocloud-api, cryptocloud-conductor and compute daemons running their
workloads as containers of a real Docker Engine, over RabbitMQ with
MariaDB, from images pulled by digest from a real registry.  A tenant
keeps signing through the endpoint it was given while the container of
the serving instance is killed (``docker kill``: SIGKILL to the program);
the cold replica's created container is started and takes over.  Then a
vHSM container is killed: the instance carries on with the other vHSM of
its group and the control plane replaces the dead one.

Two layouts: one service node, where the replica's container takes over
the primary's host port, and two service nodes behind HAProxy.
"""

import time
import uuid

import testtools
from testtools import content

from cryptocloud.common import workloads
from cryptocloud.tests.functional import controlplane
from cryptocloud.tests.functional import docker_env
from cryptocloud.tests.functional import test_failover
from cryptocloud.tests.functional.test_failover import TenantLoad
from cryptocloud.tests.functional.test_failover import haproxy_groups

HOST_LABEL = docker_env.HOST_LABEL
PREPARED_LABEL = docker_env.PREPARED_LABEL


class TestDockerFailover(test_failover.FailoverChecks, testtools.TestCase):
    """One service node: the replica's container takes over the port."""

    roles = ('device', 'service')
    same_node = True

    def conductor_groups(self) -> dict:
        return {}

    def setUp(self):
        super().setUp()
        self.env = docker_env.require(self)
        suffix = uuid.uuid4().hex[:6]
        self.hosts = tuple(('%s%d-%s' % (role[:3], i, suffix), role)
                           for i, role in enumerate(self.roles, 1))
        self.containers = self.env.node_containers(self, self.hosts)
        self.cp = controlplane.start_control_plane(
            self, computes=self.hosts, compute_driver='docker',
            compute_groups=self.env.compute_groups(),
            conductor_groups=self.conductor_groups())
        self.env.publish_images(self.cp.database_url)

    # -- containers ---------------------------------------------------------

    def _by_workload(self) -> dict:
        return self.containers.by_workload()

    def _wait_gone(self, workload_id: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while workload_id in self._by_workload():
            self.assertLess(time.monotonic(), deadline,
                            'the container of %s is still there'
                            % workload_id)
            time.sleep(0.3)

    # -- the control plane --------------------------------------------------

    def _provision(self) -> tuple[dict, str]:
        _, service, token = self.cp.provision(replicas=1, timeout=240)
        return service, token

    def _primary_and_replica(self, service_id: str) -> tuple[dict, dict]:
        rows = self.cp.ok('GET', '/v1/instances?service_id=%s'
                          % service_id)['instances']
        self.assertEqual(['primary', 'replica'],
                         sorted(r['role'] for r in rows), rows)
        return tuple(sorted(rows, key=lambda r: r['role']))

    def _report(self, name: str, value: str) -> None:
        self.addDetail(name, content.text_content(value))
        print('%s.%s: %s' % (type(self).__name__, name, value))

    def test_replica_container_takes_over_under_load(self):
        cp = self.cp
        service, token = self._provision()
        primary, replica = self._primary_and_replica(service['id'])
        self.assertEqual('STANDBY', replica['state'])
        if self.same_node:
            self.assertEqual(primary['node_id'], replica['node_id'])
            self.assertEqual(primary['port'], replica['port'])
        else:
            self.assertNotEqual(primary['node_id'], replica['node_id'])
        containers = self._by_workload()
        self.assertEqual('running', containers[primary['id']].status)
        # A cold standby: its container is created, not started.
        standby = containers[replica['id']]
        self.assertEqual('created', standby.status)
        self.assertEqual('1', standby.labels.get(PREPARED_LABEL))

        tenant = self._key_and_load(service, token)
        load = tenant.load
        deadline = time.monotonic() + 30
        while sum(ok for _, ok in load.outcomes) < 10:
            self.assertLess(time.monotonic(), deadline,
                            'the tenant load does not get through: %s'
                            % load.outcomes[-5:])
            time.sleep(0.1)

        # (a) docker kill the serving instance.
        killed_at = time.monotonic()
        containers[primary['id']].kill()
        took = load.wait_recovered(killed_at)
        self._report('instance_recovery_seconds', '%.2f' % took)
        self.assertLess(took, 15.0)
        # The key made before the failure still signs, and openssl
        # verifies what the promoted container signed.
        self._assert_still_signs(tenant)

        body = self._wait_taken_over(service['id'], replica['id'],
                                     timeout=90)
        [new_replica] = [r for r in body['instances']
                         if r['role'] == 'replica']
        self.assertEqual(service['endpoint'], cp.ok(
            'GET', '/v1/services/%s' % service['id'])['endpoint'])
        record = self._failover_record(primary, replica)
        self._report('failover_task', 'signal %r, promotion %.2f s'
                     % (record['signal'], record['seconds']))

        # The dead container is gone; the promoted one runs; the new
        # standby's container is created, not started.
        self._wait_gone(primary['id'])
        containers = self._by_workload()
        self.assertEqual('running', containers[replica['id']].status)
        self.assertEqual('created', containers[new_replica['id']].status)
        self.assertEqual('1', containers[new_replica['id']].labels.get(
            PREPARED_LABEL))

        # (b) docker kill a vHSM the instance uses: the other vHSM of the
        # group serves, and the control plane replaces the dead one.
        group_id = service['vhsm_group_id']
        vhsms = cp.ok('GET', '/v1/vhsms?group_id=%s' % group_id)['vhsms']
        victim = vhsms[0]['id']
        before = len(load.outcomes)
        killed_at = time.monotonic()
        containers[victim].kill()
        cp.wait_for('/v1/vhsms?group_id=%s' % group_id, lambda b: (
            victim not in {v['id'] for v in b['vhsms']}
            and [v['state'] for v in b['vhsms']] == ['ACTIVE'] * 2),
            timeout=120)
        replaced_in = time.monotonic() - killed_at
        time.sleep(1)
        load.stop()
        after = load.outcomes[before:]
        failures = [when - killed_at for when, ok in after if not ok]
        self._report('vhsm_kill', '%d tenant calls, %d failed, vHSM '
                     'replaced in %.1f s' % (len(after), len(failures),
                                             replaced_in))
        self.assertGreater(len(after), 10)
        self.assertEqual([], failures)
        self._assert_still_signs(tenant)

        # Every instance (the standby too) is told the new vHSM list;
        # nothing is left behind of the dead vHSM.
        wanted = {v['id'] for v in cp.ok(
            'GET', '/v1/vhsms?group_id=%s' % group_id)['vhsms']}
        cp.wait_for('/v1/associations', lambda b: all(
            {a['vhsm_id'] for a in b['associations']
             if a['instance_id'] == i} == wanted
            for i in (replica['id'], new_replica['id'])), timeout=60)
        self._wait_gone(victim)
        self.assertEqual(4, len(self.containers.list()))

        # Again: the standby made after the first failover, prepared
        # again with the new vHSM list, takes over in its turn.
        load = TenantLoad(tenant.url, token, tenant.key_id)
        load.start()
        self.addCleanup(load.stop)
        time.sleep(1)
        killed_at = time.monotonic()
        self._by_workload()[replica['id']].kill()
        took = load.wait_recovered(killed_at)
        load.stop()
        self._report('second_recovery_seconds', '%.2f' % took)
        self.assertLess(took, 15.0)
        self._assert_still_signs(tenant)
        self._wait_primary(service['id'], new_replica['id'])
        tasks = cp.ok('GET', '/v1/tasks?action=failover_service')['tasks']
        self.assertEqual(2, len(tasks), tasks)
        self._wait_gone(replica['id'])

class TestDockerFailoverBehindHAProxy(TestDockerFailover):
    """Two service nodes; HAProxy keeps the tenant's endpoint."""

    roles = ('device', 'service', 'service')
    same_node = False

    def conductor_groups(self) -> dict:
        return haproxy_groups(self)

    def test_node_loss_and_the_old_primary_container_goes(self):
        """kill -9 the primary's compute daemon: its container keeps
        running unseen, a replica elsewhere takes over behind the same
        endpoint, and when the daemon comes back the old primary's
        container is removed, not left serving beside its successor.
        """
        cp = self.cp
        service, token = self._provision()
        primary, replica = self._primary_and_replica(service['id'])
        primary_host = self._by_workload()[primary['id']].labels[HOST_LABEL]
        load = self._key_and_load(service, token).load

        cp.processes['compute-' + primary_host].kill()
        self._wait_primary(service['id'], replica['id'], timeout=90)
        time.sleep(1)
        load.stop()
        self.assertTrue(load.outcomes and load.outcomes[-1][1],
                        'the endpoint does not answer after the failover')
        record = self._failover_record(primary, replica)
        self.assertEqual('node down', record['signal'])
        # Unseen, not stopped: nothing could tell its engine.
        self.assertIn(primary['id'], self._by_workload())
        self.assertEqual('running', self._by_workload()[primary['id']].status)

        index = [h for h, _ in self.hosts].index(primary_host)
        cp.start_compute(primary_host, 'service', index)
        self._wait_gone(primary['id'], timeout=60)
        self.assertFalse(workloads.port_open(primary['host'],
                                             primary['port']))
