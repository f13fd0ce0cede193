"""Converge the workloads of one vHSM group or service to its target.

Shared by every workflow that starts or removes vHSMs or service
instances: broken workloads (ERROR) are removed and replaced, surplus ones
removed, missing ones scheduled and started, and then the function waits
until they are ACTIVE.  It reads what exists each time, so running it
again after a crash carries on where the last run stopped.
"""

import dataclasses
from collections.abc import Callable

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor.workflows import base

LOG = logging.getLogger(__name__)

W = states.WORKLOAD_MACHINE

# Rounds of (replace broken, start missing, wait) before giving up.
MAX_ROUNDS = 3

LIVE = (states.BUILDING, states.ACTIVE)

# The association column that names a workload of each table.
ASSOCIATION_FIELD = {'vhsms': 'vhsm_id', 'service_instances': 'instance_id'}


def endpoints(vhsms: list[dict]) -> list[str]:
    """``host:port`` of each vHSM, in order, as service instances get them.
    """
    return ['%s:%s' % (v['host'], v['port']) for v in vhsms]


def event_for(status: dict) -> str | None:
    """The workload event a compute status means: 'built', 'fail' or None.
    """
    state = status.get('state')
    if state == 'running' and status.get('failing') is True:
        # Running but hung: its node gave up on its health probes.
        return 'fail'
    if state == 'running' and status.get('healthy'):
        return 'built'
    if state == 'prepared':
        return 'prepared'
    if state in ('exited', 'missing'):
        return 'fail'
    return None


def apply_status(db, table: str, row: dict, status: dict) -> dict:
    """Record a compute status on the workload row; return the row."""
    values = {}
    for field in ('host', 'port', 'workload_ref', 'status_port'):
        if field == 'status_port' and table != 'vhsms':
            continue
        if status.get(field) is not None and status[field] != row.get(field):
            values[field] = status[field]
    if values:
        row = db.update(table, row['id'], values)
    event = event_for(status)
    if event is None or not W.allows(row['state'], event):
        return row
    if (event, row['state']) in (('built', states.ACTIVE),
                                 ('prepared', states.STANDBY)):
        return row  # nothing new; spare the write
    reason = None
    if event == 'fail':
        reason = base.one_line(status.get('reason') or
                               'workload %s' % status.get('state'))
        if row['state'] == states.ERROR and row.get('status_reason'):
            return row
    try:
        return db.transition(table, row['id'], W, event,
                             values={'status_reason': reason})
    except exception.InvalidState:
        return db.get(table, row['id'])


def remove(wf: base.WorkflowContext, table: str, row: dict,
           reason: str) -> None:
    """Stop a workload (best effort) and delete its row and associations."""
    if row['state'] != states.DELETING:
        try:
            row = wf.db.transition(table, row['id'], W, 'delete',
                                   values={'status_reason': reason})
        except exception.InvalidState:
            pass  # already being removed by someone else
        except exception.NotFound:
            return
    node = wf.node(row.get('node_id'))
    if node is not None and node['state'] == states.NODE_UP:
        try:
            wf.compute.stop_workload(wf.ctxt, node['hostname'], row['id'])
        except Exception as exc:  # noqa: BLE001 - best effort by design
            LOG.warning('Could not stop %s %s on %s (%s); removing its row '
                        'anyway.', table, row['id'], node['hostname'],
                        base.reason_of(exc))
    wf.db.delete_where('associations',
                       {ASSOCIATION_FIELD[table]: row['id']})
    try:
        wf.db.transition(table, row['id'], W, 'deleted')
    except (exception.InvalidState, exception.NotFound):
        pass


@dataclasses.dataclass
class Fleet:
    """The workloads of one group or service and how to start one."""

    table: str          # 'vhsms' or 'service_instances'
    kind: str           # scheduler kind: 'vhsm' or 'instance'
    owner_field: str    # 'group_id' or 'service_id'
    owner_id: str
    target: int
    # Starts the workload ``row`` on compute host ``hostname``; its status.
    start: Callable[[dict, str], dict]
    # Called after a successful start (e.g. to write associations).
    after_start: Callable[[dict], None] | None = None
    extra_values: dict = dataclasses.field(default_factory=dict)
    # Only rows with these values belong to the fleet (a service's
    # primaries, not its replicas).
    filters: dict = dataclasses.field(default_factory=dict)

    def rows(self, db) -> list[dict]:
        """Every row of the fleet, oldest first."""
        return db.list(self.table, filters={self.owner_field: self.owner_id,
                                            **self.filters})


