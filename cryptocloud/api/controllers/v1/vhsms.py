"""``/v1/vhsms``: vHSMs (read-only).

A vHSM belongs to the project of its group.
"""

from cryptocloud.api.controllers import base
from cryptocloud.api.controllers.v1 import scope

KIND = 'vhsms'
SINGULAR = 'vhsm'


def view(row: dict) -> dict:
    """A vHSM as the API shows it."""
    return {name: row.get(name) for name in (
        'id', 'group_id', 'node_id', 'host', 'port', 'status_port', 'state',
        'status_reason', 'workload_ref', 'load', 'load_updated_at',
        'created_at', 'updated_at')}


class VHSMController(base.Controller):
    """``/v1/vhsms/{vhsm_id}``."""

    def __init__(self, vhsm_id: str):
        self.vhsm_id = vhsm_id

    @base.route('vhsms:get')
    def get(self, req: base.Request) -> dict:
        """Show a vHSM."""
        return view(scope.load_via_parent(req, KIND, self.vhsm_id, SINGULAR,
                                          'vhsm_groups', 'group_id'))


class VHSMsController(base.Controller):
    """``/v1/vhsms``."""

    def child(self, segment: str):
        """The vHSM called ``segment`` (a UUID)."""
        return VHSMController(base.check_uuid(segment, SINGULAR))

    @base.route('vhsms:list')
    def get_all(self, req: base.Request) -> dict:
        """List vHSMs, filtered by group, node and state."""
        filters = {}
        for name in ('node_id', 'state'):
            if name in req.query:
                filters[name] = req.query[name]
        group_id = req.query.get('group_id')
        if group_id is not None:
            group_id = group_id.lower()
            if not req.is_admin:
                scope.owned_parent(req, 'vhsm_groups', group_id,
                                   'vhsm_group')
            filters['group_id'] = group_id
        elif not req.is_admin:
            filters['group_id'] = scope.project_ids(req, 'vhsm_groups')
        return base.page(req, KIND, KIND, filters, view)
