"""The conductor's RPC endpoint (topic ``cryptocloud-conductor``).

Thin on purpose: each method hands its work to the task runner or to the
node module and returns at once.  Long work never runs on the RPC thread.
"""

import functools

import oslo_messaging as messaging
from oslo_db import exception as db_exc

from cryptocloud.common import exception
from cryptocloud.conductor import nodes
from cryptocloud.conductor import reconciler
from cryptocloud.conductor import rpcapi
from cryptocloud.conductor.workflows import workloads as workloads_wf

RPC_API_VERSION = rpcapi.RPC_API_VERSION


def _database_required(func):
    """Answer ServiceUnavailable while the control database is down.

    The caller (a compute node's heartbeat) retries; an expected
    exception is not logged with a traceback on every call of the
    outage.
    """
    def unavailable(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except db_exc.DBConnectionError:
            raise exception.ServiceUnavailable(
                reason='the control database cannot be reached') from None
    return functools.wraps(func)(messaging.expected_exceptions(
        exception.ServiceUnavailable)(unavailable))


class ConductorManager:
    """Server side of :class:`cryptocloud.conductor.rpcapi.ConductorAPI`."""

    RPC_API_VERSION = RPC_API_VERSION
    target = messaging.Target(version=RPC_API_VERSION)

    def __init__(self, db, runner, hearing=None) -> None:
        self._db = db
        self._runner = runner
        # nodes.Hearing: told of every heartbeat recorded.
        self._hearing = hearing

    def do_task(self, context, task_id: str) -> None:
        """Claim and start the task if a worker is free (else it waits)."""
        self._runner.submit(task_id)

    def ping(self, context) -> dict:
        """Answer at once: the caller checks the path through the bus."""
        return {'ok': True}

    @_database_required
    def register_node(self, context, host: str, address: str,
                      roles: list[str], vhsm_capacity: int,
                      instance_capacity: int) -> dict:
        """Create or refresh a compute node; its row as JSON data."""
        return nodes.register(self._db, host, address, roles, vhsm_capacity,
                              instance_capacity)

    @_database_required
    def heartbeat(self, context, host: str, workloads: list[dict],
                  load: dict) -> dict:
        """Record the node alive and the states of its workloads.

        The answer names the reported workloads no row describes
        (``orphans``); the node removes those it is told twice running.
        """
        orphans = nodes.heartbeat(self._db, host, workloads, load)
        if self._hearing is not None:
            self._hearing.arrived()
        if self._runner is not None and any(
                w.get('kind') == 'cryptoservice'
                and workloads_wf.event_for(w) == 'fail'
                for w in workloads or () if isinstance(w, dict)):
            # A service instance died or hangs: a replica takes over now,
            # not at the next reconcile pass.
            for task in reconciler.record_failovers(self._db,
                                                    self._runner.owner):
                self._runner.submit(task['id'])
        return {'orphans': orphans}
