"""The pressure balancer: decisions, limits, anti-flapping, several
conductors, and the scale_service workflow that carries them out."""

import datetime
import threading
from unittest import mock

from cryptocloud.common import states
from cryptocloud.conductor import balancer
from cryptocloud.conductor import nodes
from cryptocloud.conductor import periodic
from cryptocloud.conductor import workflows
from cryptocloud.conductor.workflows import base as wf_base
from cryptocloud.tests.unit.conductor import base

RPS = 'requests_per_s'


def secs(n: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=n)


class BalancerTestCase(base.ConductorTestCase):
    """An ACTIVE group of one vHSM and service of two instances."""

    policy_values: dict = {}

    def setUp(self):
        super().setUp()
        self.nodes = [self.add_node('n%d' % i) for i in range(2)]
        self.group = self.add_group(size=1)
        self.run_task('create_vhsm_group', self.group['id'])
        self.service = self.add_service(self.group['id'], instances=2)
        self.run_task('create_service', self.service['id'])
        # Figures must arrive after the fleet last changed.
        self.t0 = wf_base.utcnow() + secs(0.5)
        values = {'service_id': self.service['id'], 'project_id': 'p1',
                  'metric': RPS, 'lower': 5.0, 'upper': 50.0,
                  'add_instances': 1, 'remove_instances': 1,
                  'add_vhsms': 0, 'remove_vhsms': 0, 'min_instances': 1,
                  'max_instances': 4, 'min_vhsms': 1, 'max_vhsms': None,
                  'cooldown_seconds': 0, 'window_seconds': 10,
                  'enabled': True, 'generation': 0}
        values.update(self.policy_values)
        self.policy = self.db.create('scaling_policies', values)
        self.balancer = balancer.Balancer(self.db, self.scheduler,
                                          owner='conductor-1')

    def set_policy(self, **values):
        self.policy = self.db.update('scaling_policies', self.policy['id'],
                                     values)

    def instances(self, **filters) -> list[dict]:
        return self.db.list('service_instances', filters=dict(
            service_id=self.service['id'], **filters))

    def report(self, value, at: float, metric: str = RPS) -> None:
        """Every instance reports ``value`` at t0 + ``at`` seconds."""
        self.db.record_loads('service_instances', {
            i['id']: {metric: value} for i in self.instances()},
            at=self.t0 + secs(at))

    def run_at(self, at: float, balance=None) -> list[dict]:
        return (balance or self.balancer).run(now=self.t0 + secs(at))

    def reload(self) -> dict:
        self.policy = self.db.get('scaling_policies', self.policy['id'])
        return self.policy

    def scale_tasks(self) -> list[dict]:
        return self.db.list('tasks', filters={'action': balancer.ACTION})

    def carry_out(self, task: dict) -> None:
        """Run the recorded task's workflow and finish it."""
        ok, error = False, None
        try:
            workflows.get(task['action'])(self.workflow(task))
            ok = True
        except Exception as exc:
            error = wf_base.reason_of(exc)
            raise
        finally:
            self.db.finish_task(task['id'], 'test-conductor', succeeded=ok,
                                error=error)


