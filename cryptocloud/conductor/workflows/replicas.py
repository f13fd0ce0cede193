"""Replicas of a service's instances and failover to them (claim 2).

Each primary instance of a service has ``service.replicas`` replicas,
placed on other service nodes than their primary where the scheduler can
(soft anti-affinity).  By default (``standby = cold``) a replica is
prepared, not run: its files are written, its image pulled and its
container created, its vHSM association recorded; its row is STANDBY.
With ``standby = hot`` it runs (ACTIVE, role ``replica``) and takes over
at once.

When a primary fails (its workload exited or vanished, or its node went
silent), :func:`failover` promotes one of its replicas: a cold one is
started, the row becomes the primary, the other replicas stand by for
it, and the failed primary is removed (stopped when its node answers;
if the node comes back later its compute daemon is told the workload is
an orphan and removes it, so an old primary never serves beside its
successor).  The endpoint stays when the replica holds the same host
and port (a replica on its primary's node takes over the primary's
port); otherwise it moves to the promoted instance.  Converging the
service afterwards makes a new replica, restoring N.
"""

import collections
import time

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import workloads

LOG = logging.getLogger(__name__)

PRIMARY = 'primary'
REPLICA = 'replica'
TABLE = 'service_instances'
W = states.WORKLOAD_MACHINE

# Replica states that can take over: a running hot standby first.
_READY = (states.ACTIVE, states.STANDBY)



def replicas_of(db, service_id: str) -> dict[str, list[dict]]:
    """The service's replica rows by the primary they stand by for."""
    found = collections.defaultdict(list)
    for row in db.list(TABLE, filters={'service_id': service_id,
                                       'role': REPLICA}):
        found[row.get('replica_of')].append(row)
    return found


def _fail(wf, row: dict, reason: str) -> dict:
    try:
        return wf.db.transition(TABLE, row['id'], W, 'fail',
                                values={'status_reason': reason})
    except exception.InvalidState:
        return wf.db.get(TABLE, row['id'])


def _prepare(wf, service: dict, row: dict, host: str, vhsms: list[dict],
             creds: list[dict], port: int | None) -> dict:
    """Prepare (cold) or start (hot) a replica row on ``host``."""
    from cryptocloud.conductor.workflows import instances

    wf.check()
    try:
        if service.get('standby') == 'hot':
            status = wf.compute.start_instance(
                wf.ctxt, host, row['id'], service['id'],
                service['group_id'], workloads.endpoints(vhsms), creds,
                image=service.get('image_ref'))
        else:
            status = wf.compute.prepare_instance(
                wf.ctxt, host, row['id'], service['id'],
                service['group_id'], workloads.endpoints(vhsms), creds,
                image=service.get('image_ref'), port=port)
    except base.TaskLost:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the row
        reason = 'replica not prepared: %s' % base.reason_of(exc)
        LOG.warning('Replica %s of service %s: %s', row['id'],
                    service['id'], reason)
        return _fail(wf, row, reason)
    row = workloads.apply_status(wf.db, TABLE, row, status)
    if row['state'] in (states.STANDBY, states.ACTIVE, states.BUILDING):
        instances.write_associations(wf.db, row['id'],
                                     [v['id'] for v in vhsms])
    return row


def refresh_standby(wf, service: dict, row: dict, vhsms: list[dict],
                    creds: list[dict]) -> None:
    """Prepare a standby again with the current vHSMs and credentials."""
    node = wf.node(row.get('node_id'))
    if node is None or node['state'] != states.NODE_UP:
        return
    _prepare(wf, service, row, node['hostname'], vhsms, creds,
             row.get('port'))


