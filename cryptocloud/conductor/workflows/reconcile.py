"""reconcile_vhsm_group / reconcile_service: replace broken workloads.

The reconciler records one of these tasks when a group or service has a
workload in ERROR, too few or too many; the workflow is the same
convergence as a resize to the current target.
"""

from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import instances
from cryptocloud.conductor.workflows import vhsms


def run_group(wf: base.WorkflowContext) -> None:
    """Replace the group's broken vHSMs and update its services."""
    with wf.holding('vhsm_groups', 'reconcile', states.UPDATING) as group:
        vhsms.converge_group(wf, group)
        wf.finish_resource('vhsm_groups')


def run_service(wf: base.WorkflowContext) -> None:
    """Replace the service's broken instances; move the endpoint if needed.
    """
    with wf.holding('services', 'reconcile', states.UPDATING) as service:
        endpoint = instances.converge_service(wf, service)
        wf.finish_resource('services', endpoint)
