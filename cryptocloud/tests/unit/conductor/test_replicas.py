"""Replicas and failover (claim 2) on SQLite with the fake compute."""

from unittest import mock

from cryptocloud.common import states
from cryptocloud.conductor import manager
from cryptocloud.conductor import reconciler
from cryptocloud.conductor.workflows import failover
from cryptocloud.tests.unit.conductor import base

INSTANCES = 'service_instances'


class ReplicaTestCase(base.ConductorTestCase):

    service_nodes = ('svc1', 'svc2')

    def setUp(self):
        super().setUp()
        self.add_node('dev1', roles=['device'])
        self.add_node('dev2', roles=['device'])
        for name in self.service_nodes:
            self.add_node(name, roles=['service'])
        self.group = self.add_group(size=2)
        self.run_task('create_vhsm_group', self.group['id'])

    def make_service(self, instances=1, replicas=1, standby='cold'):
        service = self.add_service(self.group['id'], instances=instances)
        self.db.update('services', service['id'],
                       {'replicas': replicas, 'standby': standby})
        self.run_task('create_service', service['id'])
        return self.db.get('services', service['id'])

    def rows(self, service, role):
        return self.db.list(INSTANCES, filters={'service_id': service['id'],
                                                'role': role})

    def fail_primary(self, primary, reason='process 42 exited with status '
                                           '-9'):
        return self.db.transition(INSTANCES, primary['id'],
                                  states.WORKLOAD_MACHINE, 'fail',
                                  values={'status_reason': reason})


