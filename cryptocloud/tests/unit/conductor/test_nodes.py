"""Registration, heartbeats, liveness and reconciliation of desired counts.
"""

import datetime

import fixtures

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor import manager
from cryptocloud.conductor import nodes
from cryptocloud.conductor import periodic
from cryptocloud.conductor import reconciler
from cryptocloud.conductor import task_runner
from cryptocloud.conductor.workflows import base as wf_base
from cryptocloud.tests.unit.conductor import base


class TestNodes(base.ConductorTestCase):

    def setUp(self):
        super().setUp()
        self.mgr = manager.ConductorManager(self.db, runner=None)

    def test_register_returns_json_data(self):
        node = self.mgr.register_node({}, 'n1', '127.0.0.1',
                                      ['device'], 3, 0)
        self.assertEqual(['device'], node['roles'])
        self.assertIsInstance(node['last_heartbeat'], str)

    def test_heartbeat_of_unknown_node(self):
        self.assertRaises(exception.NotFound, self.mgr.heartbeat, {}, 'nx',
                          [], {})

    def test_heartbeat_moves_workload_states(self):
        # Rows older than the grace: a missing ACTIVE one has vanished.
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.conductor.nodes.HEARTBEAT_GRACE_SECONDS', -1))
        node = self.add_node('n1')
        group = self.add_group(size=3, state=states.ACTIVE)
        rows = [self.db.create('vhsms', {
            'group_id': group['id'], 'node_id': node['id'], 'state': s})
            for s in (states.BUILDING, states.ACTIVE, states.ACTIVE)]
        statuses = [
            {'workload_id': rows[0]['id'], 'kind': 'vhsm',
             'state': 'running', 'healthy': True, 'host': '127.0.0.1',
             'port': 20001, 'workload_ref': 'r0'},
            {'workload_id': rows[1]['id'], 'kind': 'vhsm',
             'state': 'exited', 'healthy': False, 'reason': 'exit code 1'},
        ]
        self.assertEqual({'orphans': []},
                         self.mgr.heartbeat({}, 'n1', statuses,
                                            {'cpu': 0.5}))
        got = [self.db.get('vhsms', r['id']) for r in rows]
        self.assertEqual([states.ACTIVE, states.ERROR, states.ERROR],
                         [g['state'] for g in got])
        self.assertEqual(20001, got[0]['port'])
        self.assertEqual('exit code 1', got[1]['status_reason'])
        self.assertEqual(nodes.MISSING_REASON, got[2]['status_reason'])
        self.assertEqual({'cpu': 0.5}, self.db.get('nodes',
                                                   node['id'])['load'])

    def test_a_row_just_changed_is_not_failed_by_an_older_list(self):
        node = self.add_node('n1')
        group = self.add_group(size=1, state=states.ACTIVE)
        row = self.db.create('vhsms', {'group_id': group['id'],
                                       'node_id': node['id'],
                                       'state': states.ACTIVE})
        # The node listed its workloads before this one started.
        self.mgr.heartbeat({}, 'n1', [], {})
        self.assertEqual(states.ACTIVE,
                         self.db.get('vhsms', row['id'])['state'])

    def test_a_listed_prepared_state_never_moves_a_row(self):
        node = self.add_node('n1')
        group = self.add_group(size=1, state=states.ACTIVE)
        service = self.add_service(group['id'], state=states.ACTIVE)
        row = self.db.create('service_instances', {
            'service_id': service['id'], 'node_id': node['id'],
            'role': 'replica', 'state': states.BUILDING})
        # A replica being promoted, listed as it was a moment ago.
        self.mgr.heartbeat({}, 'n1', [{
            'workload_id': row['id'], 'kind': 'cryptoservice',
            'state': 'prepared', 'healthy': False}], {})
        self.assertEqual(states.BUILDING,
                         self.db.get('service_instances', row['id'])['state'])

    def test_heartbeat_names_workloads_without_a_row(self):
        node = self.add_node('n1')
        group = self.add_group(size=1, state=states.ACTIVE)
        row = self.db.create('vhsms', {'group_id': group['id'],
                                       'node_id': node['id'],
                                       'state': states.ACTIVE})
        statuses = [{'workload_id': wid, 'kind': 'vhsm', 'state': 'running',
                     'healthy': True}
                    for wid in (row['id'], 'deleted-while-away')]
        reply = self.mgr.heartbeat({}, 'n1', statuses, {})
        self.assertEqual(['deleted-while-away'], reply['orphans'])

    def test_silent_node_goes_down_with_its_workloads(self):
        node = self.add_node('n1')
        self.add_node('n2')
        group = self.add_group(size=1, state=states.ACTIVE)
        vhsm = self.db.create('vhsms', {'group_id': group['id'],
                                        'node_id': node['id'],
                                        'state': states.ACTIVE})
        later = wf_base.utcnow() + datetime.timedelta(seconds=31)
        down = nodes.check_liveness(self.db, later, 30)
        self.assertEqual({'n1', 'n2'}, {n['hostname'] for n in down})
        vhsm = self.db.get('vhsms', vhsm['id'])
        self.assertEqual(states.ERROR, vhsm['state'])
        self.assertEqual('node down', vhsm['status_reason'])
        # A second conductor doing the same pass changes nothing.
        self.assertEqual([], nodes.check_liveness(self.db, later, 30))
        # A DOWN node gets no new work.
        self.assertRaises(exception.NoValidHost,
                          self.scheduler.select_hosts, 'vhsm', 1)