class TestDecisions(BalancerTestCase):

    def test_above_the_band_scales_out(self):
        self.report(80, at=1)
        (task,) = self.run_at(2)
        self.assertEqual('scale_service', task['action'])
        self.assertEqual(('service', self.service['id'], states.PENDING),
                         (task['resource_type'], task['resource_id'],
                          task['state']))
        params = task['params']
        self.assertEqual({
            'direction': 'out', 'metric': RPS, 'value': 80, 'latest': 80,
            'highest': 80, 'lower': 5, 'upper': 50, 'window': 10,
            'points': 1, 'samples': 2, 'instances_before': 2,
            'instances_after': 3, 'vhsms_before': 1, 'vhsms_after': 1,
            'group_id': self.group['id'], 'policy_id': self.policy['id'],
            'recorded_by': 'conductor-1'},
            {k: v for k, v in params.items() if k != 'reason'})
        self.assertIn('requests_per_s 80 per instance over 10 s',
                      params['reason'])
        self.assertIn('instances 2 -> 3', params['reason'])
        service = self.db.get('services', self.service['id'])
        self.assertEqual((states.UPDATING, 3),
                         (service['state'], service['target_instances']))
        policy = self.reload()
        self.assertEqual(('scale_out', task['id']),
                         (policy['last_decision'], policy['last_task_id']))
        self.assertIsNotNone(policy['last_scaled_at'])
        self.carry_out(task)
        self.assertEqual(states.SUCCEEDED,
                         self.db.get('tasks', task['id'])['state'])
        self.assertEqual(states.ACTIVE,
                         self.db.get('services',
                                     self.service['id'])['state'])
        self.assertEqual(3, len(self.instances(state=states.ACTIVE)))

    def test_inside_the_band_holds(self):
        self.report(20, at=1)
        self.assertEqual([], self.run_at(2))
        policy = self.reload()
        self.assertEqual('hold', policy['last_decision'])
        self.assertIn('within the band [5, 50]', policy['last_reason'])
        self.assertEqual([[wf_base_ts(self.t0 + secs(1)), 20.0, 2]],
                         policy['pressure']['points'])
        self.assertEqual(1, policy['generation'])

    def test_a_spike_that_ended_is_not_sustained(self):
        # Window average above the bound, latest point back in the band.
        self.report(200, at=1)
        self.set_policy(add_instances=1, max_instances=2)  # at max: no act
        self.run_at(1.5)
        self.set_policy(max_instances=4)
        self.report(10, at=2)
        self.assertEqual([], self.run_at(2.5))
        self.assertIn('not sustained', self.reload()['last_reason'])
        # A spike that has only begun: latest above, average below.
        self.set_policy(pressure=None)
        for at, value in ((3, 10), (4, 10), (5, 10), (6, 70)):
            self.report(value, at=at)
            self.assertEqual([], self.run_at(at + 0.5))
        self.assertIn('not sustained', self.reload()['last_reason'])

    def test_points_follow_heartbeats_not_passes(self):
        self.report(20, at=1)
        for at in (1.5, 2, 2.5):
            self.run_at(at)
        self.assertEqual(1, len(self.reload()['pressure']['points']))

    def test_stale_figures_are_ignored(self):
        self.report(80, at=1)
        self.assertEqual([], self.run_at(12))  # window 10 s
        policy = self.reload()
        self.assertEqual('hold', policy['last_decision'])
        self.assertIn('no fresh load figures in the last 10 s',
                      policy['last_reason'])

    def test_figures_from_before_the_fleet_changed_are_ignored(self):
        self.report(80, at=1)
        # An admin's resize ended after the figures were taken.
        task = self.add_task('resize_service', self.service['id'])
        self.db.claim_task(task['id'], 'x', 60)
        self.db.finish_task(task['id'], 'x', succeeded=True)
        self.db.update('tasks', task['id'],
                       {'finished_at': self.t0 + secs(1.5)})
        self.assertEqual([], self.run_at(2))
        self.assertIn('no fresh load figures', self.reload()['last_reason'])

    def test_other_metrics(self):
        self.set_policy(metric='p95_ms', lower=10, upper=100)
        self.report(250.5, at=1, metric='p95_ms')
        (task,) = self.run_at(2)
        self.assertEqual(('p95_ms', 250.5), (task['params']['metric'],
                                             task['params']['value']))

    def test_disabled_policy_is_not_evaluated(self):
        self.set_policy(enabled=False)
        self.report(80, at=1)
        self.assertEqual([], self.run_at(2))
        self.assertIsNone(self.reload()['evaluated_at'])

    def test_service_not_active_holds(self):
        self.db.transition('services', self.service['id'],
                           states.RESOURCE_MACHINE, 'delete')
        self.report(80, at=1)
        self.assertEqual([], self.run_at(2))
        self.assertEqual('the service is DELETING',
                         self.reload()['last_reason'])

    def test_unsettled_fleet_holds(self):
        inst = self.instances()[0]
        self.db.transition('service_instances', inst['id'],
                           states.WORKLOAD_MACHINE, 'fail')
        self.report(80, at=1)
        self.assertEqual([], self.run_at(2))
        self.assertIn('1 of 2 instance(s) ACTIVE',
                      self.reload()['last_reason'])


def wf_base_ts(value: datetime.datetime) -> float:
    return round(balancer._ts(value), 3)


