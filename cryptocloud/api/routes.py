"""The admin API's route table: one entry per (method, path).

Controllers bind their handlers to these entries by name (see
``controllers/base.route``), the OpenAPI document is generated from them,
and a unit test checks that every entry has exactly one handler.  A route
carries its policy rule, body and query schemas, and success status, so
a handler only does the work.
"""

import dataclasses

from cryptocloud.api import schemas


@dataclasses.dataclass(frozen=True)
class Route:
    """One operation of the admin API."""

    name: str
    method: str
    template: str
    summary: str
    response: str
    status: int = 200
    body: dict | None = None
    query: dict | None = None
    # Policy rule checked before the handler runs; None: no caller needed.
    policy: str | None = None
    # Statuses beyond the usual ones (documentation).
    errors: tuple[int, ...] = ()
    # An empty body stands for {} (POST actions without fields).
    body_optional: bool = False

    @property
    def public(self) -> bool:
        """True for routes that answer without credentials."""
        return self.policy is None


ROUTES: tuple[Route, ...] = (
    Route('versions', 'GET', '/', 'List the API versions.', 'versions'),
    Route('version', 'GET', '/v1', 'Describe API version 1.', 'version'),

    Route('nodes:list', 'GET', '/v1/nodes',
          'List compute nodes (admin only).', 'node_list',
          query=schemas.NODE_QUERY, policy='cryptocloud:node:get'),
    Route('nodes:get', 'GET', '/v1/nodes/{node_id}',
          'Show a compute node (admin only).', 'node',
          policy='cryptocloud:node:get'),
    Route('nodes:update', 'PATCH', '/v1/nodes/{node_id}',
          'Enable or disable a node for scheduling (admin only).', 'node',
          body=schemas.NODE_UPDATE, policy='cryptocloud:node:update'),

    Route('vhsm_groups:list', 'GET', '/v1/vhsm_groups',
          'List vHSM groups (the caller\'s project\'s, or all for an '
          'admin).', 'vhsm_group_list', query=schemas.GROUP_QUERY,
          policy='cryptocloud:vhsm_group:get'),
    Route('vhsm_groups:create', 'POST', '/v1/vhsm_groups',
          'Create a vHSM group of `size` vHSMs.', 'vhsm_group_accepted',
          status=202, body=schemas.GROUP_CREATE,
          policy='cryptocloud:vhsm_group:create', errors=(503,)),
    Route('vhsm_groups:get', 'GET', '/v1/vhsm_groups/{group_id}',
          'Show a vHSM group.', 'vhsm_group',
          policy='cryptocloud:vhsm_group:get'),
    Route('vhsm_groups:update', 'PATCH', '/v1/vhsm_groups/{group_id}',
          'Resize a vHSM group.', 'vhsm_group_accepted', status=202,
          body=schemas.GROUP_UPDATE, policy='cryptocloud:vhsm_group:update',
          errors=(409, 503)),
    Route('vhsm_groups:delete', 'DELETE', '/v1/vhsm_groups/{group_id}',
          'Delete a vHSM group; refused while services use it.',
          'vhsm_group_accepted', status=202,
          policy='cryptocloud:vhsm_group:delete', errors=(409, 503)),

    Route('services:list', 'GET', '/v1/services',
          'List services (the caller\'s project\'s, or all for an admin).',
          'service_list', query=schemas.SERVICE_QUERY,
          policy='cryptocloud:service:get'),
    Route('services:create', 'POST', '/v1/services',
          'Create a service in front of a vHSM group; the answer holds '
          'its first credential token, shown only this once.',
          'service_created', status=202, body=schemas.SERVICE_CREATE,
          policy='cryptocloud:service:create', errors=(409, 503)),
    Route('services:get', 'GET', '/v1/services/{service_id}',
          'Show a service; `endpoint` is set while it is ACTIVE.',
          'service', policy='cryptocloud:service:get'),
    Route('services:update', 'PATCH', '/v1/services/{service_id}',
          'Change the number of instances of a service.',
          'service_accepted', status=202, body=schemas.SERVICE_UPDATE,
          policy='cryptocloud:service:update', errors=(409, 503)),
    Route('services:delete', 'DELETE', '/v1/services/{service_id}',
          'Delete a service and its instances.', 'service_accepted',
          status=202, policy='cryptocloud:service:delete',
          errors=(409, 503)),
    Route('credentials:list', 'GET',
          '/v1/services/{service_id}/credentials',
          'List a service\'s credentials (ids only, never secrets).',
          'credential_list', policy='cryptocloud:service:credential:get'),
    Route('credentials:create', 'POST',
          '/v1/services/{service_id}/credentials',
          'Make a new credential; its token is shown only this once.',
          'credential_created', status=201, body=schemas.EMPTY,
          body_optional=True,
          policy='cryptocloud:service:credential:create', errors=(409, 503)),
    Route('credentials:delete', 'DELETE',
          '/v1/services/{service_id}/credentials/{credential_id}',
          'Revoke a credential.', 'credential_deleted', status=202,
          policy='cryptocloud:service:credential:delete', errors=(409, 503)),
    Route('scaling_policy:get', 'GET',
          '/v1/services/{service_id}/scaling_policy',
          'Show the service\'s scaling policy and what the balancer last '
          'measured and decided; 404 when it has none.', 'scaling_policy',
          policy='cryptocloud:service:scaling_policy:get'),
    Route('scaling_policy:set', 'PUT',
          '/v1/services/{service_id}/scaling_policy',
          'Create or replace the service\'s scaling policy (no task: the '
          'balancer reads it at its next pass).', 'scaling_policy',
          body=schemas.SCALING_POLICY_SET,
          policy='cryptocloud:service:scaling_policy:set', errors=(409,)),
    Route('scaling_policy:delete', 'DELETE',
          '/v1/services/{service_id}/scaling_policy',
          'Delete the service\'s scaling policy; the service keeps its '
          'current size.', 'no_content', status=204,
          policy='cryptocloud:service:scaling_policy:delete'),

    Route('instances:list', 'GET', '/v1/instances',
          'List service instances.', 'instance_list',
          query=schemas.INSTANCE_QUERY, policy='cryptocloud:instance:get'),
    Route('instances:get', 'GET', '/v1/instances/{instance_id}',
          'Show a service instance.', 'instance',
          policy='cryptocloud:instance:get'),
    Route('vhsms:list', 'GET', '/v1/vhsms', 'List vHSMs.', 'vhsm_list',
          query=schemas.VHSM_QUERY, policy='cryptocloud:vhsm:get'),
    Route('vhsms:get', 'GET', '/v1/vhsms/{vhsm_id}', 'Show a vHSM.', 'vhsm',
          policy='cryptocloud:vhsm:get'),
    Route('associations:list', 'GET', '/v1/associations',
          'List associations between service instances and vHSMs.',
          'association_list', query=schemas.ASSOCIATION_QUERY,
          policy='cryptocloud:association:get'),
    Route('associations:get', 'GET', '/v1/associations/{association_id}',
          'Show an association.', 'association',
          policy='cryptocloud:association:get'),
    Route('tasks:list', 'GET', '/v1/tasks',
          'List tasks (one per mutating request).', 'task_list',
          query=schemas.TASK_QUERY, policy='cryptocloud:task:get'),
    Route('tasks:get', 'GET', '/v1/tasks/{task_id}', 'Show a task.',
          'task', policy='cryptocloud:task:get'),

    Route('images:list', 'GET', '/v1/images',
          'List the published images (admin only).', 'image_list',
          query=schemas.IMAGE_QUERY, policy='cryptocloud:image:get'),
    Route('images:get', 'GET', '/v1/images/{image_id}',
          'Show a published image (admin only).', 'image',
          policy='cryptocloud:image:get'),
    Route('images:build', 'POST', '/v1/images',
          'Build the vHSM and crypto-service images on the master node '
          'and push them to the registry, as a task (admin only).',
          'image_build_accepted', status=202, body=schemas.IMAGE_BUILD,
          body_optional=True, policy='cryptocloud:image:build',
          errors=(503,)),
)

BY_NAME: dict[str, Route] = {r.name: r for r in ROUTES}
assert len(BY_NAME) == len(ROUTES)