def _victims(live: list[dict], count: int) -> list[dict]:
    """Which ``count`` workloads to remove when scaling down."""
    per_node: dict = {}
    for row in live:
        per_node[row.get('node_id')] = per_node.get(row.get('node_id'), 0) + 1

    def key(row: dict) -> tuple:
        # Unfinished ones first, then those on crowded nodes, newest first.
        return (row['state'] != states.BUILDING,
                -per_node[row.get('node_id')],
                -row['created_at'].timestamp())
    return sorted(live, key=key)[:count]


def _start(wf: base.WorkflowContext, fleet: Fleet, row: dict) -> dict:
    """Start ``row`` on its node; a failure leaves it ERROR with a reason."""
    wf.check()
    node = wf.node(row.get('node_id'))
    try:
        if node is None:
            raise base.WorkflowError(reason='its node is gone')
        status = fleet.start(row, node['hostname'])
    except base.TaskLost:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the row
        reason = 'start failed: %s' % base.reason_of(exc)
        LOG.warning('%s %s: %s', fleet.table, row['id'], reason)
        try:
            return wf.db.transition(fleet.table, row['id'], W, 'fail',
                                    values={'status_reason': reason})
        except exception.InvalidState:
            return wf.db.get(fleet.table, row['id'])
    row = apply_status(wf.db, fleet.table, row, status)
    if fleet.after_start is not None and row['state'] in LIVE:
        fleet.after_start(row)
    return row


def _one_round(wf: base.WorkflowContext, fleet: Fleet,
               failed_nodes: list) -> None:
    rows = fleet.rows(wf.db)
    for row in rows:
        if row['state'] == states.ERROR:
            failed_nodes.append(row.get('node_id'))
            remove(wf, fleet.table, row,
                   'replaced: %s' % (row.get('status_reason') or 'ERROR'))
        elif row['state'] == states.DELETING:
            remove(wf, fleet.table, row, row.get('status_reason') or '')
    live = [r for r in rows if r['state'] in LIVE]
    if len(live) > fleet.target:
        for row in _victims(live, len(live) - fleet.target):
            remove(wf, fleet.table, row, 'scaled down')
            live.remove(row)
    # A BUILDING row that never got a start result: its conductor died
    # between creating the row and hearing from compute.  Starting again
    # is safe, compute starts a workload id once.
    for row in live:
        if row['state'] == states.BUILDING and not row.get('workload_ref'):
            _start(wf, fleet, row)
    missing = fleet.target - len(live)
    if missing > 0:
        wf.check()
        rows = wf.scheduler.place(
            fleet.kind, missing, lambda node: {
                fleet.owner_field: fleet.owner_id, 'node_id': node['id'],
                'state': states.BUILDING, **fleet.extra_values},
            spread=[r.get('node_id') for r in live] + failed_nodes)
        for row in rows:
            _start(wf, fleet, row)


def _settled(wf: base.WorkflowContext, fleet: Fleet) -> bool:
    return not any(r['state'] == states.BUILDING
                   for r in fleet.rows(wf.db))


def converge(wf: base.WorkflowContext, fleet: Fleet) -> list[dict]:
    """Bring the fleet to ``target`` ACTIVE workloads; return them."""
    failed_nodes: list = []
    for _ in range(MAX_ROUNDS):
        _one_round(wf, fleet, failed_nodes)
        wf.wait_until(lambda: _settled(wf, fleet),
                      '%s of %s %s to start' % (fleet.table,
                                                fleet.owner_field[:-3],
                                                fleet.owner_id))
        rows = fleet.rows(wf.db)
        active = [r for r in rows if r['state'] == states.ACTIVE]
        if len(active) == fleet.target and len(rows) == fleet.target:
            return active
    errors = sorted({r.get('status_reason') or r['state']
                     for r in fleet.rows(wf.db)
                     if r['state'] != states.ACTIVE})
    raise base.WorkflowError(reason=(
        '%d of %d %s ACTIVE after %d attempts: %s'
        % (len(active), fleet.target, fleet.table, MAX_ROUNDS,
           '; '.join(errors) or 'unknown')))
