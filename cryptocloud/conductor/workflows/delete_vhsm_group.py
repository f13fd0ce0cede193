"""delete_vhsm_group: stop the group's vHSMs and delete its rows."""

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import workloads


def run(wf: base.WorkflowContext) -> None:
    """Refuse while services use the group; else remove it entirely."""
    try:
        wf.db.get('vhsm_groups', wf.resource_id)
    except exception.NotFound:
        return  # a re-run of a task whose work was done
    services = wf.db.list('services',
                          filters={'group_id': wf.resource_id})
    if services:
        raise base.WorkflowError(reason=(
            'vHSM group %s still has %d service(s) attached (%s); delete '
            'them first' % (wf.resource_id, len(services),
                            ', '.join(s['id'] for s in services))))
    with wf.holding('vhsm_groups', 'delete', states.DELETING):
        for row in wf.db.list('vhsms',
                              filters={'group_id': wf.resource_id}):
            wf.check()
            workloads.remove(wf, 'vhsms', row, 'group deleted')
        wf.db.transition('vhsm_groups', wf.resource_id,
                         states.RESOURCE_MACHINE, 'deleted')
