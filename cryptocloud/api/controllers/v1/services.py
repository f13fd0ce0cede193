"""``/v1/services``: crypto services and their credentials.

Creating a service makes its first credential: the token is generated
here, only its SHA-256 is stored (``service_credentials``), and the token
is in the 202 response and nowhere else.  Later credentials are made and
revoked under ``/v1/services/{id}/credentials``; each change is a task
(``update_service_credentials``) whose workflow pushes the hashes to the
running instances.
"""

import uuid

from cryptocloud.api import credentials as credentials_mod
from cryptocloud.api import schemas
from cryptocloud.api import tasks
from cryptocloud.api.controllers import base
from cryptocloud.api.controllers.v1 import scaling_policies
from cryptocloud.api.controllers.v1 import scope
from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.images import catalog

KIND = 'services'
SINGULAR = 'service'
CREDENTIALS = 'service_credentials'


def view(row: dict) -> dict:
    """A service as the API shows it; ``endpoint`` only while ACTIVE."""
    endpoint = None
    if row['state'] == states.ACTIVE and row.get('endpoint_host'):
        endpoint = {'host': row['endpoint_host'],
                    'port': row.get('endpoint_port')}
    return {'id': row['id'], 'name': row.get('name'),
            'project_id': row['project_id'],
            'vhsm_group_id': row['group_id'],
            'instances': row['target_instances'],
            'replicas': row['replicas'],
            'standby': row.get('standby') or 'cold',
            'algorithms': row.get('algorithms'),
            'image': row.get('image_ref'),
            'state': row['state'], 'status_reason': row.get('status_reason'),
            'endpoint': endpoint,
            'created_at': row['created_at'],
            'updated_at': row.get('updated_at')}


def credential_view(row: dict) -> dict:
    """A credential without its hash."""
    return {'id': row['id'], 'service_id': row['service_id'],
            'project_id': row['project_id'],
            'created_at': row['created_at']}


def _check_allowed(row: dict, event: str) -> None:
    if not states.RESOURCE_MACHINE.allows(row['state'], event):
        raise exception.InvalidState(kind=SINGULAR, resource_id=row['id'],
                                     state=row['state'], action=event)


def _not_deleting(service: dict) -> None:
    if service['state'] == states.DELETING:
        raise exception.InvalidState(
            kind=SINGULAR, resource_id=service['id'],
            state=service['state'], action='change credentials')


def _cast_or_forget(req: base.Request, task: dict, cred_id: str,
                    resource_kind: str | None = None) -> dict:
    # A token that is never shown must not stay valid: when the cast
    # fails (503), its credential goes too.
    try:
        return tasks.cast(req.conn, req.conductor, req.ctx, task,
                          resource_kind)
    except exception.ServiceUnavailable:
        try:
            req.conn.delete(CREDENTIALS, cred_id)
        except exception.NotFound:
            pass
        raise


class CredentialController(base.Controller):
    """``/v1/services/{service_id}/credentials/{credential_id}``."""

    def __init__(self, service_id: str, credential_id: str):
        self.service_id = service_id
        self.credential_id = credential_id

    @base.route('credentials:delete')
    def delete(self, req: base.Request) -> dict:
        """Revoke a credential; instances drop it when the task runs."""
        service = scope.load_owned(req, KIND, self.service_id, SINGULAR)
        cred = req.conn.get(CREDENTIALS, self.credential_id)
        if cred['service_id'] != service['id']:
            raise exception.ResourceNotFound(kind='credential',
                                             id=self.credential_id)
        _not_deleting(service)
        task = tasks.record(req.conn, req.ctx, 'update_service_credentials',
                            SINGULAR, service['id'],
                            {'revoked': cred['id']})
        try:
            req.conn.delete(CREDENTIALS, cred['id'])
        except Exception as exc:
            tasks.abandon(req.conn, task, exc)
            raise
        task = tasks.cast(req.conn, req.conductor, req.ctx, task)
        return {'task': tasks.view(task)}


class CredentialsController(base.Controller):
    """``/v1/services/{service_id}/credentials``."""

    def __init__(self, service_id: str):
        self.service_id = service_id

    def child(self, segment: str):
        """The credential called ``segment`` (32 hex digits)."""
        if not schemas.CREDENTIAL_ID_RE.match(segment):
            raise exception.ResourceNotFound(kind='credential',
                                             id=segment[:64])
        return CredentialController(self.service_id, segment)

    @base.route('credentials:list')
    def get_all(self, req: base.Request) -> dict:
        """List the service's credentials (no secrets, no hashes)."""
        service = scope.load_owned(req, KIND, self.service_id, SINGULAR)
        rows = req.conn.list(CREDENTIALS,
                             filters={'service_id': service['id']})
        return {'credentials': [credential_view(r) for r in rows]}

    @base.route('credentials:create')
    def post(self, req: base.Request) -> dict:
        """Make a credential; its token is in this answer only."""
        service = scope.load_owned(req, KIND, self.service_id, SINGULAR)
        _not_deleting(service)
        cred_id, token, digest = credentials_mod.new_token()
        task = tasks.record(req.conn, req.ctx, 'update_service_credentials',
                            SINGULAR, service['id'], {'added': cred_id})
        try:
            req.conn.create(CREDENTIALS, {
                'id': cred_id, 'service_id': service['id'],
                'project_id': service['project_id'],
                'secret_sha256': digest})
        except Exception as exc:
            tasks.abandon(req.conn, task, exc)
            raise
        task = _cast_or_forget(req, task, cred_id)
        return {'task': tasks.view(task),
                'credential': {'id': cred_id, 'token': token}}


