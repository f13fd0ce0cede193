"""``/v1/services/{service_id}/scaling_policy``: the service's pressure
policy (the patent's claim 7).

A policy is configuration the conductors' balancer reads at each pass,
like a node's ``enabled`` flag: setting or deleting it records no task
and answers at once.  What the balancer then decides is recorded: every
scaling is a ``scale_service`` task, and the policy shows the last
pressure measured and the last decision with its reason.

Replacing a policy starts its evaluation afresh (the pressure points of
the old settings are dropped); the cooldown still counts from the last
change of the fleet.
"""

import datetime
import uuid

from cryptocloud.api import schemas
from cryptocloud.api.controllers import base
from cryptocloud.api.controllers.v1 import scope
from cryptocloud.common import exception
from cryptocloud.common import states

KIND = 'scaling_policies'
SINGULAR = 'scaling_policy'

# API field -> column, where they differ.
_COLUMNS = {'cooldown': 'cooldown_seconds', 'window': 'window_seconds'}
_DEFAULTS = {
    'add_instances': schemas.DEFAULT_INSTANCE_STEP,
    'remove_instances': schemas.DEFAULT_INSTANCE_STEP,
    'add_vhsms': 0, 'remove_vhsms': 0,
    'min_instances': schemas.MIN_INSTANCES,
    'min_vhsms': schemas.MIN_GROUP_SIZE, 'max_vhsms': None,
    'cooldown': schemas.DEFAULT_COOLDOWN, 'window': schemas.DEFAULT_WINDOW,
    'enabled': True,
}
# A policy replaced or made: its evaluation starts again.
_FRESH = {'pressure': None, 'evaluated_at': None, 'last_decision': None,
          'last_reason': None}
# Rows of the API's writes race a conductor's evaluation at most this
# many times (each evaluation is one short UPDATE).
_ATTEMPTS = 5


def _pressure(row: dict) -> dict | None:
    points = (row.get('pressure') or {}).get('points') or []
    if not points:
        return None
    values = [p[1] for p in points]
    at = datetime.datetime.fromtimestamp(points[-1][0], datetime.UTC)
    return {'value': round(sum(values) / len(values), 3),
            'latest': values[-1], 'points': len(points),
            'samples': points[-1][2], 'at': at.replace(tzinfo=None)}


def view(row: dict) -> dict:
    """A policy as the API shows it, with the balancer's last word."""
    shown = {'id': row['id'], 'service_id': row['service_id'],
             'project_id': row['project_id']}
    for field in schemas.SCALING_POLICY_SET['properties']:
        shown[field] = row[_COLUMNS.get(field, field)]
    shown.update({
        'pressure': _pressure(row),
        'evaluated_at': row.get('evaluated_at'),
        'last_decision': row.get('last_decision'),
        'last_reason': row.get('last_reason'),
        'last_scaled_at': row.get('last_scaled_at'),
        'last_task_id': row.get('last_task_id'),
        'created_at': row['created_at'],
        'updated_at': row.get('updated_at')})
    return shown


def _invalid(reason: str) -> exception.InvalidInput:
    return exception.InvalidInput(reason=reason)


def settings(body: dict) -> dict:
    """The policy's columns from a validated body: defaults, cross-checks.
    """
    values = dict(_DEFAULTS)
    values.update(body)
    if not values['lower'] < values['upper']:
        raise _invalid('lower (%s) must be less than upper (%s)'
                       % (values['lower'], values['upper']))
    if values['min_instances'] > values['max_instances']:
        raise _invalid('min_instances (%d) must not exceed max_instances '
                       '(%d)' % (values['min_instances'],
                                 values['max_instances']))
    if values['add_vhsms'] and values['max_vhsms'] is None:
        raise _invalid('max_vhsms is required when add_vhsms is not 0')
    if (values['max_vhsms'] is not None
            and values['min_vhsms'] > values['max_vhsms']):
        raise _invalid('min_vhsms (%d) must not exceed max_vhsms (%d)'
                       % (values['min_vhsms'], values['max_vhsms']))
    if not (values['add_instances'] or values['add_vhsms']):
        raise _invalid('add_instances or add_vhsms must be at least 1: '
                       'the policy must be able to scale out')
    if not (values['remove_instances'] or values['remove_vhsms']):
        raise _invalid('remove_instances or remove_vhsms must be at least '
                       '1: the policy must be able to scale in (set lower '
                       'to 0 to never scale in)')
    return {_COLUMNS.get(k, k): v for k, v in values.items()}


class ScalingPolicyController(base.Controller):
    """``/v1/services/{service_id}/scaling_policy``."""

    def __init__(self, service_id: str):
        self.service_id = service_id

    def _load(self, req: base.Request) -> tuple[dict, dict | None]:
        service = scope.load_owned(req, 'services', self.service_id,
                                   'service')
        rows = req.conn.list(KIND, filters={'service_id': service['id']})
        return service, (rows[0] if rows else None)

    def _existing(self, req: base.Request) -> dict:
        service, policy = self._load(req)
        if policy is None:
            raise exception.ResourceNotFound(
                kind='scaling policy of service', id=service['id'])
        return policy

    @base.route('scaling_policy:get')
    def get(self, req: base.Request) -> dict:
        """Show the policy; 404 when the service has none."""
        return view(self._existing(req))

    @base.route('scaling_policy:set')
    def put(self, req: base.Request) -> dict:
        """Create or replace the policy."""
        values = settings(req.body)
        for _attempt in range(_ATTEMPTS):
            service, policy = self._load(req)
            if service['state'] == states.DELETING:
                raise exception.InvalidState(
                    kind='service', resource_id=service['id'],
                    state=service['state'], action='set a scaling policy')
            if policy is None:
                try:
                    return view(req.conn.create(KIND, dict(
                        values, **_FRESH, id=str(uuid.uuid4()),
                        service_id=service['id'],
                        project_id=service['project_id'], generation=0)))
                except exception.Conflict:
                    continue  # made concurrently: replace that one
            # A compare-and-swap, so that a balancer pass judging by the
            # old settings cannot record its decision afterwards.
            row = req.conn.update_if(
                KIND, policy['id'], {'generation': policy['generation']},
                dict(values, **_FRESH, generation=policy['generation'] + 1))
            if row is not None:
                return view(row)
        raise exception.Conflict(
            reason='the scaling policy of service %s kept changing; retry'
                   % self.service_id)

    @base.route('scaling_policy:delete')
    def delete(self, req: base.Request) -> None:
        """Delete the policy; the service keeps its size."""
        policy = self._existing(req)
        req.conn.delete(KIND, policy['id'])
