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
WORKLOAD_STATES = ('BUILDING', 'STANDBY', 'ACTIVE', 'ERROR', 'DELETING')
STANDBY_MODES = ('cold', 'hot')
TASK_STATES = ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')
TASK_ACTIONS = ('create_vhsm_group', 'resize_vhsm_group',
                'delete_vhsm_group', 'create_service', 'resize_service',
                'delete_service', 'update_service_credentials',
                'reconcile_vhsm_group', 'reconcile_service', 'build_images',
                'failover_service', 'scale_service')
IMAGE_KINDS = ('vhsm', 'cryptoservice')
# Per-instance load figures a scaling policy may watch (the heartbeats'
# figures, cryptocloud/conductor/nodes.py LOAD_FIGURES).
SCALING_METRICS = ('requests_per_s', 'in_flight', 'p95_ms', 'cpu')
SCALING_DECISIONS = ('hold', 'scale_out', 'scale_in', 'limited')
MAX_SCALING_BOUND = 1e9
DEFAULT_COOLDOWN = 60
MAX_COOLDOWN = 86400
DEFAULT_WINDOW = 30
MAX_WINDOW = 3600
DEFAULT_INSTANCE_STEP = 1


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
    'standby': {'type': 'string', 'enum': list(STANDBY_MODES),
                'description': 'cold (default): replicas are ready to '
                               'run and started when their primary '
                               'fails; hot: replicas run, for a faster '
                               'takeover.'},
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

_BOUND = {'type': 'number', 'minimum': 0, 'maximum': MAX_SCALING_BOUND}
_INSTANCE_STEP = {'type': 'integer', 'minimum': 0, 'maximum': MAX_INSTANCES}
_VHSM_STEP = {'type': 'integer', 'minimum': 0, 'maximum': MAX_GROUP_SIZE}
_VHSM_COUNT = {'type': 'integer', 'minimum': MIN_GROUP_SIZE,
               'maximum': MAX_GROUP_SIZE}
SCALING_POLICY_SET = _obj({
    'metric': {'type': 'string', 'enum': list(SCALING_METRICS),
               'description': 'The pressure figure, averaged over the '
                              'service\'s ACTIVE instances: requests_per_s '
                              '(requests per second), in_flight (requests '
                              'being served), p95_ms (95th percentile '
                              'latency, ms) or cpu (CPU seconds per '
                              'second).'},
    'lower': dict(_BOUND, description='Lower bound of the band: when every '
                                      'point of a whole window is below '
                                      'it, instances and vHSMs are '
                                      'removed. Less than upper.'),
    'upper': dict(_BOUND, description='Upper bound of the band: when the '
                                      'window average and the latest '
                                      'point are above it, instances and '
                                      'vHSMs are added.'),
    'add_instances': dict(_INSTANCE_STEP,
                          description='Instances added per scale-out '
                                      '(default %d).'
                                      % DEFAULT_INSTANCE_STEP),
    'remove_instances': dict(_INSTANCE_STEP,
                             description='Instances removed per scale-in '
                                         '(default %d).'
                                         % DEFAULT_INSTANCE_STEP),
    'add_vhsms': dict(_VHSM_STEP, description='vHSMs added to the '
                                              'service\'s group per '
                                              'scale-out (default 0).'),
    'remove_vhsms': dict(_VHSM_STEP, description='vHSMs removed from the '
                                                 'group per scale-in '
                                                 '(default 0).'),
    'min_instances': dict(INSTANCES, description='Fewest instances the '
                                                 'balancer leaves (default '
                                                 '%d).' % MIN_INSTANCES),
    'max_instances': dict(INSTANCES, description='Most instances the '
                                                 'balancer makes.'),
    'min_vhsms': dict(_VHSM_COUNT, description='Fewest vHSMs the balancer '
                                               'leaves in the group '
                                               '(default %d).'
                                               % MIN_GROUP_SIZE),
    'max_vhsms': dict(_VHSM_COUNT, description='Most vHSMs the balancer '
                                               'makes; required when '
                                               'add_vhsms is not 0.'),
    'cooldown': {'type': 'integer', 'minimum': 0, 'maximum': MAX_COOLDOWN,
                 'description': 'Seconds after a change of the fleet '
                                '(by the balancer or anyone) before the '
                                'balancer acts again (default %d).'
                                % DEFAULT_COOLDOWN},
    'window': {'type': 'integer', 'minimum': 1, 'maximum': MAX_WINDOW,
               'description': 'Evaluation window in seconds (default %d); '
                              'keep it at least twice the compute '
                              'heartbeat interval.' % DEFAULT_WINDOW},
    'enabled': {'type': 'boolean',
                'description': 'false keeps the policy but stops the '
                               'balancer from applying it (default '
                               'true).'},
}, ('metric', 'lower', 'upper', 'max_instances'))

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
    'role': dict(_state(('primary', 'replica')),
                 description='Primaries (serving) or replicas (standing '
                             'by).'),
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
    'standby': _state(STANDBY_MODES),
    'algorithms': {'type': 'array', 'items': _STR, 'nullable': True},
    'image': _IMAGE_REF,
    'state': _state(RESOURCE_STATES), 'status_reason': _NSTR,
    'endpoint': {'type': 'object', 'nullable': True,
                 'description': 'Where tenants call the service; set '
                                'while it is ACTIVE.',
                 'properties': {'host': _STR, 'port': _INT}},
    'created_at': _TIME, 'updated_at': _TIME}}