class ServiceController(base.Controller):
    """``/v1/services/{service_id}``."""

    def __init__(self, service_id: str):
        self.service_id = service_id

    def child(self, segment: str):
        """``credentials`` and ``scaling_policy`` are below a service."""
        if segment == 'credentials':
            return CredentialsController(self.service_id)
        if segment == 'scaling_policy':
            return scaling_policies.ScalingPolicyController(self.service_id)
        return None

    @base.route('services:get')
    def get(self, req: base.Request) -> dict:
        """Show a service."""
        return view(scope.load_owned(req, KIND, self.service_id, SINGULAR))

    @base.route('services:update')
    def patch(self, req: base.Request) -> dict:
        """Change the number of instances."""
        service = scope.load_owned(req, KIND, self.service_id, SINGULAR)
        _check_allowed(service, 'resize')
        instances = req.body['instances']
        task = tasks.record(req.conn, req.ctx, 'resize_service', SINGULAR,
                            service['id'],
                            {'instances': instances,
                             'previous_instances':
                                 service['target_instances']})
        try:
            service = req.conn.transition(
                KIND, service['id'], states.RESOURCE_MACHINE, 'resize',
                {'target_instances': instances, 'status_reason': None})
        except Exception as exc:
            tasks.abandon(req.conn, task, exc)
            raise
        task = tasks.cast(req.conn, req.conductor, req.ctx, task, KIND)
        return {'task': tasks.view(task), SINGULAR: view(service)}

    @base.route('services:delete')
    def delete(self, req: base.Request) -> dict:
        """Delete a service and its instances."""
        service = scope.load_owned(req, KIND, self.service_id, SINGULAR)
        _check_allowed(service, 'delete')
        task = tasks.record(req.conn, req.ctx, 'delete_service', SINGULAR,
                            service['id'], {})
        try:
            service = req.conn.transition(
                KIND, service['id'], states.RESOURCE_MACHINE, 'delete')
        except Exception as exc:
            tasks.abandon(req.conn, task, exc)
            raise
        task = tasks.cast(req.conn, req.conductor, req.ctx, task, KIND)
        return {'task': tasks.view(task), SINGULAR: view(service)}


class ServicesController(base.Controller):
    """``/v1/services``."""

    def child(self, segment: str):
        """The service called ``segment`` (a UUID)."""
        return ServiceController(base.check_uuid(segment, SINGULAR))

    @base.route('services:list')
    def get_all(self, req: base.Request) -> dict:
        """List services; a non-admin sees their project's only."""
        filters = {}
        if 'state' in req.query:
            filters['state'] = req.query['state']
        if 'vhsm_group_id' in req.query:
            filters['group_id'] = req.query['vhsm_group_id'].lower()
        if not req.is_admin:
            filters['project_id'] = req.ctx.project_id
        return base.page(req, KIND, KIND, filters, view)

    @base.route('services:create')
    def post(self, req: base.Request) -> dict:
        """Create a service and its first credential."""
        body = req.body
        group_id = body['vhsm_group_id'].lower()
        try:
            group = scope.load_owned(req, 'vhsm_groups', group_id,
                                     'vhsm_group',
                                     'cryptocloud:vhsm_group:get')
        except exception.NotFound:
            raise exception.InvalidInput(
                reason='vhsm_group_id %s names no vHSM group of this '
                       'project' % group_id) from None
        if group['project_id'] != req.ctx.project_id:
            # An admin may see other projects' groups, but a service and
            # its group belong to one project.
            raise exception.InvalidInput(
                reason='vhsm_group_id %s belongs to another project'
                       % group_id)
        if group['state'] in (states.DELETING, states.ERROR):
            raise exception.InvalidState(
                kind='vhsm_group', resource_id=group_id,
                state=group['state'], action='create service')
        service_id = str(uuid.uuid4())
        cred_id, token, digest = credentials_mod.new_token()
        replicas = body.get('replicas', schemas.DEFAULT_REPLICAS)
        params = {'name': body.get('name'), 'group_id': group_id,
                  'instances': body['instances'], 'replicas': replicas,
                  'algorithms': body.get('algorithms'),
                  'standby': body.get('standby', 'cold'),
                  'credential_id': cred_id}
        task = tasks.record(req.conn, req.ctx, 'create_service', SINGULAR,
                            service_id, params)
        try:
            service = req.conn.create(KIND, {
                'id': service_id, 'name': body.get('name'),
                'project_id': req.ctx.project_id, 'group_id': group_id,
                'target_instances': body['instances'],
                'replicas': replicas,
                'standby': body.get('standby', 'cold'),
                'algorithms': body.get('algorithms'),
                'image_ref': catalog.reference_to_pin(
                    req.conn, catalog.CRYPTOSERVICE),
                'state': states.CREATING})
            req.conn.create(CREDENTIALS, {
                'id': cred_id, 'service_id': service_id,
                'project_id': req.ctx.project_id, 'secret_sha256': digest})
        except Exception as exc:
            tasks.abandon(req.conn, task, exc)
            raise
        task = _cast_or_forget(req, task, cred_id, KIND)
        return {'task': tasks.view(task), SINGULAR: view(service),
                'credential': {'id': cred_id, 'token': token}}
