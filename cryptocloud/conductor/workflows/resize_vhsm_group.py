"""resize_vhsm_group: add or remove vHSMs and tell the group's services.

The API wrote the new ``target_size`` on the row when it moved the group
to UPDATING; the row, not the task's params, is what counts, so that a
re-run of an old task cannot undo a later resize.
"""

from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import vhsms


def run(wf: base.WorkflowContext) -> None:
    """Converge the group to its (new) target size; ACTIVE again."""
    with wf.holding('vhsm_groups', 'resize', states.UPDATING) as group:
        vhsms.converge_group(wf, group)
        wf.finish_resource('vhsm_groups')
