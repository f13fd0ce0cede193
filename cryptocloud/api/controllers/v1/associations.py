"""``/v1/associations``: which instance reaches which vHSM (read-only).

An association belongs to the project of its instance's service.
"""

from cryptocloud.api import policy
from cryptocloud.api.controllers import base
from cryptocloud.api.controllers.v1 import scope

KIND = 'associations'
SINGULAR = 'association'


def view(row: dict) -> dict:
    """An association as the API shows it."""
    return {name: row.get(name) for name in (
        'id', 'vhsm_id', 'instance_id', 'created_at')}


def _ids(req: base.Request, kind: str, filters: dict) -> list:
    return [row['id'] for row in req.conn.list(kind, filters=filters)]


def _narrow(filters: dict, name: str, ids: list) -> None:
    # Several constraints on one column: keep what all of them allow.
    if name in filters:
        current = filters[name]
        current = current if isinstance(current, list) else [current]
        ids = [i for i in current if i in set(ids)]
    filters[name] = ids


class AssociationController(base.Controller):
    """``/v1/associations/{association_id}``."""

    def __init__(self, association_id: int):
        self.association_id = association_id

    @base.route('associations:get')
    def get(self, req: base.Request) -> dict:
        """Show an association."""
        row = req.conn.get(KIND, self.association_id)
        if not req.is_admin:
            instance = req.conn.get('service_instances', row['instance_id'])
            service = req.conn.get('services', instance['service_id'])
            policy.authorize_owner(req.route.policy, req.ctx, service,
                                   SINGULAR, self.association_id)
        return view(row)


class AssociationsController(base.Controller):
    """``/v1/associations``."""

    def child(self, segment: str):
        """The association called ``segment`` (an integer id)."""
        return AssociationController(base.check_int_id(segment, SINGULAR))

    @base.route('associations:list')
    def get_all(self, req: base.Request) -> dict:
        """List associations, by vHSM, instance, service or group."""
        filters = {}
        for name in ('vhsm_id', 'instance_id'):
            if name in req.query:
                filters[name] = req.query[name].lower()
        service_id = req.query.get('service_id')
        if service_id is not None:
            service_id = service_id.lower()
            if not req.is_admin:
                scope.owned_parent(req, 'services', service_id, 'service')
            _narrow(filters, 'instance_id', _ids(
                req, 'service_instances', {'service_id': service_id}))
        group_id = req.query.get('group_id')
        if group_id is not None:
            group_id = group_id.lower()
            if not req.is_admin:
                scope.owned_parent(req, 'vhsm_groups', group_id,
                                   'vhsm_group')
            _narrow(filters, 'vhsm_id',
                    _ids(req, 'vhsms', {'group_id': group_id}))
        if not req.is_admin:
            services = scope.project_ids(req, 'services')
            _narrow(filters, 'instance_id', _ids(
                req, 'service_instances', {'service_id': services}))
        return base.page(req, KIND, KIND, filters, view)


