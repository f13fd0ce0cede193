"""update_service_credentials: give every instance the service's current
credential hashes (after one was added or revoked), without a restart.

The API has already written or deleted the credential row; the instances
get the whole current list, so running this again is harmless.
"""

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import instances
from cryptocloud.conductor.workflows import replicas


def run(wf: base.WorkflowContext) -> None:
    """Push the current hashes and vHSM endpoints to each live instance."""
    wf.wait_for_older_tasks('services')
    try:
        service = wf.db.get('services', wf.resource_id)
    except exception.NotFound:
        return  # deleted meanwhile: nothing left to tell
    if service['state'] == states.DELETING:
        return
    vhsms = wf.db.list('vhsms', filters={'group_id': service['group_id'],
                                         'state': states.ACTIVE})
    creds = instances.credentials(wf.db, service['id'])
    failed = []
    for inst in wf.db.list('service_instances',
                           filters={'service_id': service['id']}):
        if inst['state'] == states.STANDBY:
            replicas.refresh_standby(wf, service, inst, vhsms, creds)
            continue
        if inst['state'] not in (states.BUILDING, states.ACTIVE):
            continue  # the reconciler replaces it, with current hashes
        instances.sync_instance(wf, inst, vhsms, creds, force=True)
        if wf.db.get('service_instances', inst['id'])['state'] == \
                states.ERROR:
            failed.append(inst['id'])
    if failed:
        raise base.WorkflowError(reason=(
            'credentials not delivered to instance(s) %s; they will be '
            'replaced with the current credentials' % ', '.join(failed)))
