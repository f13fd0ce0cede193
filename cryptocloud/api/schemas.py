"""JSON schemas of the admin API, compiled once with fastjsonschema.

The same dictionaries validate requests (``Validator`` raises
InvalidInput naming the field) and are published in
``api-ref/admin-v1.yaml``.  Every object schema sets
``additionalProperties: false``: a misspelt field is an error, not a
silently ignored wish.
"""

import re

from cryptocloud.cryptoservice.schemas import Validator  # noqa: F401

UUID_PATTERN = ('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                '[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
UUID_RE = re.compile(UUID_PATTERN)
CREDENTIAL_ID_PATTERN = '^[0-9a-f]{32}$'
CREDENTIAL_ID_RE = re.compile(CREDENTIAL_ID_PATTERN)
# Node and association ids are database integers.
MAX_INT_ID = 2 ** 31 - 1

MAX_NAME = 255
MIN_GROUP_SIZE = 1
MAX_GROUP_SIZE = 100
MIN_INSTANCES = 1
MAX_INSTANCES = 50
MAX_REPLICAS = 5
DEFAULT_REPLICAS = 1
MAX_ALGORITHMS = 32

NODE_ROLES = ('device', 'service')
NODE_STATES = ('UP', 'DOWN')
RESOURCE_STATES = ('CREATING', 'ACTIVE', 'UPDATING', 'ERROR', 'DELETING')
WORKLOAD_STATES = ('BUILDING', 'ACTIVE', 'ERROR', 'DELETING')
TASK_STATES = ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')
TASK_ACTIONS = ('create_vhsm_group', 'resize_vhsm_group',
                'delete_vhsm_group', 'create_service', 'resize_service',
                'delete_service', 'update_service_credentials',
                'reconcile_vhsm_group', 'reconcile_service', 'build_images')
IMAGE_KINDS = ('vhsm', 'cryptoservice')


def _obj(properties: dict, required: tuple = (), **extra) -> dict:
    schema = {'type': 'object', 'additionalProperties': False,
              'properties': properties}
    if required:
        schema['required'] = list(required)
    schema.update(extra)
    return schema


UUID = {'type': 'string', 'pattern': UUID_PATTERN}
NAME = {'type': 'string', 'minLength': 1, 'maxLength': MAX_NAME,
        'description': 'A name for people; need not be unique.'}
GROUP_SIZE = {'type': 'integer', 'minimum': MIN_GROUP_SIZE,
              'maximum': MAX_GROUP_SIZE,
              'description': 'Number of vHSMs in the group.'}
INSTANCES = {'type': 'integer', 'minimum': MIN_INSTANCES,
             'maximum': MAX_INSTANCES,
             'description': 'Number of primary service instances.'}

# -- request bodies ---------------------------------------------------------

NODE_UPDATE = _obj({
    'enabled': {'type': 'boolean',
                'description': 'false keeps the scheduler from placing new '
                               'workloads on the node; running ones stay.'},
}, ('enabled',))

GROUP_CREATE = _obj({
    'name': NAME,
    'size': GROUP_SIZE,
}, ('size',))

GROUP_UPDATE = _obj({
    'size': GROUP_SIZE,
}, ('size',))

SERVICE_CREATE = _obj({
    'name': NAME,
    'vhsm_group_id': dict(UUID, description='The vHSM group the service '
                                            'uses; same project.'),
    'instances': INSTANCES,
    'replicas': {'type': 'integer', 'minimum': 0, 'maximum': MAX_REPLICAS,
                 'description': 'Standby replicas per instance (default '
                                '%d).' % DEFAULT_REPLICAS},
    'algorithms': {'type': 'array', 'maxItems': MAX_ALGORITHMS,
                   'uniqueItems': True,
                   'items': {'type': 'string',
                             'pattern': '^[A-Z0-9_]{1,32}$'},
                   'description': 'Algorithms the service offers, e.g. '
                                  'SM2, SM4 (default: all the vHSM '
                                  'supports).'},
}, ('vhsm_group_id', 'instances'))

SERVICE_UPDATE = _obj({
    'instances': INSTANCES,
}, ('instances',))

IMAGE_BUILD = _obj({
    'kinds': {'type': 'array', 'items': {'type': 'string',
                                         'enum': list(IMAGE_KINDS)},
              'minItems': 1, 'uniqueItems': True,
              'description': 'Images to build; both by default.'},
    'push': {'type': 'boolean',
             'description': 'Push to the registry and record the digests '
                            '(default true).'},
})
EMPTY = _obj({}, description='No fields; an empty body is accepted.')

# -- query strings ------------------------------------------------------------
# Values arrive as text; the app converts "integer" and "boolean" ones
# before checking, so these schemas see typed values.


def list_query(marker: dict, filters: dict) -> dict:
    """Query parameters of a list call: paging plus ``filters``."""
    query = {
        'limit': {'type': 'integer', 'minimum': 1,
                  'description': 'Largest number of items to return '
                                 '(default and maximum: [api] '
                                 'max_limit).'},
        'marker': dict(marker, description='Id of the last item of the '
                                           'previous page.'),
        'sort_dir': {'type': 'string', 'enum': ['asc', 'desc'],
                     'description': 'Order by id (default asc).'},
    }
    query.update(filters)
    return query


INT_ID = {'type': 'integer', 'minimum': 1, 'maximum': MAX_INT_ID}


def _state(values) -> dict:
    return {'type': 'string', 'enum': list(values)}


NODE_QUERY = list_query(INT_ID, {
    'role': dict(_state(NODE_ROLES), description='Nodes with this role.'),
    'state': _state(NODE_STATES),
    'enabled': {'type': 'boolean'},
})
GROUP_QUERY = list_query(UUID, {'state': _state(RESOURCE_STATES)})
SERVICE_QUERY = list_query(UUID, {
    'state': _state(RESOURCE_STATES),
    'vhsm_group_id': UUID,
})
INSTANCE_QUERY = list_query(UUID, {
    'service_id': UUID, 'node_id': INT_ID,
    'state': _state(WORKLOAD_STATES),
})
VHSM_QUERY = list_query(UUID, {
    'group_id': UUID, 'node_id': INT_ID,
    'state': _state(WORKLOAD_STATES),
})
ASSOCIATION_QUERY = list_query(INT_ID, {
    'vhsm_id': UUID, 'instance_id': UUID,
    'service_id': dict(UUID, description='Associations of this service\'s '
                                         'instances.'),
    'group_id': dict(UUID, description='Associations of this group\'s '
                                       'vHSMs.'),
})
IMAGE_QUERY = list_query(UUID, {'kind': _state(IMAGE_KINDS)})
TASK_QUERY = list_query(UUID, {
    'state': _state(TASK_STATES),
    'action': _state(TASK_ACTIONS),
    'resource_id': {'type': 'string', 'minLength': 1, 'maxLength': 36},
})

# -- responses (documentation) ------------------------------------------------

_STR = {'type': 'string'}
_NSTR = {'type': 'string', 'nullable': True}
_INT = {'type': 'integer'}
_NINT = {'type': 'integer', 'nullable': True}
_TIME = {'type': 'string', 'format': 'date-time'}
_NTIME = {'type': 'string', 'format': 'date-time', 'nullable': True}
_NEXT = {'type': 'string', 'nullable': True,
         'description': 'URL of the next page; null on the last page.'}


def _ref(name: str) -> dict:
    return {'$ref': '#/components/schemas/%s' % name}


NODE = {'type': 'object', 'properties': {
    'id': _INT, 'hostname': _STR, 'address': _STR,
    'roles': {'type': 'array', 'items': _state(NODE_ROLES)},
    'vhsm_capacity': _INT, 'instance_capacity': _INT,
    'enabled': {'type': 'boolean'}, 'state': _state(NODE_STATES),
    'last_heartbeat': _NTIME,
    'load': {'type': 'object', 'nullable': True},
    'created_at': _TIME, 'updated_at': _TIME}}
_IMAGE_REF = dict(_NSTR, description='The image its workloads run from, '
                                     'pinned by digest at creation.')
VHSM_GROUP = {'type': 'object', 'properties': {
    'id': _STR, 'name': _NSTR, 'project_id': _STR, 'size': _INT,
    'image': _IMAGE_REF,
    'state': _state(RESOURCE_STATES), 'status_reason': _NSTR,
    'created_at': _TIME, 'updated_at': _TIME}}
SERVICE = {'type': 'object', 'properties': {
    'id': _STR, 'name': _NSTR, 'project_id': _STR, 'vhsm_group_id': _STR,
    'instances': _INT, 'replicas': _INT,
    'algorithms': {'type': 'array', 'items': _STR, 'nullable': True},
    'image': _IMAGE_REF,
    'state': _state(RESOURCE_STATES), 'status_reason': _NSTR,
    'endpoint': {'type': 'object', 'nullable': True,
                 'description': 'Where tenants call the service; set '
                                'while it is ACTIVE.',
                 'properties': {'host': _STR, 'port': _INT}},
    'created_at': _TIME, 'updated_at': _TIME}}
INSTANCE = {'type': 'object', 'properties': {
    'id': _STR, 'service_id': _STR, 'node_id': _NINT, 'host': _NSTR,
    'port': _NINT, 'role': _STR, 'state': _state(WORKLOAD_STATES),
    'status_reason': _NSTR, 'workload_ref': _NSTR,
    'created_at': _TIME, 'updated_at': _TIME}}
VHSM = {'type': 'object', 'properties': {
    'id': _STR, 'group_id': _STR, 'node_id': _NINT, 'host': _NSTR,
    'port': _NINT, 'status_port': _NINT, 'state': _state(WORKLOAD_STATES),
    'status_reason': _NSTR, 'workload_ref': _NSTR,
    'created_at': _TIME, 'updated_at': _TIME}}
ASSOCIATION = {'type': 'object', 'properties': {
    'id': _INT, 'vhsm_id': _STR, 'instance_id': _STR, 'created_at': _TIME}}
TASK = {'type': 'object', 'properties': {
    'id': _STR, 'request_id': _NSTR, 'project_id': _NSTR, 'user_id': _NSTR,
    'action': _state(TASK_ACTIONS), 'resource_type': _NSTR,
    'resource_id': _NSTR, 'params': {'type': 'object', 'nullable': True},
    'state': _state(TASK_STATES), 'error': _NSTR, 'owner': _NSTR,
    'created_at': _TIME, 'updated_at': _TIME, 'started_at': _NTIME,
    'finished_at': _NTIME}}
IMAGE = {'type': 'object', 'properties': {
    'id': _STR, 'kind': _state(IMAGE_KINDS), 'repository': _STR,
    'tag': _STR, 'digest': _STR,
    'reference': dict(_STR, description='registry/repository@digest, as '
                                        'compute nodes pull it.'),
    'version': _NSTR, 'revision': _NSTR, 'size': _NINT,
    'created_at': _TIME}}
CREDENTIAL = {'type': 'object', 'properties': {
    'id': _STR, 'service_id': _STR, 'project_id': _STR, 'created_at': _TIME}}
NEW_CREDENTIAL = {'type': 'object', 'properties': {
    'id': _STR,
    'token': {'type': 'string',
              'description': '"<id>.<secret>": shown once, never again.'}}}


def _list(key: str, item: str) -> dict:
    return {'type': 'object', 'properties': {
        key: {'type': 'array', 'items': _ref(item)}, 'next': _NEXT}}


RESPONSES = {
    'versions': {'type': 'object', 'properties': {
        'versions': {'type': 'array', 'items': _ref('Version')},
        'default_version': _ref('Version')}},
    'version': {'type': 'object', 'properties': {
        'id': _STR, 'status': _STR,
        'links': {'type': 'array', 'items': {'type': 'object'}}}},
    'node': NODE,
    'node_list': _list('nodes', 'Node'),
    'vhsm_group': VHSM_GROUP,
    'vhsm_group_list': _list('vhsm_groups', 'VhsmGroup'),
    'vhsm_group_accepted': {'type': 'object', 'properties': {
        'task': _ref('Task'), 'vhsm_group': _ref('VhsmGroup')}},
    'service': SERVICE,
    'service_list': _list('services', 'Service'),
    'service_accepted': {'type': 'object', 'properties': {
        'task': _ref('Task'), 'service': _ref('Service')}},
    'service_created': {'type': 'object', 'properties': {
        'task': _ref('Task'), 'service': _ref('Service'),
        'credential': _ref('NewCredential')}},
    'credential': CREDENTIAL,
    'new_credential': NEW_CREDENTIAL,
    'credential_created': {'type': 'object', 'properties': {
        'task': _ref('Task'), 'credential': _ref('NewCredential')}},
    'credential_list': {'type': 'object', 'properties': {
        'credentials': {'type': 'array', 'items': _ref('Credential')}}},
    'credential_deleted': {'type': 'object', 'properties': {
        'task': _ref('Task')}},
    'instance': INSTANCE,
    'instance_list': _list('instances', 'Instance'),
    'vhsm': VHSM,
    'vhsm_list': _list('vhsms', 'Vhsm'),
    'association': ASSOCIATION,
    'association_list': _list('associations', 'Association'),
    'task': TASK,
    'task_list': _list('tasks', 'Task'),
    'image': IMAGE,
    'image_list': _list('images', 'Image'),
    'image_build_accepted': {'type': 'object', 'properties': {
        'task': _ref('Task')}},
    'error': {'type': 'object', 'required': ['error'], 'properties': {
        'error': {'type': 'object', 'required': ['code', 'type', 'message'],
                  'properties': {'code': _INT, 'type': _STR,
                                 'message': _STR}}}},
}
