"""scale_service: the balancer's decision, carried out with the resize code.

The balancer moved the service (and its vHSM group, when vHSMs change)
to UPDATING with the new targets before recording this task, as the API
does for a resize; the rows, not the params, say what to reach.  The
params carry the figures behind the decision and which way it goes.
The group changes first either way: growing, so that the new instances
get every vHSM; shrinking, because the instances' convergence needs an
ACTIVE group (and the remaining instances drop the removed vHSMs as the
group's convergence tells them).

A failed scale-out is rolled back: the targets return to their previous
values, what was started for it is removed, and the resources are ACTIVE
again with the failure in ``status_reason``, while the task fails with
it.  An automatic action must not leave a serving service in ERROR.  A
failed scale-in (removals rarely fail) is a failed resize: ERROR.
"""

import dataclasses

from oslo_log import log as logging

from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import instances
from cryptocloud.conductor.workflows import vhsms

LOG = logging.getLogger(__name__)

ACTION = 'scale_service'


class RolledBack(base.WorkflowError):
    """A scale-out failed and its resource is back at its old target."""

    def __init__(self, reason: str, result) -> None:
        super().__init__(reason=reason)
        # What the converge back to the old target returned.
        self.result = result


def _group_context(wf: base.WorkflowContext,
                   group_id: str) -> base.WorkflowContext:
    # Same task, lease and deadline; the group as the resource.
    return dataclasses.replace(wf, task=dict(wf.task, resource_id=group_id))


def _grow(wf: base.WorkflowContext, kind: str, field: str, before: int,
          converge):
    """converge() the resource; when that fails, back to ``before``."""
    try:
        return converge(wf.db.get(kind, wf.resource_id))
    except base.TaskLost:
        raise
    except Exception as exc:  # noqa: BLE001 - rolled back, then reported
        why = base.reason_of(exc)
        LOG.warning('Scale-out of %s %s failed (%s); back to %d.', kind,
                    wf.resource_id, why, before)
        row = wf.db.update(kind, wf.resource_id, {field: before})
        raise RolledBack('scale-out failed, back to %d: %s' % (before, why),
                         converge(row)) from None


def _scale_group(wf: base.WorkflowContext, group_id: str, out: bool,
                 before: int) -> None:
    """Converge the group to the target the balancer set."""
    gwf = _group_context(wf, group_id)
    group = wf.db.get('vhsm_groups', group_id)
    if group['state'] != states.UPDATING:
        return  # a re-run after this part was done
    try:
        if out:
            _grow(gwf, 'vhsm_groups', 'target_size', before,
                  lambda row: vhsms.converge_group(gwf, row))
        else:
            vhsms.converge_group(gwf, group)
    except base.TaskLost:
        raise
    except RolledBack as exc:
        gwf.finish_resource('vhsm_groups', {'status_reason': exc.message})
        raise
    except Exception as exc:
        gwf.fail_resource('vhsm_groups', base.reason_of(exc))
        raise
    gwf.finish_resource('vhsm_groups')


def run(wf: base.WorkflowContext) -> None:
    """Reach the new targets; roll a failed scale-out back."""
    params = wf.params
    out = params.get('direction') == 'out'
    group_change = params.get('vhsms_after') != params.get('vhsms_before')
    before = int(params.get('vhsms_before') or 0)
    service = wf.acquire('services', 'resize', states.UPDATING)
    endpoint: dict = {}
    try:
        if group_change:
            try:
                _scale_group(wf, service['group_id'], out, before)
            except RolledBack:
                # No instance was added yet: none is.
                wf.db.update('services', service['id'], {
                    'target_instances': int(params['instances_before'])})
                raise
        if out:
            endpoint = _grow(
                wf, 'services', 'target_instances',
                int(params['instances_before']),
                lambda row: instances.converge_service(wf, row))
        else:
            endpoint = instances.converge_service(wf, service)
    except base.TaskLost:
        raise
    except RolledBack as exc:
        # The service's rollback returned the endpoint to keep; the
        # group's left the instances untouched.
        kept = exc.result if isinstance(exc.result, dict) else {}
        wf.finish_resource('services', dict(kept, status_reason=exc.message))
        raise
    except Exception as exc:
        wf.fail_resource('services', base.reason_of(exc))
        raise
    wf.finish_resource('services', endpoint)
