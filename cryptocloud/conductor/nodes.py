"""Compute nodes as the conductor sees them: registration, heartbeats
(with the workload states they report) and liveness."""

import datetime

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor.workflows import workloads

LOG = logging.getLogger(__name__)

WORKLOAD_TABLES = ('vhsms', 'service_instances')
NODE_DOWN_REASON = 'node down'
MISSING_REASON = 'missing from its node\'s heartbeat'


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
    for table in WORKLOAD_TABLES:
        for row in db.list(table, filters={
                'node_id': node['id'],
                'state': [states.BUILDING, states.ACTIVE, states.ERROR]}):
            status = by_id.get(row['id'])
            if status is not None:
                workloads.apply_status(db, table, row, status)
            elif row['state'] == states.ACTIVE:
                _fail(db, table, row, MISSING_REASON)
    return orphans(db, by_id)


def orphans(db, reported: dict) -> list[str]:
    """The reported workload ids that match no vHSM or instance row."""
    ids = sorted(i for i in reported if isinstance(i, str))
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
                    'state': [states.BUILDING, states.ACTIVE]}):
                _fail(db, table, row, NODE_DOWN_REASON)
    return newly_down
