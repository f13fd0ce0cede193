"""The conductor through a broker or database outage.

While heartbeats cannot reach the conductor (the bus is down, or the
control database refuses connections) every node looks silent although
none is; the liveness pass must not call them DOWN, or every workload
would be failed and rebuilt once the outage ends.
"""

# Before oslo.messaging, which would select oslo.service's eventlet
# backend.
from cryptocloud.common import threading_backend  # noqa: F401

# isort: split

import datetime
from unittest import mock

import fixtures
import oslo_messaging as messaging
from oslo_db import exception as db_exc

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor import manager
from cryptocloud.conductor import nodes
from cryptocloud.conductor import periodic
from cryptocloud.conductor.scheduler import scheduler as scheduler_mod
from cryptocloud.conductor.workflows import base as wf_base
from cryptocloud.tests.unit.conductor import base

TIMEOUT = 30


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TestLivenessAfterOutages(base.ConductorTestCase):

    def setUp(self):
        super().setUp()
        self.node = self.add_node('n1', roles=['device'])
        # Silent for longer than the timeout, as every node is when the
        # bus or the database comes back.
        self._age_heartbeat(TIMEOUT + 60)
        self.clock = FakeClock()
        self.bus = mock.Mock(return_value={'ok': True})
        self.passes = periodic.PeriodicTasks(
            self.db, mock.Mock(owner='c1'), interval=60,
            heartbeat_timeout=TIMEOUT, bus_check=self.bus,
            clock=self.clock)

    def _age_heartbeat(self, seconds: int) -> None:
        self.db.update('nodes', self.node['id'], {
            'last_heartbeat': wf_base.utcnow()
            - datetime.timedelta(seconds=seconds)})

    def _state(self) -> str:
        return self.db.get('nodes', self.node['id'])['state']

    def test_not_before_a_whole_timeout_of_hearing(self):
        # Just started: heartbeats sent while no conductor ran were lost.
        self.assertEqual([], self.passes.check_nodes())
        self.clock.advance(TIMEOUT - 1)
        self.assertEqual([], self.passes.check_nodes())
        self.assertEqual(states.NODE_UP, self._state())
        self.clock.advance(1)
        down = self.passes.check_nodes()
        self.assertEqual([self.node['id']], [n['id'] for n in down])
        self.assertEqual(states.NODE_DOWN, self._state())

    def test_nothing_marked_while_the_bus_is_down(self):
        self.passes.check_nodes()
        self.clock.advance(TIMEOUT - 5)
        self.bus.side_effect = messaging.MessagingTimeout('no reply')
        for _ in range(5):
            self.clock.advance(TIMEOUT)
            self.assertEqual([], self.passes.check_nodes())
        self.assertEqual(states.NODE_UP, self._state())
        # The bus is back: the nodes get a whole timeout to be heard.
        self.bus.side_effect = None
        self.assertEqual([], self.passes.check_nodes())
        self.clock.advance(TIMEOUT / 2)
        self._age_heartbeat(0)  # the node reported meanwhile
        self.clock.advance(TIMEOUT / 2)
        self.assertEqual([], self.passes.check_nodes())
        self.assertEqual(states.NODE_UP, self._state())
        self.assertEqual(8, self.bus.call_count)

    def test_a_silent_node_is_still_found_after_the_bus_is_back(self):
        self.bus.side_effect = messaging.MessagingTimeout('no reply')
        self.passes.check_nodes()
        self.bus.side_effect = None
        self.passes.check_nodes()
        self.clock.advance(TIMEOUT)
        self.assertEqual([self.node['id']],
                         [n['id'] for n in self.passes.check_nodes()])

    def test_database_outage_starts_the_wait_again(self):
        self.passes.check_nodes()
        self.clock.advance(TIMEOUT - 1)
        def recover_tasks():
            raise db_exc.DBConnectionError('refused')
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.conductor.periodic.PeriodicTasks.recover_tasks',
            lambda _self: recover_tasks()))
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.conductor.periodic.PeriodicTasks.reconcile',
            lambda _self: []))
        # This pass finds the database gone (in a later step).
        self.passes.run_once()
        self.clock.advance(1)
        self.assertEqual([], self.passes.check_nodes())
        self.assertEqual(states.NODE_UP, self._state())
        self.clock.advance(TIMEOUT)
        self.assertEqual(1, len(self.passes.check_nodes()))

    def test_no_task_started_while_the_bus_is_down(self):
        ran = []
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.conductor.periodic.PeriodicTasks.recover_tasks',
            lambda _self: ran.append('recover_tasks')))
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.conductor.periodic.PeriodicTasks.reconcile',
            lambda _self: ran.append('reconcile')))
        self.bus.side_effect = messaging.MessageDeliveryFailure('refused')
        self.passes.run_once()
        self.assertEqual([], ran)
        self.bus.side_effect = None
        self.passes.run_once()
        self.assertEqual(['recover_tasks', 'reconcile'], ran)

    def test_heartbeats_arriving_spare_the_round_trip(self):
        hearing = self.passes.hearing
        hearing.arrived()
        self.passes.check_nodes()
        self.assertEqual(0, self.bus.call_count)
        # Quiet for a third of the timeout: the pass asks the bus.
        self.clock.advance(TIMEOUT / 3)
        self.passes.check_nodes()
        self.assertEqual(1, self.bus.call_count)

    def test_a_failed_round_trip_counts_only_after_heartbeats_stop(self):
        self.bus.side_effect = messaging.MessagingTimeout('no reply')
        self.passes.hearing.arrived()
        self.clock.advance(TIMEOUT / 3 - 1)
        self.assertEqual([], self.passes.check_nodes())
        self.assertTrue(self.passes.hearing.now())
        self.clock.advance(1)
        self.assertEqual([], self.passes.check_nodes())
        self.assertFalse(self.passes.hearing.now())
        # The next heartbeat shows the bus carries them again, but the
        # silent node still gets a whole timeout to be heard.
        self.passes.hearing.arrived()
        self.assertTrue(self.passes.hearing.now())
        self.clock.advance(TIMEOUT - 1)
        self.passes.hearing.arrived()
        self.assertEqual([], self.passes.check_nodes())
        self.clock.advance(1)
        self.assertEqual(1, len(self.passes.check_nodes()))
        self.assertEqual(1, self.bus.call_count)

    def test_without_a_bus_check(self):
        # The all-in-one's embedded conductor, for instance.
        passes = periodic.PeriodicTasks(
            self.db, mock.Mock(owner='c1'), interval=60,
            heartbeat_timeout=TIMEOUT, clock=self.clock)
        self.assertEqual([], passes.check_nodes())
        self.clock.advance(TIMEOUT)
        self.assertEqual(1, len(passes.check_nodes()))