class TestReplicas(ReplicaTestCase):

    def test_cold_replica_is_prepared_on_another_node(self):
        service = self.make_service(instances=1, replicas=1)
        [primary] = self.rows(service, 'primary')
        [replica] = self.rows(service, 'replica')
        self.assertEqual(states.ACTIVE, primary['state'])
        self.assertEqual(states.STANDBY, replica['state'])
        self.assertEqual(primary['id'], replica['replica_of'])
        self.assertNotEqual(primary['node_id'], replica['node_id'])
        # Prepared, never started; associated like its primary.
        self.assertEqual([replica['id']], [
            kw['instance_id']
            for _, _, kw in self.compute.methods('prepare_instance')])
        self.assertNotIn(replica['id'], [
            kw['instance_id']
            for _, _, kw in self.compute.methods('start_instance')])
        self.assertEqual(2, len(self.db.list(
            'associations', filters={'instance_id': replica['id']})))
        # The tenant's endpoint is the primary's.
        self.assertEqual((primary['host'], primary['port']),
                         (service['endpoint_host'],
                          service['endpoint_port']))

    def test_hot_replica_runs(self):
        service = self.make_service(instances=1, replicas=1, standby='hot')
        [replica] = self.rows(service, 'replica')
        self.assertEqual(states.ACTIVE, replica['state'])
        self.assertEqual([], self.compute.methods('prepare_instance'))

    def test_failover_promotes_the_replica_and_makes_a_new_one(self):
        service = self.make_service(instances=1, replicas=1)
        [primary] = self.rows(service, 'primary')
        [replica] = self.rows(service, 'replica')
        self.fail_primary(primary)
        [task] = reconciler.record_failovers(self.db, 'test')
        self.assertEqual(failover.ACTION, task['action'])
        failover.run(self.workflow(task))

        [promoted] = self.rows(service, 'primary')
        self.assertEqual(replica['id'], promoted['id'])
        self.assertEqual(states.ACTIVE, promoted['state'])
        self.assertIsNone(promoted['replica_of'])
        activated = [kw['workload_id'] for _, _, kw in
                     self.compute.methods('activate_workload')]
        self.assertEqual([replica['id']], activated)
        # The failed primary is gone (stopped), a new replica stands by.
        self.assertNotIn(primary['id'],
                         [r['id'] for r in self.db.list(INSTANCES)])
        self.assertIn(primary['id'], [
            kw['workload_id']
            for _, _, kw in self.compute.methods('stop_workload')])
        [new] = self.rows(service, 'replica')
        self.assertEqual(promoted['id'], new['replica_of'])
        self.assertEqual(states.STANDBY, new['state'])
        # The endpoint follows the promoted instance.
        service = self.db.get('services', service['id'])
        self.assertEqual(states.ACTIVE, service['state'])
        self.assertEqual((promoted['host'], promoted['port']),
                         (service['endpoint_host'],
                          service['endpoint_port']))
        # The task says what happened, why, and how long it took.
        params = self.db.get('tasks', task['id'])['params']
        [record] = params['failovers']
        self.assertEqual(primary['id'], record['failed'])
        self.assertEqual(replica['id'], record['promoted'])
        self.assertIn('exited', record['signal'])
        self.assertGreaterEqual(record['seconds'], 0)

    def test_heartbeat_of_a_dead_primary_starts_a_failover_at_once(self):
        service = self.make_service(instances=1, replicas=1)
        [primary] = self.rows(service, 'primary')
        node = self.db.get('nodes', primary['node_id'])

        class Runner:
            owner = 'conductor-1'
            submitted = []

            def submit(self, task_id):
                self.submitted.append(task_id)
                return True

        runner = Runner()
        mgr = manager.ConductorManager(self.db, runner)
        mgr.heartbeat({}, node['hostname'], [{
            'workload_id': primary['id'], 'kind': 'cryptoservice',
            'state': 'exited', 'healthy': False,
            'reason': 'process 7 exited with status -9'}], {})
        [task_id] = runner.submitted
        task = self.db.get('tasks', task_id)
        self.assertEqual(failover.ACTION, task['action'])
        self.assertEqual(service['id'], task['resource_id'])
        # Recorded once: a second heartbeat finds the task open.
        mgr.heartbeat({}, node['hostname'], [], {})
        self.assertEqual(1, len(runner.submitted))

    def test_heartbeat_of_a_hung_primary_starts_a_failover(self):
        service = self.make_service(instances=1, replicas=1)
        [primary] = self.rows(service, 'primary')
        node = self.db.get('nodes', primary['node_id'])
        submitted = []
        runner = mock.Mock(owner='conductor-1')
        runner.submit.side_effect = lambda task_id: submitted.append(task_id)
        mgr = manager.ConductorManager(self.db, runner)
        # Unhealthy but not yet given up on by its node: nothing happens.
        status = {'workload_id': primary['id'], 'kind': 'cryptoservice',
                  'state': 'running', 'healthy': False,
                  'reason': 'no answer from /healthz'}
        mgr.heartbeat({}, node['hostname'], [status], {})
        self.assertEqual([], submitted)
        self.assertEqual(states.ACTIVE, self.db.get(
            'service_instances', primary['id'])['state'])
        mgr.heartbeat({}, node['hostname'], [dict(
            status, failing=True, reason='failed 3 health probes in a row '
                                         '(no answer from /healthz)')], {})
        [task_id] = submitted
        self.assertEqual(failover.ACTION,
                         self.db.get('tasks', task_id)['action'])
        failed = self.db.get('service_instances', primary['id'])
        self.assertEqual(states.ERROR, failed['state'])
        self.assertIn('health probes', failed['status_reason'])

    def test_without_a_ready_replica_the_reconciler_replaces(self):
        service = self.make_service(instances=1, replicas=0)
        [primary] = self.rows(service, 'primary')
        self.fail_primary(primary)
        self.assertEqual([], reconciler.record_failovers(self.db, 'test'))
        [item] = reconciler.find_drift(self.db)
        self.assertEqual('reconcile_service', item['action'])

    def test_broken_replica_is_drift_missing_one_is_not(self):
        service = self.make_service(instances=1, replicas=1)
        self.assertEqual([], reconciler.find_drift(self.db))
        [replica] = self.rows(service, 'replica')
        self.db.transition(INSTANCES, replica['id'],
                           states.WORKLOAD_MACHINE, 'fail',
                           values={'status_reason': 'node down'})
        [item] = reconciler.find_drift(self.db)
        self.assertIn('replica', item['reason'])
        self.run_task('reconcile_service', service['id'])
        [new] = self.rows(service, 'replica')
        self.assertNotEqual(replica['id'], new['id'])
        self.assertEqual(states.STANDBY, new['state'])

    def test_scaling_in_removes_the_replicas_of_removed_primaries(self):
        service = self.make_service(instances=2, replicas=1)
        self.assertEqual(2, len(self.rows(service, 'replica')))
        self.db.transition('services', service['id'],
                           states.RESOURCE_MACHINE, 'resize',
                           values={'target_instances': 1})
        self.run_task('resize_service', service['id'])
        [primary] = self.rows(service, 'primary')
        [replica] = self.rows(service, 'replica')
        self.assertEqual(primary['id'], replica['replica_of'])

    def test_new_credentials_reach_the_standby(self):
        service = self.make_service(instances=1, replicas=1)
        [replica] = self.rows(service, 'replica')
        before = len(self.compute.methods('prepare_instance'))
        self.db.create('service_credentials', {
            'service_id': service['id'], 'project_id': 'p1',
            'secret_sha256': 'cd' * 32})
        self.run_task('update_service_credentials', service['id'])
        calls = self.compute.methods('prepare_instance')[before:]
        self.assertEqual([replica['id']],
                         [kw['instance_id'] for _, _, kw in calls])
        self.assertEqual({'ab' * 32, 'cd' * 32}, {
            c['secret_sha256'] for c in calls[0][2]['credentials']})


class TestOneServiceNode(ReplicaTestCase):

    service_nodes = ('svc1',)

    def test_replica_shares_the_node_and_the_port(self):
        service = self.make_service(instances=1, replicas=1)
        [primary] = self.rows(service, 'primary')
        [replica] = self.rows(service, 'replica')
        self.assertEqual(primary['node_id'], replica['node_id'])
        [(_, _, kwargs)] = self.compute.methods('prepare_instance')
        self.assertEqual(primary['port'], kwargs['port'])
        self.fail_primary(primary)
        [task] = reconciler.record_failovers(self.db, 'test')
        failover.run(self.workflow(task))
        service = self.db.get('services', service['id'])
        # Same host and port: the tenant's endpoint did not move.
        self.assertEqual((primary['host'], primary['port']),
                         (service['endpoint_host'],
                          service['endpoint_port']))
