"""The conductor's periodic passes, on one thread.

Every ``[conductor] periodic_interval`` seconds: node liveness, recovery
of orphaned tasks, and reconciliation of desired counts.  Each pass is
safe with several conductors: node and workload changes are conditional
updates, and tasks run only under a claimed lease.

The pressure balancer (``balancer.py``) runs on its own thread every
``[conductor] balancer_interval`` seconds, so a slow reconcile pass
never delays a scale-out.

A node is called silent only when the conductor could have heard it
(``nodes.Hearing``).  Heartbeats arriving show that it can; when none
came lately, the liveness pass checks the conductor's own round trip
through the bus (``bus_check``).  A failed round trip, or a pass that
finds the control database unreachable, makes it deaf; after such an
outage, and
after the conductor starts, the nodes get a whole ``heartbeat_timeout``
of working bus and database to be heard again before any is marked
DOWN.  Otherwise a broker restart longer than the timeout would fail
every workload and rebuild them all.
"""

import threading
import time
from collections.abc import Callable

from oslo_db import exception as db_exc
from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.conductor import nodes
from cryptocloud.conductor import reconciler
from cryptocloud.conductor import workflows
from cryptocloud.conductor.workflows import base

LOG = logging.getLogger(__name__)


class PeriodicTasks:
    """Runs the periodic passes of one conductor."""

    def __init__(self, db, runner, *, interval: float,
                 heartbeat_timeout: int, balancer=None,
                 balancer_interval: float | None = None,
                 bus_check: Callable[[], object] | None = None,
                 hearing: nodes.Hearing | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._runner = runner
        self._interval = interval
        self._heartbeat_timeout = heartbeat_timeout
        self._balancer = balancer
        self._balancer_interval = balancer_interval or interval
        self._bus_check = bus_check
        # Shared with the scheduler, which trusts heartbeat ages only
        # when this says they mean something.
        self.hearing = hearing or nodes.Hearing(heartbeat_timeout,
                                                clock=clock)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop,
                                        name='conductor-periodic',
                                        daemon=True)
        self._balancer_thread = threading.Thread(
            target=self._balance_loop, name='conductor-balancer',
            daemon=True)

    def start(self) -> None:
        """Start the periodic thread (and the balancer's)."""
        self._thread.start()
        if self._balancer is not None:
            self._balancer_thread.start()

    def stop(self) -> None:
        """Stop after the current pass."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)
        if self._balancer_thread.is_alive():
            self._balancer_thread.join(timeout=self._balancer_interval + 5)

    def _balance_loop(self) -> None:
        while not self._stopping.wait(self._balancer_interval):
            self.balance()

    def balance(self) -> list[dict]:
        """Apply the scaling policies: start each scale task recorded."""
        if self._balancer is None:
            return []
        try:
            tasks = self._balancer.run()
        except Exception:  # noqa: BLE001 - next pass tries again
            LOG.exception('Periodic task balance failed.')
            return []
        for task in tasks:
            self._runner.submit(task['id'])
        return tasks

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval):
            self.run_once()

    def run_once(self) -> None:
        """One pass of every periodic task; a failing one spares the rest.

        While the bus is down (``check_nodes`` found no round trip) no
        task is started: its calls to compute nodes would wait for the
        broker and then, sent before the nodes' queues are declared
        again, be lost and wait out ``rpc_timeout``.
        """
        for step in (self.check_nodes, self.recover_tasks, self.reconcile):
            if step != self.check_nodes and not self.hearing.now():
                LOG.debug('Periodic task %s skipped: heartbeats cannot '
                          'reach this conductor.', step.__name__)
                continue
            try:
                step()
            except db_exc.DBConnectionError as exc:
                # Heartbeats cannot be recorded either.
                self.hearing.deaf('the control database is unreachable: %s'
                                  % type(exc.inner_exception
                                         or exc).__name__)
                LOG.warning('Periodic task %s failed: the control '
                            'database is unreachable.', step.__name__)
            except Exception:  # noqa: BLE001 - next pass tries again
                LOG.exception('Periodic task %s failed.', step.__name__)

    def check_hearing(self) -> bool:
        """Whether heartbeats could reach this conductor for a whole
        ``heartbeat_timeout``, so that a silent node is really silent."""
        if (self._bus_check is not None
                and not self.hearing.arrived_recently()):
            try:
                self._bus_check()
            except Exception as exc:  # noqa: BLE001 - any failure is deaf
                self.hearing.deaf('no round trip through the message '
                                  'bus: %s' % type(exc).__name__)
                return False
        self.hearing.heard()
        return self.hearing.long_enough()

    def check_nodes(self) -> list[dict]:
        """Mark silent nodes DOWN and their workloads ERROR; a node that
        went down takes its primaries with it, so failover starts now.

        Does nothing until :meth:`check_hearing`: a node is not silent
        when its heartbeats could not arrive.
        """
        if not self.check_hearing():
            return []
        down = nodes.check_liveness(self._db, base.utcnow(),
                                    self._heartbeat_timeout)
        if down:
            for task in reconciler.record_failovers(self._db,
                                                    self._runner.owner):
                self._runner.submit(task['id'])
        return down

    def recover_tasks(self, at_start: bool = False) -> list[str]:
        """Run PENDING tasks nobody took and RUNNING ones whose owner died.

        Workflows converge, so re-running a half-done one finishes it.  A
        task no workflow can run is failed with the reason.  ``at_start``:
        this conductor has just started, so the tasks still held in its
        name were held by its previous run, which is dead: they are
        resumed now rather than when their leases run out.  (Conductor
        host names are unique, as each serves RPC on its own.)
        """
        taken = []
        for task in self._db.orphaned_tasks(
                base.utcnow(),
                restarted_owner=self._runner.owner if at_start else None):
            if task['action'] not in workflows.ACTIONS:
                try:
                    self._db.finish_task(
                        task['id'], None, succeeded=False,
                        error=base.one_line(
                            'unknown task action %r; cannot run or resume '
                            'it' % task['action']))
                except exception.InvalidState:
                    pass
                continue
            if self._runner.submit(task['id']):
                LOG.info('Recovered task %s (%s, was %s).', task['id'],
                         task['action'], task['state'])
                taken.append(task['id'])
        return taken

    def reconcile(self) -> list[dict]:
        """Record and start a reconcile task for each drifted resource."""
        tasks = reconciler.record_tasks(self._db, self._runner.owner)
        for task in tasks:
            self._runner.submit(task['id'])
        return tasks