_LOAD = {'type': 'object', 'nullable': True,
         'description': 'The latest load figures its node reported '
                        '(with the heartbeat at load_updated_at).',
         'properties': {
             'requests_per_s': {'type': 'number'},
             'in_flight': {'type': 'number'},
             'p95_ms': {'type': 'number'},
             'cpu': {'type': 'number', 'description': 'CPU seconds per '
                                                      'second.'}}}
INSTANCE = {'type': 'object', 'properties': {
    'id': _STR, 'service_id': _STR, 'node_id': _NINT, 'host': _NSTR,
    'port': _NINT, 'role': _state(('primary', 'replica')),
    'replica_of': dict(_NSTR, description='The primary a replica stands '
                                          'by for.'),
    'state': _state(WORKLOAD_STATES),
    'status_reason': _NSTR, 'workload_ref': _NSTR,
    'load': _LOAD, 'load_updated_at': _NTIME,
    'created_at': _TIME, 'updated_at': _TIME}}
VHSM = {'type': 'object', 'properties': {
    'id': _STR, 'group_id': _STR, 'node_id': _NINT, 'host': _NSTR,
    'port': _NINT, 'status_port': _NINT, 'state': _state(WORKLOAD_STATES),
    'status_reason': _NSTR, 'workload_ref': _NSTR,
    'load': _LOAD, 'load_updated_at': _NTIME,
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
_NNUM = {'type': 'number', 'nullable': True}
SCALING_POLICY = {'type': 'object', 'properties': {
    'id': _STR, 'service_id': _STR, 'project_id': _STR,
    'metric': _state(SCALING_METRICS),
    'lower': {'type': 'number'}, 'upper': {'type': 'number'},
    'add_instances': _INT, 'remove_instances': _INT,
    'add_vhsms': _INT, 'remove_vhsms': _INT,
    'min_instances': _INT, 'max_instances': _INT,
    'min_vhsms': _INT, 'max_vhsms': _NINT,
    'cooldown': _INT, 'window': _INT, 'enabled': {'type': 'boolean'},
    'pressure': {'type': 'object', 'nullable': True,
                 'description': 'What the balancer measured last: the '
                                'window average, the latest point, the '
                                'number of points and of instances the '
                                'latest one averaged, and when.',
                 'properties': {'value': _NNUM, 'latest': _NNUM,
                                'points': _INT, 'samples': _NINT,
                                'at': _NTIME}},
    'evaluated_at': _NTIME,
    'last_decision': dict(_state(SCALING_DECISIONS), nullable=True),
    'last_reason': dict(_NSTR, description='Why the balancer decided what '
                                           'it did, in words (also why '
                                           'it could not scale).'),
    'last_scaled_at': _NTIME,
    'last_task_id': dict(_NSTR, description='The scale_service task of '
                                            'the last decision to scale.'),
    'created_at': _TIME, 'updated_at': _TIME}}
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
    'scaling_policy': SCALING_POLICY,
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
