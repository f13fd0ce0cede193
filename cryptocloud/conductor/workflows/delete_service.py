"""delete_service: stop the instances and delete the service's rows."""

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor import proxy
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import workloads


def run(wf: base.WorkflowContext) -> None:
    """Remove every instance, association and credential, then the row."""
    try:
        wf.db.get('services', wf.resource_id)
    except exception.NotFound:
        return  # a re-run of a task whose work was done
    with wf.holding('services', 'delete', states.DELETING):
        for row in wf.db.list('service_instances',
                              filters={'service_id': wf.resource_id}):
            wf.check()
            workloads.remove(wf, 'service_instances', row,
                             'service deleted')
        wf.db.delete_where('service_credentials',
                           {'service_id': wf.resource_id})
        wf.db.transition('services', wf.resource_id,
                         states.RESOURCE_MACHINE, 'deleted')
    proxy.changed()
