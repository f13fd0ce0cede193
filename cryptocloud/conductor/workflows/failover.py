"""failover_service: promote replicas of a service's failed primaries.

Recorded by the conductor as soon as a heartbeat (a workload exited or
vanished) or the liveness pass (a node went silent) fails a primary that
has a replica, so that the takeover does not wait for the next
reconcile pass.  The service stays ACTIVE throughout: its endpoint keeps
answering (same host and port when the replica took over its primary's
port).  The task's params record, per failed primary, the signal, the
replica promoted and the seconds it took; afterwards the service is
converged, which makes a new replica to restore N.
"""

import time

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor import proxy
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import instances
from cryptocloud.conductor.workflows import replicas

ACTION = 'failover_service'


def run(wf: base.WorkflowContext) -> None:
    """Promote, move the endpoint if it must, restore the replicas."""
    start = time.monotonic()
    try:
        service = wf.db.get('services', wf.resource_id)
    except exception.NotFound:
        return  # deleted meanwhile
    if service['state'] == states.DELETING:
        return
    vhsms = wf.db.list('vhsms', filters={'group_id': service['group_id'],
                                         'state': states.ACTIVE})
    creds = instances.credentials(wf.db, service['id'])
    records = replicas.failover(wf, service, vhsms, creds)
    # The proxy sends traffic to the promoted instance now.
    proxy.changed_and_wait()
    active = wf.db.list('service_instances', filters={
        'service_id': service['id'], 'role': replicas.PRIMARY,
        'state': states.ACTIVE})
    moved = instances.endpoint_values(service, active) if active else {}
    if moved:
        wf.db.update('services', service['id'], moved)
    params = dict(wf.params, failovers=records,
                  takeover_seconds=round(time.monotonic() - start, 3))
    wf.db.update('tasks', wf.task['id'], {'params': params})
    if service['state'] == states.ACTIVE:
        # Make the new replica (and replace a primary nothing could take
        # over for) the way a reconcile would, keeping the service
        # ACTIVE: other tasks wait for this one, not the reverse.
        instances.converge_service(wf, wf.db.get('services',
                                                 service['id']))
        endpoint = instances.endpoint_values(
            wf.db.get('services', service['id']),
            wf.db.list('service_instances', filters={
                'service_id': service['id'], 'role': replicas.PRIMARY,
                'state': states.ACTIVE}))
        if endpoint:
            wf.db.update('services', service['id'], endpoint)
    failed = [r for r in records if r['promoted'] is None]
    if failed:
        raise base.WorkflowError(reason=(
            'no replica could take over for %s; replaced by new instances'
            % ', '.join(r['failed'] for r in failed)))