class TestSchedulingAfterOutages(base.ConductorTestCase):
    """Work placed while the conductor has not heard for a whole timeout
    goes by the nodes' states, not the age of their heartbeats."""

    def setUp(self):
        super().setUp()
        self.node = self.add_node('n1', roles=['device'])
        self.db.update('nodes', self.node['id'], {
            'last_heartbeat': wf_base.utcnow()
            - datetime.timedelta(seconds=TIMEOUT + 60)})
        self.clock = FakeClock()
        self.hearing = nodes.Hearing(TIMEOUT, clock=self.clock)
        self.scheduler = scheduler_mod.Scheduler(
            self.db, heartbeat_timeout=TIMEOUT, hearing=self.hearing)

    def test_stale_but_up_node_is_used_until_heard_long_enough(self):
        [node] = self.scheduler.select_hosts('vhsm', 1)
        self.assertEqual(self.node['id'], node['id'])
        self.hearing.heard()
        self.clock.advance(TIMEOUT - 1)
        self.assertEqual(1, len(self.scheduler.select_hosts('vhsm', 1)))
        self.clock.advance(1)
        exc = self.assertRaises(exception.NoValidHost,
                                self.scheduler.select_hosts, 'vhsm', 1)
        self.assertIn('no heartbeat within %d s' % TIMEOUT, str(exc))
        # Deaf again (the bus is down): back to the node's state.
        self.hearing.deaf('test')
        self.assertEqual(1, len(self.scheduler.select_hosts('vhsm', 1)))
        self.assertEqual(1, self.scheduler.free_slots('vhsm')['nodes'])

    def test_a_down_node_is_never_used(self):
        self.db.mark_silent_nodes_down(wf_base.utcnow())
        self.assertEqual(states.NODE_DOWN,
                         self.db.get('nodes', self.node['id'])['state'])
        self.assertRaises(exception.NoValidHost,
                          self.scheduler.select_hosts, 'vhsm', 1)

    def test_without_hearing_heartbeat_ages_always_count(self):
        scheduler = scheduler_mod.Scheduler(self.db,
                                            heartbeat_timeout=TIMEOUT)
        self.assertRaises(exception.NoValidHost, scheduler.select_hosts,
                          'vhsm', 1)


class TestManagerWithoutDatabase(base.ConductorTestCase):

    def setUp(self):
        super().setUp()
        self.add_node('n1')
        self.mgr = manager.ConductorManager(self.db, runner=None)

    def test_ping(self):
        self.assertEqual({'ok': True}, self.mgr.ping({}))

    def _database_down(self, method: str) -> None:
        self.useFixture(fixtures.MockPatchObject(
            self.db, method, side_effect=db_exc.DBConnectionError(
                'Can\'t connect to MySQL server')))

    def _unavailable(self, func, *args) -> exception.ServiceUnavailable:
        # The RPC server sees an ExpectedException (logged without a
        # traceback); the caller gets the ServiceUnavailable inside.
        exc = self.assertRaises(messaging.ExpectedException, func, {},
                                *args)
        self.assertIsInstance(exc.exc_info[1], exception.ServiceUnavailable)
        return exc.exc_info[1]

    def test_heartbeat_is_service_unavailable(self):
        self._database_down('heartbeat_node')
        exc = self._unavailable(self.mgr.heartbeat, 'n1', [], {})
        self.assertIn('control database cannot be reached', str(exc))

    def test_register_is_service_unavailable(self):
        self._database_down('register_node')
        self._unavailable(self.mgr.register_node, 'n2', '127.0.0.1',
                          ['device'], 1, 0)

    def test_a_recorded_heartbeat_is_heard(self):
        hearing = nodes.Hearing(TIMEOUT)
        mgr = manager.ConductorManager(self.db, runner=None,
                                       hearing=hearing)
        mgr.heartbeat({}, 'n1', [], {})
        self.assertTrue(hearing.arrived_recently())
        self.assertTrue(hearing.now())

    def test_an_unrecorded_heartbeat_is_not(self):
        hearing = nodes.Hearing(TIMEOUT)
        mgr = manager.ConductorManager(self.db, runner=None,
                                       hearing=hearing)
        self._database_down('heartbeat_node')
        self._unavailable(mgr.heartbeat, 'n1', [], {})
        self.assertFalse(hearing.arrived_recently())
        self.assertFalse(hearing.now())

    def test_other_errors_are_unchanged(self):
        self.assertRaises(exception.NotFound, self.mgr.heartbeat, {}, 'nx',
                          [], {})
