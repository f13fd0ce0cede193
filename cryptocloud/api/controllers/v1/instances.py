"""``/v1/instances``: service instances (read-only).

An instance belongs to the project of its service.
"""

from cryptocloud.api.controllers import base
from cryptocloud.api.controllers.v1 import scope

KIND = 'service_instances'
SINGULAR = 'service_instance'


def view(row: dict) -> dict:
    """An instance as the API shows it."""
    return {name: row.get(name) for name in (
        'id', 'service_id', 'node_id', 'host', 'port', 'role', 'replica_of',
        'state',
        'status_reason', 'workload_ref', 'load', 'load_updated_at',
        'created_at', 'updated_at')}


class InstanceController(base.Controller):
    """``/v1/instances/{instance_id}``."""

    def __init__(self, instance_id: str):
        self.instance_id = instance_id

    @base.route('instances:get')
    def get(self, req: base.Request) -> dict:
        """Show an instance."""
        return view(scope.load_via_parent(req, KIND, self.instance_id,
                                          SINGULAR, 'services',
                                          'service_id'))


class InstancesController(base.Controller):
    """``/v1/instances``."""

    def child(self, segment: str):
        """The instance called ``segment`` (a UUID)."""
        return InstanceController(base.check_uuid(segment, SINGULAR))

    @base.route('instances:list')
    def get_all(self, req: base.Request) -> dict:
        """List instances, filtered by service, node and state."""
        filters = {}
        for name in ('node_id', 'state', 'role'):
            if name in req.query:
                filters[name] = req.query[name]
        service_id = req.query.get('service_id')
        if service_id is not None:
            service_id = service_id.lower()
            if not req.is_admin:
                scope.owned_parent(req, 'services', service_id, 'service')
            filters['service_id'] = service_id
        elif not req.is_admin:
            filters['service_id'] = scope.project_ids(req, 'services')
        return base.page(req, KIND, 'instances', filters, view)
