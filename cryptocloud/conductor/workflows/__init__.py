"""One module per workflow; ``ACTIONS`` maps a task's action to it.

A workflow is ``run(wf: WorkflowContext) -> None``: it raises to fail the
task (the message becomes the task's error) and returns to succeed it.
"""

from collections.abc import Callable

from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import build_images
from cryptocloud.conductor.workflows import create_service
from cryptocloud.conductor.workflows import create_vhsm_group
from cryptocloud.conductor.workflows import delete_service
from cryptocloud.conductor.workflows import delete_vhsm_group
from cryptocloud.conductor.workflows import failover
from cryptocloud.conductor.workflows import reconcile
from cryptocloud.conductor.workflows import resize_service
from cryptocloud.conductor.workflows import resize_vhsm_group
from cryptocloud.conductor.workflows import scale_service
from cryptocloud.conductor.workflows import update_service_credentials

RECONCILE_GROUP = 'reconcile_vhsm_group'
RECONCILE_SERVICE = 'reconcile_service'
FAILOVER_SERVICE = failover.ACTION

ACTIONS: dict[str, Callable[[base.WorkflowContext], None]] = {
    'create_vhsm_group': create_vhsm_group.run,
    'resize_vhsm_group': resize_vhsm_group.run,
    'delete_vhsm_group': delete_vhsm_group.run,
    'create_service': create_service.run,
    'resize_service': resize_service.run,
    'delete_service': delete_service.run,
    'update_service_credentials': update_service_credentials.run,
    RECONCILE_GROUP: reconcile.run_group,
    RECONCILE_SERVICE: reconcile.run_service,
    'build_images': build_images.run,
    scale_service.ACTION: scale_service.run,
    failover.ACTION: failover.run,
}


def get(action: str) -> Callable[[base.WorkflowContext], None]:
    """The workflow of ``action``, or WorkflowError naming the known ones."""
    try:
        return ACTIONS[action]
    except KeyError:
        raise base.WorkflowError(
            reason='unknown task action %r; known: %s'
                   % (action, ', '.join(sorted(ACTIONS)))) from None
