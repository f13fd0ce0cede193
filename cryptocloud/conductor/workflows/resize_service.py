"""resize_service: add or remove instances of a service.

The API wrote the new ``target_instances`` on the row when it moved the
service to UPDATING; the row, not the task's params, is what counts.
"""

from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import instances


def run(wf: base.WorkflowContext) -> None:
    """Converge the instances to the (new) target; ACTIVE again."""
    with wf.holding('services', 'resize', states.UPDATING) as service:
        endpoint = instances.converge_service(wf, service)
        wf.finish_resource('services', endpoint)