def converge_replicas(wf, service: dict, primaries: list[dict],
                      vhsms: list[dict], creds: list[dict]) -> None:
    """Give every ACTIVE primary ``service.replicas`` ready replicas.

    Replicas in ERROR, of primaries that are gone, or beyond the count
    are removed.  A replica that cannot be placed (no capacity) is
    logged and tried again by the next convergence; the primaries keep
    serving meanwhile.
    """
    wanted = int(service.get('replicas') or 0)
    by_primary = replicas_of(wf.db, service['id'])
    primary_ids = {p['id'] for p in primaries}
    for primary_id, rows in list(by_primary.items()):
        for row in rows:
            gone = primary_id not in primary_ids
            if row['state'] in (states.ERROR, states.DELETING) or gone:
                workloads.remove(wf, TABLE, row, 'replica of %s: %s' % (
                    primary_id, 'primary gone' if gone else
                    row.get('status_reason') or row['state']))
    by_primary = replicas_of(wf.db, service['id'])
    for primary in primaries:
        rows = by_primary.get(primary['id'], [])
        for row in rows[wanted:]:
            workloads.remove(wf, TABLE, row, 'fewer replicas wanted')
        rows = rows[:wanted]
        for row in rows:
            linked = {a['vhsm_id'] for a in wf.db.list(
                'associations', filters={'instance_id': row['id']})}
            if (row['state'] == states.STANDBY
                    and linked != {v['id'] for v in vhsms}):
                refresh_standby(wf, service, row, vhsms, creds)
        missing = wanted - len(rows)
        if missing <= 0:
            continue
        try:
            placed = wf.scheduler.place(
                'instance', missing, lambda node, of=primary['id']: {
                    'service_id': service['id'], 'node_id': node['id'],
                    'state': states.BUILDING, 'role': REPLICA,
                    'replica_of': of},
                spread=[primary.get('node_id')] * 2
                + [r.get('node_id') for r in rows])
        except exception.NoValidHost as exc:
            LOG.warning('No room for %d replica(s) of instance %s of '
                        'service %s: %s', missing, primary['id'],
                        service['id'], base.reason_of(exc))
            continue
        for row in placed:
            node = wf.node(row['node_id'])
            # On its primary's node a cold replica takes over the same
            # port, so the tenant's host:port survives the failover.
            same_port = (row['node_id'] == primary.get('node_id')
                         and service.get('standby') != 'hot')
            _prepare(wf, service, row, node['hostname'] if node else '',
                     vhsms, creds,
                     primary.get('port') if same_port else None)


def _promote(wf, replica: dict, vhsms: list[dict]) -> dict:
    """Run ``replica`` as a primary; its row, ACTIVE."""
    from cryptocloud.conductor.workflows import instances

    node = wf.node(replica.get('node_id'))
    if node is None or node['state'] != states.NODE_UP:
        raise base.WorkflowError(reason='its node is not up')
    if replica['state'] == states.STANDBY:
        replica = wf.db.transition(TABLE, replica['id'], W, 'promote')
        status = wf.compute.activate_workload(wf.ctxt, node['hostname'],
                                              replica['id'])
        replica = workloads.apply_status(wf.db, TABLE, replica, status)
        if replica['state'] != states.ACTIVE:
            raise base.WorkflowError(
                reason='it did not become healthy: %s'
                       % (replica.get('status_reason') or replica['state']))
    replica = wf.db.update(TABLE, replica['id'], {'role': PRIMARY,
                                                  'replica_of': None})
    instances.write_associations(wf.db, replica['id'],
                                 [v['id'] for v in vhsms])
    return replica


def failover(wf, service: dict, vhsms: list[dict],
             creds: list[dict]) -> list[dict]:
    """Promote a replica of each failed primary; what was done, timed.

    Returns one record per failed primary: the primary, the signal that
    failed it, the replica promoted (or why none could be) and seconds.
    """
    records = []
    primaries = wf.db.list(TABLE, filters={'service_id': service['id'],
                                           'role': PRIMARY,
                                           'state': states.ERROR})
    if not primaries:
        return records
    by_primary = replicas_of(wf.db, service['id'])
    for primary in primaries:
        start = time.monotonic()
        record = {'failed': primary['id'],
                  'signal': primary.get('status_reason') or 'ERROR',
                  'promoted': None}
        candidates = sorted(
            (r for r in by_primary.get(primary['id'], [])
             if r['state'] in _READY),
            key=lambda r: _READY.index(r['state']))
        for replica in candidates:
            wf.check()
            try:
                promoted = _promote(wf, replica, vhsms)
            except base.TaskLost:
                raise
            except Exception as exc:  # noqa: BLE001 - try the next one
                why = 'promotion failed: %s' % base.reason_of(exc)
                LOG.warning('Replica %s of %s: %s', replica['id'],
                            primary['id'], why)
                _fail(wf, replica, why)
                record.setdefault('errors', []).append(why)
                continue
            for other in by_primary.get(primary['id'], []):
                if other['id'] != promoted['id']:
                    try:
                        wf.db.update(TABLE, other['id'],
                                     {'replica_of': promoted['id']})
                    except exception.NotFound:
                        pass
            record['promoted'] = promoted['id']
            record['endpoint'] = '%s:%s' % (promoted['host'],
                                            promoted['port'])
            break
        if record['promoted'] is not None:
            # Demote for good: stop it if its node answers; a node that
            # comes back later removes it as an orphan.
            workloads.remove(wf, TABLE, primary,
                             'failed over to %s' % record['promoted'])
        record['seconds'] = round(time.monotonic() - start, 3)
        LOG.info('Failover of instance %s (%s) of service %s: %s in '
                 '%.2f s.', primary['id'], record['signal'], service['id'],
                 'promoted %s' % record['promoted'] if record['promoted']
                 else 'no replica ready', record['seconds'])
        records.append(record)
    return records