class TestReconcile(base.ConductorTestCase):

    def setUp(self):
        super().setUp()
        for name in ('dev1', 'dev2', 'dev3'):
            self.add_node(name, roles=['device'])
        self.add_node('svc1', roles=['service'])
        self.group = self.add_group(size=2)
        self.run_task('create_vhsm_group', self.group['id'])
        self.service = self.add_service(self.group['id'], instances=1)
        self.run_task('create_service', self.service['id'])
        self.runner = task_runner.TaskRunner(
            self.db, self.compute, self.scheduler, owner='c1', workers=4,
            lease_seconds=60, provision_timeout=5, poll_interval=0.01)
        self.runner.start()
        self.addCleanup(self.runner.stop)
        self.passes = periodic.PeriodicTasks(self.db, self.runner,
                                             interval=60,
                                             heartbeat_timeout=30)

    def test_nothing_to_do(self):
        self.assertEqual([], reconciler.find_drift(self.db))

    def test_dead_vhsm_is_replaced_and_instances_updated(self):
        dead = self.db.list('vhsms')[0]
        dead_node = self.db.get('nodes', dead['node_id'])
        # Its node stops sending heartbeats; the others keep going.
        later = wf_base.utcnow() + datetime.timedelta(seconds=31)
        for node in self.db.list('nodes'):
            if node['id'] != dead_node['id']:
                self.db.update('nodes', node['id'],
                               {'last_heartbeat': later})
        nodes.check_liveness(self.db, later, 30)
        self.assertEqual(states.ERROR,
                         self.db.get('vhsms', dead['id'])['state'])
        tasks = self.passes.reconcile()
        self.assertEqual(['reconcile_vhsm_group'],
                         [t['action'] for t in tasks])
        task = self.wait_task(tasks[0]['id'])
        self.assertEqual(states.SUCCEEDED, task['state'], task['error'])
        self.assertEqual('1 workload(s) node down',
                         task['params']['reason'])
        vhsms = self.db.list('vhsms')
        self.assertEqual([states.ACTIVE] * 2, [v['state'] for v in vhsms])
        self.assertNotIn(dead['id'], {v['id'] for v in vhsms})
        self.assertNotIn(dead_node['id'], {v['node_id'] for v in vhsms})
        # The instance was told the new endpoints, without a restart.
        update = self.compute.methods('update_instance')[-1][2]
        self.assertEqual(sorted('%s:%s' % (v['host'], v['port'])
                                for v in vhsms),
                         sorted(update['vhsm_endpoints']))
        self.assertEqual(1, len(self.compute.methods('start_instance')))
        self.assertEqual({v['id'] for v in vhsms},
                         {a['vhsm_id'] for a in self.db.list(
                             'associations')})
        self.assertEqual(states.ACTIVE, self.db.get(
            'vhsm_groups', self.group['id'])['state'])
        self.assertEqual([], reconciler.find_drift(self.db))

    def test_failed_instance_is_replaced_and_endpoint_moves(self):
        inst = self.db.list('service_instances')[0]
        self.db.transition('service_instances', inst['id'],
                           states.WORKLOAD_MACHINE, 'fail',
                           {'status_reason': 'workload exited'})
        tasks = self.passes.reconcile()
        self.assertEqual(['reconcile_service'], [t['action'] for t in tasks])
        # An open task means the next pass records no second one.
        self.assertEqual([], reconciler.record_tasks(self.db, 'c2'))
        task = self.wait_task(tasks[0]['id'])
        self.assertEqual(states.SUCCEEDED, task['state'], task['error'])
        new = self.db.list('service_instances')
        self.assertEqual(1, len(new))
        self.assertNotEqual(inst['id'], new[0]['id'])
        service = self.db.get('services', self.service['id'])
        self.assertEqual((new[0]['host'], new[0]['port']),
                         (service['endpoint_host'],
                          service['endpoint_port']))
        self.assertEqual(2, self.db.count('associations',
                                          {'instance_id': new[0]['id']}))


