"""``/v1/nodes``: compute nodes (admin only).

Nodes register themselves through the conductor; the API lists them and
lets an operator take one out of scheduling (``enabled``).  That flag is
read by the scheduler only, so the change is made here and now: there is
no workflow to cast and no task.
"""

from cryptocloud.api.controllers import base


def view(row: dict) -> dict:
    """A node as the API shows it."""
    return {name: row.get(name) for name in (
        'id', 'hostname', 'address', 'roles', 'vhsm_capacity',
        'instance_capacity', 'enabled', 'state', 'last_heartbeat', 'load',
        'created_at', 'updated_at')}


class NodeController(base.Controller):
    """``/v1/nodes/{node_id}``."""

    def __init__(self, node_id: int):
        self.node_id = node_id

    @base.route('nodes:get')
    def get(self, req: base.Request) -> dict:
        """Show a node."""
        return view(req.conn.get('nodes', self.node_id))

    @base.route('nodes:update')
    def patch(self, req: base.Request) -> dict:
        """Enable or disable a node."""
        return view(req.conn.update('nodes', self.node_id,
                                    {'enabled': req.body['enabled']}))


class NodesController(base.Controller):
    """``/v1/nodes``."""

    def child(self, segment: str):
        """The node called ``segment`` (an integer id)."""
        return NodeController(base.check_int_id(segment, 'node'))

    @base.route('nodes:list')
    def get_all(self, req: base.Request) -> dict:
        """List nodes, filtered by role, state and enabled."""
        filters = {}
        if 'role' in req.query:
            filters['roles'] = req.query['role']
        for name in ('state', 'enabled'):
            if name in req.query:
                filters[name] = req.query[name]
        return base.page(req, 'nodes', 'nodes', filters, view)