class TestBusyAndCooldown(BalancerTestCase):

    def test_open_task_on_the_service_holds(self):
        self.add_task('update_service_credentials', self.service['id'])
        self.report(80, at=1)
        self.assertEqual([], self.run_at(2))
        self.assertIn('a task is open', self.reload()['last_reason'])

    def test_open_task_on_the_group_holds(self):
        self.add_task('resize_vhsm_group', self.group['id'])
        self.report(80, at=1)
        self.assertEqual([], self.run_at(2))
        self.assertIn('a task is open', self.reload()['last_reason'])

    def test_no_stacking(self):
        self.report(80, at=1)
        self.assertEqual(1, len(self.run_at(2)))
        self.report(90, at=3)
        self.assertEqual([], self.run_at(4))
        self.assertEqual(1, len(self.scale_tasks()))

    def test_cooldown_counts_from_the_last_scaling(self):
        self.set_policy(cooldown_seconds=60,
                        last_scaled_at=self.t0 + secs(1.5))
        self.report(80, at=1)
        self.assertEqual([], self.run_at(2))
        self.assertIn('cooldown: 60 s left', self.reload()['last_reason'])
        self.report(80, at=50)
        self.assertEqual([], self.run_at(51))
        self.assertIn('cooldown: 11 s left', self.reload()['last_reason'])

    def test_cooldown_counts_from_the_end_of_the_last_task(self):
        self.set_policy(cooldown_seconds=60)
        task = self.add_task('reconcile_service', self.service['id'])
        self.db.claim_task(task['id'], 'x', 60)
        self.db.finish_task(task['id'], 'x', succeeded=True)
        self.t0 = wf_base.utcnow() + secs(0.5)
        self.report(80, at=1)
        self.assertEqual([], self.run_at(2))
        self.assertIn('cooldown:', self.reload()['last_reason'])
        # A credentials update changes no fleet: no cooldown from it.
        self.set_policy(cooldown_seconds=1)
        cred = self.add_task('update_service_credentials',
                             self.service['id'])
        self.db.claim_task(cred['id'], 'x', 60)
        self.db.finish_task(cred['id'], 'x', succeeded=True)
        self.assertEqual(1, len(self.run_at(3)))


