"""Compute nodes as the conductor sees them: registration, heartbeats
(with the workload states they report) and liveness."""

import datetime
import threading
import time
from collections.abc import Callable

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor.workflows import workloads
from cryptocloud.db import api as db_api

LOG = logging.getLogger(__name__)

WORKLOAD_TABLES = ('vhsms', 'service_instances')
NODE_DOWN_REASON = 'node down'
MISSING_REASON = 'missing from its node\'s heartbeat'
# A workload changed this recently is not failed for being absent from a
# heartbeat: the node's list may predate the change.
HEARTBEAT_GRACE_SECONDS = 10
# Per-workload figures a heartbeat carries (compute/probes.py).
LOAD_FIGURES = ('requests_per_s', 'in_flight', 'p95_ms', 'cpu')


class Hearing:
    """Since when heartbeats can reach this conductor.

    Heartbeats travel over the message bus and are recorded in the
    control database: while either is unreachable every node looks
    silent although none is.  The periodic pass says when the conductor
    is deaf (its round trip through the bus failed, or the database) and
    when it hears again; a node's silence means something only once the
    conductor has heard for a whole ``heartbeat_timeout`` (also after
    the conductor starts: heartbeats sent while no conductor ran were
    lost).  Until then no node is marked DOWN, and the scheduler goes by
    the nodes' states rather than the age of their last heartbeats.

    A heartbeat that arrives and is recorded proves both paths work: while
    one came within :attr:`window` (a third of the timeout) the periodic
    pass needs no round trip of its own through the bus.  That bound
    keeps a node from being called silent for a gap that began with an
    outage: its silence must have begun at least two thirds of the
    timeout before the bus last carried somebody's heartbeat, which
    with heartbeats more frequent than that is silence of its own.
    """

    def __init__(self, heartbeat_timeout: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        self.window = heartbeat_timeout / 3
        self._clock = clock
        self._since: float | None = None
        self._arrived: float | None = None
        self._lock = threading.Lock()

    def arrived(self) -> None:
        """A node's heartbeat came over the bus and was recorded."""
        with self._lock:
            self._arrived = self._clock()
        self.heard()

    def arrived_recently(self) -> bool:
        """Whether a heartbeat arrived within :attr:`window`."""
        with self._lock:
            return (self._arrived is not None
                    and self._clock() - self._arrived < self.window)

    def heard(self) -> None:
        """Heartbeats can arrive now (the bus and the database answer)."""
        with self._lock:
            if self._since is None:
                self._since = self._clock()
                LOG.info('Heartbeats can reach this conductor; silent '
                         'nodes are marked DOWN after %d s more.',
                         self.heartbeat_timeout)

    def deaf(self, why: str) -> None:
        """Heartbeats cannot arrive now, for the reason ``why``."""
        with self._lock:
            if self._since is not None:
                LOG.warning('Heartbeats cannot reach this conductor (%s); '
                            'no node is marked DOWN until they have for '
                            '%d s.', why, self.heartbeat_timeout)
            self._since = None

    def now(self) -> bool:
        """Whether heartbeats can arrive now (as last found)."""
        with self._lock:
            return self._since is not None

    def long_enough(self) -> bool:
        """Whether a node silent for the timeout really is silent."""
        with self._lock:
            return (self._since is not None and self._clock() - self._since
                    >= self.heartbeat_timeout)


def jsonable(row: dict) -> dict:
    """A row as plain JSON data (datetimes as ISO 8601 strings)."""
    return {k: (v.isoformat() if isinstance(v, datetime.datetime) else v)
            for k, v in row.items()}


def register(db, host: str, address: str, roles: list[str],
             vhsm_capacity: int, instance_capacity: int) -> dict:
    """Create or refresh the node row of ``host``; the row as JSON data."""
    node = db.register_node(host, address, list(roles), int(vhsm_capacity),
                            int(instance_capacity))
    LOG.info('Node %s registered (%s, roles %s).', host, address,
             ','.join(node['roles']))
    return jsonable(node)


def _fail(db, table: str, row: dict, reason: str) -> None:
    try:
        db.transition(table, row['id'], workloads.W, 'fail',
                      values={'status_reason': reason})
    except (exception.InvalidState, exception.NotFound):
        pass  # moved on meanwhile (deleted, or already failed)


def heartbeat(db, host: str, statuses: list[dict], load: dict) -> list[str]:
    """Record that ``host`` is alive and what its workloads are doing.

    Running and healthy -> 'built'; exited or missing -> 'fail'.  An
    ACTIVE workload the node does not report at all has vanished and
    fails too; a BUILDING one may simply not have started yet.

    Returns the reported workloads that no row describes (their group or
    service was deleted while the node was down, or a start was undone):
    orphans the node may remove.
    """
    node = db.heartbeat_node(host, load or {})
    by_id = {s.get('workload_id'): s for s in statuses or ()}
    # The node listed its workloads a moment before this arrives: a row
    # a workflow changed since (a workload just started, prepared or
    # promoted) may be missing from the list, or listed as it was.
    settled = db_api.utcnow() - datetime.timedelta(
        seconds=HEARTBEAT_GRACE_SECONDS)
    matched = set()
    for table in WORKLOAD_TABLES:
        loads = {}
        for row in db.list(table, filters={
                'node_id': node['id'],
                'state': [states.BUILDING, states.ACTIVE, states.ERROR,
                          states.STANDBY]}):
            status = by_id.get(row['id'])
            if status is not None:
                matched.add(row['id'])
                if status.get('state') != 'prepared':
                    # Only the workflow that prepares a replica makes it
                    # STANDBY; a listing cannot tell a promotion apart.
                    workloads.apply_status(db, table, row, status)
                figures = load_figures(status)
                if figures is not None:
                    loads[row['id']] = figures
            elif (row['state'] in (states.ACTIVE, states.STANDBY)
                  and row['updated_at'] < settled):
                _fail(db, table, row, MISSING_REASON)
        # One statement for the node's workloads, and none when no
        # workload was measured.
        db.record_loads(table, loads)
    return orphans(db, by_id, known=matched)


def load_figures(status: dict) -> dict | None:
    """The load figures of a running workload's status, or None.

    Only the known figures, and only numbers: what the balancer reads
    is never whatever else a node put in the status.
    """
    load = status.get('load')
    if status.get('state') != 'running' or not isinstance(load, dict):
        return None
    figures = {name: load[name] for name in LOAD_FIGURES
               if isinstance(load.get(name), (int, float))
               and not isinstance(load.get(name), bool)}
    return figures or None


def orphans(db, reported: dict, known: set = frozenset()) -> list[str]:
    """The reported workload ids that match no vHSM or instance row.

    ``known``: ids already matched to a row, not looked up again (in a
    steady heartbeat that is every id, and no query is made).
    """
    ids = sorted(i for i in reported if isinstance(i, str)
                 and i not in known)
    if not ids:
        return []
    known = set()
    for table in WORKLOAD_TABLES:
        known.update(r['id'] for r in db.list(table, filters={'id': ids}))
    return [i for i in ids if i not in known]


def check_liveness(db, now: datetime.datetime,
                   heartbeat_timeout: int) -> list[dict]:
    """Mark silent nodes DOWN and fail the workloads of every DOWN node.

    Safe with several conductors: each node and workload changes in a
    conditional UPDATE, so the work is done once whoever gets there first.
    Returns the nodes this call marked DOWN.
    """
    cutoff = now - datetime.timedelta(seconds=heartbeat_timeout)
    newly_down = db.mark_silent_nodes_down(cutoff)
    for node in db.list('nodes', filters={'state': states.NODE_DOWN}):
        for table in WORKLOAD_TABLES:
            for row in db.list(table, filters={
                    'node_id': node['id'],
                    'state': [states.BUILDING, states.ACTIVE,
                              states.STANDBY]}):
                _fail(db, table, row, NODE_DOWN_REASON)
    return newly_down
