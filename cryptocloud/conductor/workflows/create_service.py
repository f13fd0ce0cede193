"""create_service: start instances on service nodes, associate them with
the group's vHSMs and publish the service endpoint."""

from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import instances


def run(wf: base.WorkflowContext) -> None:
    """Start the instances (after the group is ACTIVE); service ACTIVE."""
    service = wf.db.get('services', wf.resource_id)
    if service['state'] == states.ACTIVE:
        return  # a re-run of a task whose work was done
    with wf.holding('services', None, states.CREATING) as service:
        endpoint = instances.converge_service(wf, service)
        wf.finish_resource('services', endpoint)