class TestLimits(BalancerTestCase):

    def test_at_max_instances_says_so(self):
        self.set_policy(max_instances=2)
        self.report(80, at=1)
        with self.assertLogs(balancer.LOG.logger, 'WARNING') as logs:
            self.assertEqual([], self.run_at(2))
            self.report(85, at=3)
            self.assertEqual([], self.run_at(4))
        policy = self.reload()
        self.assertEqual('limited', policy['last_decision'])
        self.assertIn('nothing can change: instances at most '
                      'max_instances 2', policy['last_reason'])
        # Said once, not at every pass.
        self.assertEqual(1, len(logs.records))
        self.assertEqual([], self.scale_tasks())

    def test_steps_are_clamped_to_the_maximum(self):
        self.set_policy(add_instances=5)
        self.report(80, at=1)
        (task,) = self.run_at(2)
        self.assertEqual(4, task['params']['instances_after'])
        self.assertIn('limited: instances at most max_instances 4',
                      task['params']['reason'])

    def test_capacity_limits_with_a_clear_reason(self):
        # Two nodes of 4 instance slots, 2 used: room for 6, then none.
        self.set_policy(add_instances=10, max_instances=20)
        self.report(80, at=1)
        (task,) = self.run_at(2)
        self.assertEqual(8, task['params']['instances_after'])
        self.assertIn('room for 6 more instance(s) of 1 slot(s) each: 6 '
                      'free service instance slot(s) on 2 usable service '
                      'node(s)', task['params']['reason'])
        self.carry_out(task)
        self.db.update('nodes', self.nodes[1]['id'], {'enabled': False})
        self.report(80, at=3)
        self.assertEqual([], self.run_at(4))
        policy = self.reload()
        self.assertEqual('limited', policy['last_decision'])
        self.assertIn('room for 0 more instance(s) of 1 slot(s) each: 0 '
                      'free service instance slot(s) on 1 usable service '
                      'node(s) (of the others: 1 are disabled)',
                      policy['last_reason'])

    def test_replicas_need_slots_too(self):
        self.db.update('services', self.service['id'], {'replicas': 2})
        self.set_policy(add_instances=3, max_instances=10)
        self.report(80, at=1)
        (task,) = self.run_at(2)
        # 6 free slots, 3 per instance with its two replicas.
        self.assertEqual(4, task['params']['instances_after'])
        self.assertIn('room for 2 more instance(s) of 3 slot(s) each',
                      task['params']['reason'])

    def test_group_vhsms_are_scaled_too(self):
        self.set_policy(add_vhsms=2, remove_vhsms=1, max_vhsms=2)
        self.report(80, at=1)
        (task,) = self.run_at(2)
        self.assertEqual((1, 2), (task['params']['vhsms_before'],
                                  task['params']['vhsms_after']))
        self.assertIn('vHSMs at most max_vhsms 2', task['params']['reason'])
        group = self.db.get('vhsm_groups', self.group['id'])
        self.assertEqual((states.UPDATING, 2),
                         (group['state'], group['target_size']))
        self.compute.calls.clear()
        self.carry_out(task)
        group = self.db.get('vhsm_groups', self.group['id'])
        self.assertEqual(states.ACTIVE, group['state'])
        vhsms = self.db.list('vhsms', filters={'group_id': group['id']})
        self.assertEqual([states.ACTIVE] * 2, [v['state'] for v in vhsms])
        # The group grew first: the new instance started with both.
        names = [c[0] for c in self.compute.calls]
        self.assertLess(names.index('start_vhsm'),
                        names.index('start_instance'))
        started = self.compute.methods('start_instance')[0][2]
        self.assertEqual(2, len(started['vhsm_endpoints']))
        for inst in self.instances():
            self.assertEqual(2, len(self.db.list(
                'associations', filters={'instance_id': inst['id']})))

    def test_vhsm_capacity(self):
        self.set_policy(add_vhsms=20, remove_vhsms=1, max_vhsms=50,
                        add_instances=0)
        self.report(80, at=1)
        (task,) = self.run_at(2)
        # Two device nodes of 4 vHSM slots, 1 used.
        self.assertEqual(8, task['params']['vhsms_after'])
        self.assertEqual(2, task['params']['instances_after'])

    def test_group_not_active_holds(self):
        # Instances converge only with an ACTIVE group.
        self.db.transition('vhsm_groups', self.group['id'],
                           states.RESOURCE_MACHINE, 'resize')
        self.report(80, at=1)
        self.assertEqual([], self.run_at(2))
        self.assertEqual('its vHSM group is UPDATING',
                         self.reload()['last_reason'])


