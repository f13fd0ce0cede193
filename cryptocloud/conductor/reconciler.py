"""Find groups and services whose workloads drifted from their target
and record a reconcile task for each, visible like any other task.

A group or service needs it when one of its workloads is in ERROR (a
node went down, the workload exited) or left half-removed, when it has
more or fewer workloads than its target, or (services) when an
instance's associations differ from the group's ACTIVE vHSMs.  Only
ACTIVE resources are looked at: a resource in ERROR waits for an
operator's resize, so a hopeless repair is not retried every pass.
"""

import collections
import uuid

from oslo_log import log as logging

from cryptocloud.common import states
from cryptocloud.conductor import workflows

LOG = logging.getLogger(__name__)

_LIVE = (states.BUILDING, states.ACTIVE)
# Replica states that can take over for a failed primary.
_READY = (states.ACTIVE, states.STANDBY)


def _drift(rows: list[dict], target: int) -> str | None:
    """Why a fleet of workload rows differs from ``target``, if it does."""
    broken = [r for r in rows if r['state'] not in _LIVE]
    if broken:
        return '%d workload(s) %s' % (len(broken), ', '.join(sorted(
            {r.get('status_reason') or r['state'] for r in broken})))
    if len(rows) != target:
        return '%d workload(s) for a target of %d' % (len(rows), target)
    return None


def _replica_drift(primaries: list[dict], standby: dict,
                   wanted: int) -> str | None:
    """Why the replicas of ACTIVE primaries need work, if they do.

    Broken replicas and surplus ones count; a missing one does not: it
    could not be placed (no capacity) and every convergence of the
    service (resize, failover, reconcile) tries again, so a full cluster
    does not make a reconcile task every pass.
    """
    for row in primaries:
        if row['state'] != states.ACTIVE:
            continue
        mine = standby[row['id']]
        if any(r['state'] not in _READY + (states.BUILDING,) for r in mine):
            return 'a replica of instance %s is broken' % row['id']
        if len(mine) > wanted:
            return ('instance %s has %d replicas for %d wanted'
                    % (row['id'], len(mine), wanted))
    return None


def find_drift(db) -> list[dict]:
    """Resources that need reconciling: action, type, row and reason."""
    found = []
    vhsms = collections.defaultdict(list)
    for row in db.list('vhsms'):
        vhsms[row['group_id']].append(row)
    groups = {g['id']: g for g in db.list('vhsm_groups')}
    for group in groups.values():
        if group['state'] != states.ACTIVE:
            continue
        why = _drift(vhsms[group['id']], int(group['target_size']))
        if why:
            found.append({'action': workflows.RECONCILE_GROUP,
                          'resource_type': 'vhsm_group', 'row': group,
                          'reason': why})
    drifting = {item['row']['id'] for item in found}
    instances = collections.defaultdict(list)
    standby = collections.defaultdict(list)
    for row in db.list('service_instances'):
        if row.get('role') == 'replica':
            standby[row.get('replica_of')].append(row)
        else:
            instances[row['service_id']].append(row)
    links = collections.defaultdict(set)
    for assoc in db.list('associations'):
        links[assoc['instance_id']].add(assoc['vhsm_id'])
    for service in db.list('services', filters={'state': states.ACTIVE}):
        rows = instances[service['id']]
        failed = [r for r in rows if r['state'] == states.ERROR
                  and any(x['state'] in _READY for x in standby[r['id']])]
        if failed:
            found.append({'action': workflows.FAILOVER_SERVICE,
                          'resource_type': 'service', 'row': service,
                          'reason': '%d primary instance(s) failed: %s'
                                    % (len(failed), ', '.join(sorted(
                                        {r.get('status_reason') or 'ERROR'
                                         for r in failed})))})
            continue
        why = _drift(rows, int(service['target_instances']))
        if why is None:
            why = _replica_drift(rows, standby,
                                 int(service.get('replicas') or 0))
        group = groups.get(service['group_id'])
        # A drifting group's own reconcile tells its instances.
        if (why is None and group and group['state'] == states.ACTIVE
                and group['id'] not in drifting):
            wanted = {v['id'] for v in vhsms[group['id']]
                      if v['state'] == states.ACTIVE}
            stale = [r for r in rows if links[r['id']] != wanted]
            if stale:
                why = '%d instance(s) with stale vHSM associations' % len(
                    stale)
        if why:
            found.append({'action': workflows.RECONCILE_SERVICE,
                          'resource_type': 'service', 'row': service,
                          'reason': why})
    return found


def record_failovers(db, owner: str) -> list[dict]:
    """A failover task for each service whose failed primary has a
    replica ready, without waiting for the next reconcile pass."""
    return record_tasks(db, owner, actions=(workflows.FAILOVER_SERVICE,))


def record_tasks(db, owner: str, actions=None) -> list[dict]:
    """A reconcile task for each drifted resource without an open task.

    Two conductors in the same pass may both record one; the tasks then
    run one after the other (oldest first) and the second finds nothing
    left to do.
    """
    busy = {t['resource_id'] for t in db.list(
        'tasks', filters={'state': [states.PENDING, states.RUNNING]})}
    created = []
    for item in find_drift(db):
        if actions is not None and item['action'] not in actions:
            continue
        row = item['row']
        if row['id'] in busy:
            continue
        task = db.create('tasks', {
            'request_id': 'req-%s' % uuid.uuid4(),
            'project_id': row.get('project_id'),
            'user_id': None,
            'action': item['action'],
            'resource_type': item['resource_type'],
            'resource_id': row['id'],
            'params': {'reason': item['reason'], 'recorded_by': owner},
            'state': states.PENDING,
        })
        LOG.info('Reconciling %s %s (%s): task %s.', item['resource_type'],
                 row['id'], item['reason'], task['id'])
        created.append(task)
    return created
