"""The vHSMs of a group: converge them and read their endpoints."""

from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import instances
from cryptocloud.conductor.workflows import workloads


def active_vhsms(db, group_id: str) -> list[dict]:
    """The group's ACTIVE vHSMs, oldest first."""
    return db.list('vhsms', filters={'group_id': group_id,
                                     'state': states.ACTIVE})



def converge_group(wf: base.WorkflowContext, group: dict) -> list[dict]:
    """Bring the group to its target size, then tell its services."""
    group_id = group['id']
    fleet = workloads.Fleet(
        table='vhsms', kind='vhsm', owner_field='group_id',
        owner_id=group_id, target=int(group['target_size']),
        start=lambda row, host: wf.compute.start_vhsm(
            wf.ctxt, host, row['id'], group_id,
            image=group.get('image_ref')))
    active = workloads.converge(wf, fleet)
    instances.refresh_group_services(wf, group_id, active)
    return active