class TestScaleIn(BalancerTestCase):

    def low(self, upto: float, value: float = 1.0, step: float = 2.0):
        at = 1.0
        found = []
        while at <= upto:
            self.report(value, at=at)
            found += self.run_at(at + 0.5)
            at += step
        return found

    def test_needs_a_whole_window_below_the_band(self):
        self.assertEqual([], self.low(9))
        self.assertIn('waiting for a whole window',
                      self.reload()['last_reason'])
        (task,) = self.low(13)
        self.assertEqual(('in', 2, 1), (task['params']['direction'],
                                        task['params']['instances_before'],
                                        task['params']['instances_after']))
        self.carry_out(task)
        self.assertEqual(1, len(self.instances()))
        self.assertEqual(states.ACTIVE,
                         self.db.get('services',
                                     self.service['id'])['state'])

    def test_one_point_in_the_band_holds(self):
        self.low(7)
        self.report(6, at=9)
        self.assertEqual([], self.run_at(9.5))
        self.assertEqual([], self.low(11))
        self.assertIn('within the band', self.reload()['last_reason'])

    def test_never_below_the_minimum(self):
        self.set_policy(min_instances=2)
        self.assertEqual([], self.low(13))
        policy = self.reload()
        self.assertEqual('limited', policy['last_decision'])
        self.assertIn('instances at least min_instances 2',
                      policy['last_reason'])

    def test_no_scale_in_that_predicts_a_scale_out(self):
        # 4 per instance on two instances is 8 on one: above upper 6.
        self.set_policy(lower=5, upper=6)
        self.assertEqual([], self.low(13, value=4))
        policy = self.reload()
        self.assertEqual('limited', policy['last_decision'])
        self.assertIn('removing 1 instance(s) would raise requests_per_s '
                      'to 8, above upper 6', policy['last_reason'])

    def test_group_vhsms_go_too_but_not_below_the_minimum(self):
        self.db.update('vhsm_groups', self.group['id'], {'target_size': 1})
        self.set_policy(remove_vhsms=1, min_vhsms=1)
        (task,) = self.low(13)
        self.assertIn('vHSMs at least min_vhsms 1', task['params']['reason'])
        self.assertEqual((1, 1), (task['params']['vhsms_before'],
                                  task['params']['vhsms_after']))

    def test_group_shrinks_after_the_instances(self):
        self.run_task('resize_vhsm_group', self.group['id'])
        self.db.update('vhsm_groups', self.group['id'], {'target_size': 2})
        self.db.transition('vhsm_groups', self.group['id'],
                           states.RESOURCE_MACHINE, 'resize')
        self.run_task('resize_vhsm_group', self.group['id'])
        self.t0 = wf_base.utcnow() + secs(0.5)
        self.set_policy(remove_vhsms=1)
        (task,) = self.low(13)
        self.assertEqual((2, 1), (task['params']['vhsms_before'],
                                  task['params']['vhsms_after']))
        self.compute.calls.clear()
        self.carry_out(task)
        stops = [c[2]['workload_id'] for c in self.compute.methods(
            'stop_workload')]
        self.assertEqual(2, len(stops))
        self.assertEqual(1, len(self.db.list(
            'vhsms', filters={'group_id': self.group['id']})))
        (inst,) = self.instances()
        self.assertEqual(1, len(self.db.list(
            'associations', filters={'instance_id': inst['id']})))


class TestSeveralConductors(BalancerTestCase):

    def test_two_conductors_racing_record_one_task(self):
        other = balancer.Balancer(self.db, self.scheduler,
                                  owner='conductor-2')
        self.report(80, at=1)
        # Both read everything before either writes.
        barrier = threading.Barrier(2, timeout=10)
        real = balancer.evaluate

        def evaluate(snap, now):
            decision = real(snap, now)
            barrier.wait()
            return decision

        found = {}
        with mock.patch.object(balancer, 'evaluate', evaluate):
            threads = [threading.Thread(
                target=lambda b=b: found.setdefault(b.owner,
                                                    self.run_at(2, b)))
                for b in (self.balancer, other)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=20)
        self.assertEqual(1, len(self.scale_tasks()))
        self.assertEqual([0, 1], sorted(len(v) for v in found.values()))
        self.assertEqual(1, self.reload()['generation'])

    def test_a_policy_deleted_meanwhile_is_left_alone(self):
        self.report(80, at=1)
        real = balancer.evaluate

        def evaluate(snap, now):
            self.db.delete('scaling_policies', self.policy['id'])
            return real(snap, now)

        with mock.patch.object(balancer, 'evaluate', evaluate):
            self.assertEqual([], self.run_at(2))
        self.assertEqual([], self.scale_tasks())
        self.assertEqual(2, self.db.get('services', self.service['id'])[
            'target_instances'])

    def test_an_admin_getting_there_first_fails_the_task(self):
        self.report(80, at=1)
        real = balancer.evaluate

        def evaluate(snap, now):
            decision = real(snap, now)
            # An admin's resize lands between the read and the write.
            self.db.transition('services', self.service['id'],
                               states.RESOURCE_MACHINE, 'resize')
            return decision

        with mock.patch.object(balancer, 'evaluate', evaluate):
            self.assertEqual([], self.run_at(2))
        (task,) = self.scale_tasks()
        self.assertEqual(states.FAILED, task['state'])
        self.assertIn('not started', task['error'])
        self.assertEqual(2, self.db.get('services', self.service['id'])[
            'target_instances'])

    def test_a_policy_replaced_meanwhile_wins(self):
        self.report(80, at=1)
        real = balancer.evaluate

        def evaluate(snap, now):
            decision = real(snap, now)
            self.db.update('scaling_policies', self.policy['id'],
                           {'generation': 7, 'upper': 500})
            return decision

        with mock.patch.object(balancer, 'evaluate', evaluate):
            self.assertEqual([], self.run_at(2))
        self.assertEqual([], self.scale_tasks())


