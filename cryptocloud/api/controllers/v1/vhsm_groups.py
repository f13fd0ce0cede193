"""``/v1/vhsm_groups``: groups of vHSMs sharing one domain key.

Create, resize and delete are tasks: the task row first, then the group
row (CREATING, UPDATING, DELETING through RESOURCE_MACHINE), then a cast
to the conductor, which builds or removes the vHSMs.
"""

import uuid

from cryptocloud.api import tasks
from cryptocloud.api.controllers import base
from cryptocloud.api.controllers.v1 import scope
from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.images import catalog

KIND = 'vhsm_groups'
SINGULAR = 'vhsm_group'


def view(row: dict) -> dict:
    """A group as the API shows it."""
    return {'id': row['id'], 'name': row.get('name'),
            'project_id': row['project_id'], 'size': row['target_size'],
            'image': row.get('image_ref'), 'state': row['state'],
            'status_reason': row.get('status_reason'),
            'created_at': row['created_at'],
            'updated_at': row.get('updated_at')}


def _check_allowed(row: dict, event: str) -> None:
    # Ask the machine before writing anything: a refused request leaves
    # no task behind.
    if not states.RESOURCE_MACHINE.allows(row['state'], event):
        raise exception.InvalidState(kind=SINGULAR, resource_id=row['id'],
                                     state=row['state'], action=event)


def _transition(req: base.Request, task: dict, group_id: str, event: str,
                values: dict | None = None) -> dict:
    try:
        return req.conn.transition(KIND, group_id,
                                   states.RESOURCE_MACHINE, event, values)
    except Exception as exc:
        tasks.abandon(req.conn, task, exc)
        raise


class GroupController(base.Controller):
    """``/v1/vhsm_groups/{group_id}``."""

    def __init__(self, group_id: str):
        self.group_id = group_id

    @base.route('vhsm_groups:get')
    def get(self, req: base.Request) -> dict:
        """Show a group."""
        return view(scope.load_owned(req, KIND, self.group_id, SINGULAR))

    @base.route('vhsm_groups:update')
    def patch(self, req: base.Request) -> dict:
        """Resize a group."""
        group = scope.load_owned(req, KIND, self.group_id, SINGULAR)
        _check_allowed(group, 'resize')
        size = req.body['size']
        task = tasks.record(req.conn, req.ctx, 'resize_vhsm_group', SINGULAR,
                            group['id'], {'size': size,
                                          'previous_size':
                                              group['target_size']})
        group = _transition(req, task, group['id'], 'resize',
                            {'target_size': size, 'status_reason': None})
        task = tasks.cast(req.conn, req.conductor, req.ctx, task, KIND)
        return {'task': tasks.view(task), SINGULAR: view(group)}

    @base.route('vhsm_groups:delete')
    def delete(self, req: base.Request) -> dict:
        """Delete a group no service uses."""
        group = scope.load_owned(req, KIND, self.group_id, SINGULAR)
        _check_allowed(group, 'delete')
        users = req.conn.count('services', {'group_id': group['id']})
        if users:
            raise exception.Conflict(
                reason='vHSM group %s is used by %d service(s); delete them '
                       'first' % (group['id'], users))
        task = tasks.record(req.conn, req.ctx, 'delete_vhsm_group',
                            SINGULAR, group['id'], {})
        group = _transition(req, task, group['id'], 'delete')
        task = tasks.cast(req.conn, req.conductor, req.ctx, task, KIND)
        return {'task': tasks.view(task), SINGULAR: view(group)}


class GroupsController(base.Controller):
    """``/v1/vhsm_groups``."""

    def child(self, segment: str):
        """The group called ``segment`` (a UUID)."""
        return GroupController(base.check_uuid(segment, SINGULAR))

    @base.route('vhsm_groups:list')
    def get_all(self, req: base.Request) -> dict:
        """List groups; a non-admin sees their project's only."""
        filters = {}
        if 'state' in req.query:
            filters['state'] = req.query['state']
        if not req.is_admin:
            filters['project_id'] = req.ctx.project_id
        return base.page(req, KIND, KIND, filters, view)

    @base.route('vhsm_groups:create')
    def post(self, req: base.Request) -> dict:
        """Create a group in the caller's project."""
        group_id = str(uuid.uuid4())
        body = req.body
        task = tasks.record(req.conn, req.ctx, 'create_vhsm_group',
                            SINGULAR, group_id,
                            {'name': body.get('name'),
                             'size': body['size']})
        try:
            group = req.conn.create(KIND, {
                'id': group_id, 'name': body.get('name'),
                'project_id': req.ctx.project_id,
                'target_size': body['size'],
                'image_ref': catalog.reference_to_pin(req.conn,
                                                      catalog.VHSM),
                'state': states.CREATING})
        except Exception as exc:
            tasks.abandon(req.conn, task, exc)
            raise
        task = tasks.cast(req.conn, req.conductor, req.ctx, task, KIND)
        return {'task': tasks.view(task), SINGULAR: view(group)}