class TestPlacementRace(base.ConductorTestCase):
    """Two conductors counting the same free slot: the second re-selects."""

    def setUp(self):
        super().setUp()
        self.n1 = self.add_node('n1', roles=['device'], vhsm_capacity=1)
        self.n2 = self.add_node('n2', roles=['device'], vhsm_capacity=1)
        self.group = self.add_group(size=1)

    def _row(self, node: dict) -> dict:
        return {'group_id': self.group['id'], 'node_id': node['id'],
                'state': states.BUILDING}

    def _other_conductor_takes(self, node_ids: list[int]):
        """select_hosts, after which "another conductor" fills the nodes."""
        real = self.scheduler.select_hosts
        calls = []

        def select_then_lose(*args, **kwargs):
            chosen = real(*args, **kwargs)
            if not calls:
                for node_id in node_ids:
                    self.db.create('vhsms', {'group_id': self.group['id'],
                                             'node_id': node_id})
            calls.append(chosen)
            return chosen
        self.useFixture(fixtures.MockPatchObject(
            self.scheduler, 'select_hosts', side_effect=select_then_lose))
        return calls

    def test_slot_taken_meanwhile_places_elsewhere(self):
        calls = self._other_conductor_takes([self.n1['id']])
        [row] = self.scheduler.place('vhsm', 1, self._row,
                                     spread=[self.n2['id']])
        # The first selection chose n1 (n2 holds a member); n1 filled up
        # meanwhile, so the second selection, counting that, took n2.
        self.assertEqual([self.n1['id']], [n['id'] for n in calls[0]])
        self.assertEqual(self.n2['id'], row['node_id'])
        self.assertEqual(1, self.db.count('vhsms',
                                          {'node_id': self.n2['id']}))

    def test_no_room_left_keeps_nothing(self):
        self._other_conductor_takes([self.n2['id']])
        exc = self.assertRaises(exception.NoValidHost, self.scheduler.place,
                                'vhsm', 2, self._row)
        self.assertIn('no free vHSM slot', str(exc))
        # Only the other conductor's row: the one this call placed on n1
        # before it ran out of room is gone again.
        self.assertEqual([self.n2['id']],
                         [v['node_id'] for v in self.db.list('vhsms')])
