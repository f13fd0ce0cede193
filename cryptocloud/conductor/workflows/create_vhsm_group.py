"""create_vhsm_group: start the group's vHSMs on device nodes."""

from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import vhsms


def run(wf: base.WorkflowContext) -> None:
    """Start ``target_size`` vHSMs, spread over device nodes; ACTIVE."""
    group = wf.db.get('vhsm_groups', wf.resource_id)
    if group['state'] == states.ACTIVE:
        return  # a re-run of a task whose work was done
    with wf.holding('vhsm_groups', None, states.CREATING) as group:
        vhsms.converge_group(wf, group)
        wf.finish_resource('vhsm_groups')