class TestWorkflow(BalancerTestCase):

    def test_failed_scale_out_is_rolled_back(self):
        self.compute.failing_hosts.update({'n0', 'n1'})
        self.report(80, at=1)
        (task,) = self.run_at(2)
        self.assertRaises(wf_base.WorkflowError, self.carry_out, task)
        task = self.db.get('tasks', task['id'])
        self.assertEqual(states.FAILED, task['state'])
        self.assertIn('scale-out failed, back to 2', task['error'])
        service = self.db.get('services', self.service['id'])
        self.assertEqual((states.ACTIVE, 2), (service['state'],
                                              service['target_instances']))
        self.assertIn('scale-out failed', service['status_reason'])
        self.assertEqual(2, len(self.instances()))
        self.assertIsNotNone(service['endpoint_host'])

    def test_failed_vhsm_scale_out_rolls_back_both(self):
        self.set_policy(add_vhsms=1, max_vhsms=2)
        self.report(80, at=1)
        (task,) = self.run_at(2)
        self.compute.failing_hosts.update({'n0', 'n1'})
        self.assertRaises(wf_base.WorkflowError, self.carry_out, task)
        group = self.db.get('vhsm_groups', self.group['id'])
        self.assertEqual((states.ACTIVE, 1),
                         (group['state'], group['target_size']))
        service = self.db.get('services', self.service['id'])
        self.assertEqual((states.ACTIVE, 2), (service['state'],
                                              service['target_instances']))


class TestPeriodic(BalancerTestCase):

    def test_balance_starts_the_tasks_it_records(self):
        runner = mock.Mock(owner='conductor-1')
        passes = periodic.PeriodicTasks(
            self.db, runner, interval=60, heartbeat_timeout=30,
            balancer=self.balancer, balancer_interval=1)
        self.report(80, at=-0.4)
        tasks = passes.balance()
        self.assertEqual([t['id'] for t in tasks],
                         [c.args[0] for c in runner.submit.call_args_list])
        self.assertEqual(1, len(tasks))

    def test_without_a_balancer(self):
        passes = periodic.PeriodicTasks(self.db, mock.Mock(), interval=60,
                                        heartbeat_timeout=30)
        self.assertEqual([], passes.balance())


class TestHeartbeatLoad(base.ConductorTestCase):

    def test_figures_are_stored_per_workload(self):
        node = self.add_node('n1')
        group = self.add_group(size=2, state=states.ACTIVE)
        rows = [self.db.create('vhsms', {
            'group_id': group['id'], 'node_id': node['id'],
            'state': states.ACTIVE}) for _ in range(3)]
        statuses = [
            {'workload_id': rows[0]['id'], 'kind': 'vhsm',
             'state': 'running', 'healthy': True,
             'load': {RPS: 12.5, 'in_flight': 2, 'p95_ms': 4.0,
                      'cpu': 0.25, 'extra': 'ignored', 'flag': True}},
            {'workload_id': rows[1]['id'], 'kind': 'vhsm',
             'state': 'exited', 'healthy': False, 'load': {RPS: 3}},
            {'workload_id': rows[2]['id'], 'kind': 'vhsm',
             'state': 'running', 'healthy': True, 'load': {}},
        ]
        before = wf_base.utcnow()
        nodes.heartbeat(self.db, 'n1', statuses, {})
        got = [self.db.get('vhsms', r['id']) for r in rows]
        self.assertEqual({RPS: 12.5, 'in_flight': 2, 'p95_ms': 4.0,
                          'cpu': 0.25}, got[0]['load'])
        self.assertGreaterEqual(got[0]['load_updated_at'], before)
        # A measurement is not a change of the row.
        self.assertEqual(rows[0]['updated_at'], got[0]['updated_at'])
        self.assertEqual([None, None], [g['load'] for g in got[1:]])

    def test_no_figures_no_write(self):
        node = self.add_node('n1')
        with mock.patch.object(self.db, 'record_loads',
                               wraps=self.db.record_loads) as spy:
            nodes.heartbeat(self.db, 'n1', [], {})
        self.assertEqual(2, spy.call_count)
        self.assertEqual(0, self.db.record_loads('vhsms', {}))
        self.assertIsNotNone(node)
