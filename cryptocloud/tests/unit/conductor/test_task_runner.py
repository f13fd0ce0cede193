"""Claiming, leases, the bounded pool and recovery of orphaned tasks."""

import datetime
import threading

from cryptocloud.common import states
from cryptocloud.conductor import manager
from cryptocloud.conductor import periodic
from cryptocloud.conductor import task_runner
from cryptocloud.conductor import workflows
from cryptocloud.tests.unit.conductor import base


class TestTaskRunner(base.ConductorTestCase):

    def setUp(self):
        super().setUp()
        self.add_node('n1')
        self.add_node('n2')

    def runner(self, owner='c1', workers=4, lease=60):
        runner = task_runner.TaskRunner(
            self.db, self.compute, self.scheduler, owner=owner,
            workers=workers, lease_seconds=lease, provision_timeout=5,
            poll_interval=0.01)
        runner.start()
        self.addCleanup(runner.stop)
        return runner

    def test_do_task_runs_to_success(self):
        group = self.add_group(size=2)
        task = self.add_task('create_vhsm_group', group['id'])
        mgr = manager.ConductorManager(self.db, self.runner())
        self.assertIsNone(mgr.do_task({}, task['id']))
        task = self.wait_task(task['id'])
        self.assertEqual(states.SUCCEEDED, task['state'])
        self.assertIsNone(task['error'])
        self.assertIsNone(task['lease_expires_at'])
        self.assertEqual('c1', task['owner'])

    def test_failure_is_one_line(self):
        group = self.add_group(size=50)
        task = self.add_task('create_vhsm_group', group['id'])
        self.runner().submit(task['id'])
        task = self.wait_task(task['id'])
        self.assertEqual(states.FAILED, task['state'])
        self.assertIn('No valid host was found', task['error'])
        self.assertNotIn('\n', task['error'])
        self.assertNotIn('Traceback', task['error'])

    def test_unexpected_exception_becomes_failed(self):
        self.patch(workflows, 'ACTIONS', {'boom': self._boom})
        task = self.add_task('boom', 'r1')
        self.runner().submit(task['id'])
        task = self.wait_task(task['id'])
        self.assertEqual(states.FAILED, task['state'])
        self.assertEqual('ZeroDivisionError: bad luck on two lines',
                         task['error'])

    @staticmethod
    def _boom(wf):
        raise ZeroDivisionError('bad luck\non two lines')

    def test_unknown_action_fails(self):
        task = self.add_task('make_coffee', 'r1')
        self.runner().submit(task['id'])
        task = self.wait_task(task['id'])
        self.assertIn("unknown task action 'make_coffee'", task['error'])

    def test_two_conductors_race_for_one_task(self):
        release = threading.Event()
        ran = []

        def slow(wf):
            ran.append(wf.task['owner'])
            release.wait(5)
        self.patch(workflows, 'ACTIONS', {'slow': slow})
        task = self.add_task('slow', 'r1')
        r1, r2 = self.runner('c1'), self.runner('c2')
        results = []
        threads = [threading.Thread(
            target=lambda r=r: results.append(r.submit(task['id'])))
            for r in (r1, r2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        release.set()
        task = self.wait_task(task['id'])
        self.assertEqual([False, True], sorted(results))
        self.assertEqual(1, len(ran))
        self.assertEqual(ran[0], task['owner'])
        self.assertEqual(states.SUCCEEDED, task['state'])

    def test_full_pool_leaves_task_pending(self):
        release = threading.Event()
        self.patch(workflows, 'ACTIONS',
                   {'slow': lambda wf: release.wait(5)})
        runner = self.runner(workers=1)
        first = self.add_task('slow', 'r1')
        second = self.add_task('slow', 'r2')
        self.assertTrue(runner.submit(first['id']))
        self.assertFalse(runner.submit(second['id']))
        self.assertEqual(states.PENDING,
                         self.db.get('tasks', second['id'])['state'])
        release.set()
        self.wait_task(first['id'])
        # A free worker: the periodic pass would now take it.
        self.assertTrue(runner.submit(second['id']))
        self.assertEqual(states.SUCCEEDED,
                         self.wait_task(second['id'])['state'])

    def test_lease_is_renewed_and_loss_stops_the_workflow(self):
        seen = threading.Event()
        lost = []

        def watch(wf):
            seen.set()
            while not wf.lease.lost:
                threading.Event().wait(0.01)
            lost.append(True)
            wf.check()
        self.patch(workflows, 'ACTIONS', {'watch': watch})
        runner = self.runner()
        task = self.add_task('watch', 'r1')
        runner.submit(task['id'])
        seen.wait(5)
        before = self.db.get('tasks', task['id'])['lease_expires_at']
        threading.Event().wait(0.01)
        runner.renew_leases()
        self.assertGreater(self.db.get('tasks', task['id'])
                           ['lease_expires_at'], before)
        # Another conductor takes the task over (the lease ran out).
        self.db.finish_task(task['id'], None, succeeded=False,
                            error='taken over')
        runner.renew_leases()
        for _ in range(500):
            if not runner.running:
                break
            threading.Event().wait(0.01)
        self.assertEqual([True], lost)
        self.assertEqual('taken over', self.db.get('tasks',
                                                   task['id'])['error'])

    def test_recovery_resumes_a_dead_conductors_task(self):
        group = self.add_group(size=2)
        task = self.add_task('create_vhsm_group', group['id'])
        # Conductor "dead" claimed it, created one vHSM row, and died.
        self.db.claim_task(task['id'], 'dead', 5)
        self.db.create('vhsms', {'group_id': group['id'],
                                 'node_id': self.db.list('nodes')[0]['id'],
                                 'state': states.BUILDING})
        runner = self.runner('c2')
        passes = periodic.PeriodicTasks(self.db, runner, interval=60,
                                        heartbeat_timeout=30)
        self.assertEqual([], passes.recover_tasks())  # lease still live
        future = datetime.datetime.now(datetime.UTC).replace(
            tzinfo=None) + datetime.timedelta(seconds=10)
        orphans = self.db.orphaned_tasks(future)
        self.assertEqual([task['id']], [t['id'] for t in orphans])
        # Expire the lease for real, then let recovery take it.
        self.db.claim_task(task['id'], 'dead', -1)
        self.assertEqual([task['id']], passes.recover_tasks())
        task = self.wait_task(task['id'])
        self.assertEqual(states.SUCCEEDED, task['state'])
        self.assertEqual('c2', task['owner'])
        self.assertEqual(2, self.db.count('vhsms',
                                          {'group_id': group['id']}))

    def test_restarted_conductor_resumes_its_own_tasks_at_once(self):
        group = self.add_group(size=1)
        task = self.add_task('create_vhsm_group', group['id'])
        # "c1" claimed it with a long lease, then was killed.
        self.db.claim_task(task['id'], 'c1', 600)
        passes = periodic.PeriodicTasks(self.db, self.runner('c1'),
                                        interval=60, heartbeat_timeout=30)
        # A periodic pass leaves a live lease alone; the start-up pass
        # knows that no task of c1 is running yet.
        self.assertEqual([], passes.recover_tasks())
        self.assertEqual([task['id']], passes.recover_tasks(at_start=True))
        task = self.wait_task(task['id'])
        self.assertEqual(states.SUCCEEDED, task['state'])
        self.assertEqual('c1', task['owner'])

    def test_recovery_fails_a_task_it_cannot_run(self):
        task = self.add_task('make_coffee', 'r1')
        self.db.claim_task(task['id'], 'dead', -1)
        passes = periodic.PeriodicTasks(self.db, self.runner(), interval=60,
                                        heartbeat_timeout=30)
        passes.recover_tasks()
        task = self.db.get('tasks', task['id'])
        self.assertEqual(states.FAILED, task['state'])
        self.assertIn('cannot run or resume', task['error'])
