"""The pressure balancer: each service's scaling policy, applied (claim 7).

Every ``[conductor] balancer_interval`` seconds, for each enabled policy
of an ACTIVE service:

1. **Pressure point.**  The policy's metric averaged over the service's
   ACTIVE primary instances whose latest load figures (stored by the
   heartbeats) are fresh: reported within the window and after the fleet
   last changed.  A pass adds a point only when a figure newer than the
   last point has arrived, so one heartbeat never counts twice: points
   come every balancer interval or every heartbeat, whichever is
   longer.  No fresh figure: no point and no decision.
2. **Pressure.**  The points of the window live on the policy row; the
   pressure is their mean.  Points from before the last change of the
   service's or its group's fleet are dropped, so a decision always
   describes the fleet as it is.
3. **Decision.**  Scale out when the pressure *and* the latest point are
   above ``upper`` (sustained and still true: a spike that ended or one
   that has only begun does not count).  Scale in only when *every*
   point of the window is below ``lower``, the fleet has been measured
   for a whole window since it last changed, and the pressure projected
   onto the smaller fleet (the window's highest point times n / (n - k))
   stays at or below ``upper``; otherwise fewer instances go, or none.
   Together with the band itself and the cooldown this is the
   anti-flapping rule: no scale-in ever predicts a scale-out.
4. **Limits.**  Steps are clamped to the policy's minimum and maximum
   and, when adding, to the free slots of UP, enabled nodes of the right
   role (an instance needs one slot for itself and one per replica).
   Clamped to nothing, the decision is ``limited`` and the policy row
   says why (``last_reason``); the log says so once.
5. **Action.**  A ``scale_service`` task, visible in ``/v1/tasks`` with
   the figures in its params, moves the service (and the group, when
   vHSMs change) to UPDATING with the new targets, as an admin's resize
   would; its workflow converges them with the resize code.

Nothing happens while the service or its group has a PENDING or RUNNING
task or is not ACTIVE, or within ``cooldown`` seconds of the last change
of the fleet (the end of the last task on the service or its group that
could change it, or the last scaling decision).
Several conductors may run this at once: an evaluation is written with a
compare-and-swap on the policy's ``generation``, and only the conductor
whose write lands records the task.
"""

import dataclasses
import datetime
import math
import uuid
from collections.abc import Callable

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import scale_service

LOG = logging.getLogger(__name__)

ACTION = scale_service.ACTION

HOLD = 'hold'
SCALE_OUT = 'scale_out'
SCALE_IN = 'scale_in'
LIMITED = 'limited'

# Tasks that leave a fleet as it was: the cooldown does not start again
# when they end, and the pressure points of the fleet stay valid.
NOT_SCALING = ('update_service_credentials', 'build_images')

_EPOCH = datetime.datetime(1970, 1, 1)
M = states.RESOURCE_MACHINE


def _ts(value: datetime.datetime | None) -> float:
    """Seconds since the epoch of a naive UTC time (0 for None)."""
    if value is None:
        return 0.0
    return (value - _EPOCH).total_seconds()


def _num(value: float) -> float | int:
    """A figure as people read it: an int when whole, else 3 decimals."""
    value = round(float(value), 3)
    return int(value) if value == int(value) else value


@dataclasses.dataclass
class Decision:
    """What one evaluation of one policy concluded."""

    decision: str
    reason: str
    figures: dict = dataclasses.field(default_factory=dict)
    instances: tuple[int, int] = (0, 0)
    vhsms: tuple[int, int] = (0, 0)
    # The policy's new pressure state; None leaves it as it was.
    pressure: dict | None = None

    @property
    def scales(self) -> bool:
        """True when the decision changes a fleet."""
        return self.decision in (SCALE_OUT, SCALE_IN)


@dataclasses.dataclass
class Snapshot:
    """What the balancer read for one service in this pass."""

    policy: dict
    service: dict | None
    group: dict | None
    # The service's primary instances, every state.
    primaries: list
    # task_activity() of the service and of its group.
    service_tasks: dict
    group_tasks: dict
    # kind ('instance' or 'vhsm') -> free slots in the cluster, asked
    # for only when a scale-out needs it.
    free_slots: Callable[[str], dict]


def _points(snap: Snapshot, now: datetime.datetime,
            settled: float) -> dict:
    """The policy's pressure state, with this pass's point if any.

    ``{'metric', 'since': when the measurement of this fleet began,
    'points': [[time, value, instances averaged], ...]}``, times in
    seconds since the epoch.
    """
    policy = snap.policy
    metric, window = policy['metric'], policy['window_seconds']
    cutoff = max(_ts(now) - window, settled)
    state = policy.get('pressure') or {}
    if state.get('metric') != metric:
        state = {}
    points = [p for p in state.get('points') or () if p[0] > cutoff]
    since = state.get('since')
    if not points or since is None or since <= settled:
        since = None
    fresh = []
    for inst in snap.primaries:
        load = inst.get('load')
        at = _ts(inst.get('load_updated_at'))
        if (inst['state'] == states.ACTIVE and isinstance(load, dict)
                and isinstance(load.get(metric), (int, float))
                and at > cutoff):
            fresh.append((at, float(load[metric])))
    if fresh:
        newest = round(max(at for at, _ in fresh), 3)
        if not points or newest > points[-1][0]:
            value = sum(v for _, v in fresh) / len(fresh)
            points.append([newest, round(value, 4), len(fresh)])
    if points and since is None:
        since = points[0][0]
    return {'metric': metric, 'since': since, 'points': points}


def _figures(policy: dict, pressure: dict) -> dict:
    points = pressure['points']
    values = [p[1] for p in points]
    return {'metric': policy['metric'],
            'value': _num(sum(values) / len(values)),
            'latest': _num(values[-1]), 'highest': _num(max(values)),
            'lower': _num(policy['lower']), 'upper': _num(policy['upper']),
            'window': policy['window_seconds'], 'points': len(points),
            'samples': points[-1][2]}


def _hold(reason: str, pressure: dict | None = None,
          figures: dict | None = None) -> Decision:
    return Decision(HOLD, reason, figures or {}, pressure=pressure)


def evaluate(snap: Snapshot, now: datetime.datetime) -> Decision:
    """Decide for one policy; pure apart from asking for free slots."""
    policy, service = snap.policy, snap.service
    if service is None:
        return _hold('the service is gone')
    if service['state'] != states.ACTIVE:
        return _hold('the service is %s' % service['state'])
    if snap.group is None or snap.group['state'] != states.ACTIVE:
        # Instances converge only with an ACTIVE group.
        return _hold('its vHSM group is %s' % (
            snap.group['state'] if snap.group else 'gone'))
    if snap.service_tasks.get('open') or snap.group_tasks.get('open'):
        return _hold('a task is open on the service or its vHSM group')
    target = int(service['target_instances'])
    active = [i for i in snap.primaries if i['state'] == states.ACTIVE]
    if len(active) != target or len(snap.primaries) != target:
        return _hold('the fleet is not settled: %d of %d instance(s) '
                     'ACTIVE' % (len(active), target))
    settled = _ts(max([t for t in (
        snap.service_tasks.get('last_finished_at'),
        snap.group_tasks.get('last_finished_at')) if t is not None],
        default=None))
    pressure = _points(snap, now, settled)
    if not pressure['points']:
        return _hold('no fresh load figures in the last %d s'
                     % policy['window_seconds'], pressure)
    fig = _figures(policy, pressure)
    lower, upper = policy['lower'], policy['upper']
    value, latest = fig['value'], fig['latest']
    described = '%s %s per instance over %d s (latest %s)' % (
        fig['metric'], value, fig['window'], latest)
    if value > upper and latest > upper:
        direction = SCALE_OUT
        why = '%s above upper %s' % (described, fig['upper'])
    elif fig['highest'] < lower:
        direction = SCALE_IN
        why = '%s, every point below lower %s' % (described, fig['lower'])
        measured_for = _ts(now) - pressure['since']
        if measured_for < policy['window_seconds']:
            return _hold('%s for %d of %d s: waiting for a whole window'
                         % (why, measured_for, policy['window_seconds']),
                         pressure, fig)
    elif value > upper or latest > upper:
        return _hold('%s: above upper %s, not sustained' % (
            described, fig['upper']), pressure, fig)
    else:
        return _hold('%s within the band [%s, %s]' % (
            described, fig['lower'], fig['upper']), pressure, fig)
    last = max(_ts(policy.get('last_scaled_at')), settled)
    left = policy['cooldown_seconds'] - (_ts(now) - last)
    if left > 0:
        return _hold('%s; cooldown: %d s left' % (why, math.ceil(left)),
                     pressure, fig)
    if direction == SCALE_OUT:
        decision = _scale_out(snap, target, why, fig)
    else:
        decision = _scale_in(snap, target, why, fig)
    decision.pressure = pressure
    decision.figures = fig
    return decision


def _scale_out(snap: Snapshot, target: int, why: str,
               fig: dict) -> Decision:
    policy, service = snap.policy, snap.service
    limits = []
    add = min(policy['add_instances'],
              max(0, policy['max_instances'] - target))
    if policy['add_instances'] and add < policy['add_instances']:
        limits.append('instances at most max_instances %d'
                      % policy['max_instances'])
    if add:
        # An instance brings its replicas: one slot each.
        per = 1 + int(service.get('replicas') or 0)
        slots = snap.free_slots('instance')
        fits = slots['free'] // per
        if fits < add:
            limits.append('room for %d more instance(s) of %d slot(s) '
                          'each: %d free service instance slot(s) on %d '
                          'usable service node(s)%s'
                          % (fits, per, slots['free'], slots['nodes'],
                             _dropped(slots)))
            add = fits
    size = int(snap.group['target_size'])
    grow = 0
    if policy['add_vhsms']:
        ceiling = policy['max_vhsms'] or size
        grow = min(policy['add_vhsms'], max(0, ceiling - size))
        if grow < policy['add_vhsms']:
            limits.append('vHSMs at most max_vhsms %d' % ceiling)
        if grow:
            slots = snap.free_slots('vhsm')
            if slots['free'] < grow:
                limits.append('%d free vHSM slot(s) on %d usable device '
                              'node(s)%s' % (slots['free'], slots['nodes'],
                                             _dropped(slots)))
                grow = slots['free']
    return _conclude(SCALE_OUT, why, limits, (target, target + add),
                     (size, size + grow))


def _scale_in(snap: Snapshot, target: int, why: str,
              fig: dict) -> Decision:
    policy = snap.policy
    limits = []
    remove = min(policy['remove_instances'],
                 max(0, target - policy['min_instances']))
    if policy['remove_instances'] and remove < policy['remove_instances']:
        limits.append('instances at least min_instances %d'
                      % policy['min_instances'])
    # The same work on fewer instances: the most that may go without
    # predicting a scale-out.
    fits = remove
    while fits and (fig['highest'] * target / (target - fits)
                    > policy['upper']):
        fits -= 1
    if fits < remove:
        limits.append('removing %d instance(s) would raise %s to %s, above '
                      'upper %s' % (fits + 1, fig['metric'],
                                    _num(fig['highest'] * target
                                         / (target - fits - 1)),
                                    fig['upper']))
        remove = fits
    size = int(snap.group['target_size'])
    shrink = 0
    if policy['remove_vhsms']:
        shrink = min(policy['remove_vhsms'],
                     max(0, size - policy['min_vhsms']))
        if shrink < policy['remove_vhsms']:
            limits.append('vHSMs at least min_vhsms %d'
                          % policy['min_vhsms'])
    return _conclude(SCALE_IN, why, limits, (target, target - remove),
                     (size, size - shrink))


def _dropped(slots: dict) -> str:
    why = slots.get('why')
    if not why or why == 'none was dropped':
        return ''
    return ' (of the others: %s)' % why


def _conclude(direction: str, why: str, limits: list[str],
              instances: tuple[int, int],
              vhsms: tuple[int, int]) -> Decision:
    changes = []
    if instances[0] != instances[1]:
        changes.append('instances %d -> %d' % instances)
    if vhsms[0] != vhsms[1]:
        changes.append('vHSMs %d -> %d' % vhsms)
    if not changes:
        return Decision(LIMITED, '%s, but nothing can change: %s'
                        % (why, '; '.join(limits) or 'steps are 0'),
                        instances=instances, vhsms=vhsms)
    reason = '%s: %s' % (why, ', '.join(changes))
    if limits:
        reason += ' (limited: %s)' % '; '.join(limits)
    return Decision(direction, reason, instances=instances, vhsms=vhsms)


class Balancer:
    """One conductor's pressure balancer over the control database."""

    def __init__(self, db, scheduler, *, owner: str) -> None:
        self._db = db
        self._scheduler = scheduler
        self.owner = owner

    def run(self, now: datetime.datetime | None = None) -> list[dict]:
        """Evaluate every enabled policy once; the tasks recorded."""
        now = now or base.utcnow()
        policies = self._db.list('scaling_policies',
                                 filters={'enabled': True})
        if not policies:
            return []
        service_ids = [p['service_id'] for p in policies]
        services = {s['id']: s for s in self._db.list(
            'services', filters={'id': service_ids})}
        group_ids = sorted({s['group_id'] for s in services.values()})
        groups = {g['id']: g for g in self._db.list(
            'vhsm_groups', filters={'id': group_ids})} if group_ids else {}
        primaries: dict[str, list] = {sid: [] for sid in service_ids}
        for inst in self._db.list('service_instances', filters={
                'service_id': service_ids, 'role': 'primary'}):
            primaries[inst['service_id']].append(inst)
        activity = self._db.task_activity(service_ids + group_ids,
                                          ignore_actions=NOT_SCALING)
        slots = _SlotCounter(self._scheduler, now)
        recorded = []
        for policy in policies:
            service = services.get(policy['service_id'])
            group = groups.get(service['group_id']) if service else None
            snap = Snapshot(
                policy=policy, service=service, group=group,
                primaries=primaries.get(policy['service_id'], []),
                service_tasks=activity.get(policy['service_id'], {}),
                group_tasks=activity.get(group['id'], {}) if group else {},
                free_slots=slots.free)
            try:
                task = self._apply(snap, evaluate(snap, now), now)
            except Exception:  # noqa: BLE001 - one policy spares the rest
                LOG.exception('Balancer: policy of service %s failed.',
                              policy['service_id'])
                continue
            if task is not None:
                recorded.append(task)
                slots.used(task['params'], service.get('replicas'))
        return recorded

    def _apply(self, snap: Snapshot, decision: Decision,
               now: datetime.datetime) -> dict | None:
        """Write the evaluation (compare-and-swap), then act on it."""
        policy = snap.policy
        values = {'generation': policy['generation'] + 1,
                  'evaluated_at': now,
                  'last_decision': decision.decision,
                  'last_reason': base.one_line(decision.reason)}
        if decision.pressure is not None:
            values['pressure'] = decision.pressure
        task_id = None
        if decision.scales:
            task_id = str(uuid.uuid4())
            values.update(last_scaled_at=now, last_task_id=task_id)
        try:
            written = self._db.update_if(
                'scaling_policies', policy['id'],
                {'generation': policy['generation']}, values, touch=False)
        except exception.NotFound:
            return None  # deleted meanwhile, with its service perhaps
        if written is None:
            LOG.debug('Balancer: policy %s was evaluated concurrently; '
                      'leaving it to that conductor.', policy['id'])
            return None
        if decision.decision == LIMITED:
            if policy.get('last_decision') != LIMITED:
                LOG.warning('Balancer: service %s cannot scale: %s',
                            policy['service_id'], decision.reason)
        elif not decision.scales:
            LOG.debug('Balancer: service %s holds: %s',
                      policy['service_id'], decision.reason)
        if not decision.scales:
            return None
        return self._record(snap, decision, task_id)

    def _record(self, snap: Snapshot, decision: Decision,
                task_id: str) -> dict | None:
        """The task first, then the rows to UPDATING with new targets."""
        service, group = snap.service, snap.group
        params = dict(decision.figures)
        params.update({
            'direction': 'out' if decision.decision == SCALE_OUT else 'in',
            'reason': base.one_line(decision.reason),
            'instances_before': decision.instances[0],
            'instances_after': decision.instances[1],
            'vhsms_before': decision.vhsms[0],
            'vhsms_after': decision.vhsms[1],
            'group_id': service['group_id'],
            'policy_id': snap.policy['id'],
            'recorded_by': self.owner})
        task = self._db.create('tasks', {
            'id': task_id, 'request_id': 'req-%s' % uuid.uuid4(),
            'project_id': service['project_id'], 'user_id': None,
            'action': ACTION, 'resource_type': 'service',
            'resource_id': service['id'], 'params': params,
            'state': states.PENDING})
        try:
            self._db.transition('services', service['id'], M, 'resize', {
                'target_instances': decision.instances[1],
                'status_reason': None})
        except (exception.InvalidState, exception.NotFound) as exc:
            # An admin got there between the read and now.
            reason = 'not started: %s' % base.reason_of(exc)
            LOG.info('Balancer: scaling of service %s %s', service['id'],
                     reason)
            self._db.finish_task(task_id, None, succeeded=False,
                                 error=reason)
            return None
        if decision.vhsms[0] != decision.vhsms[1]:
            try:
                self._db.transition('vhsm_groups', group['id'], M,
                                    'resize', {
                                        'target_size': decision.vhsms[1],
                                        'status_reason': None})
            except (exception.InvalidState, exception.NotFound) as exc:
                params['vhsms_after'] = params['vhsms_before']
                params['vhsms_skipped'] = base.reason_of(exc)
                task = self._db.update('tasks', task_id, {'params': params})
        LOG.info('Balancer: scaling service %s (task %s): %s',
                 service['id'], task_id, decision.reason)
        return task


class _SlotCounter:
    """Free slots per kind, read once per pass and used up by decisions."""

    def __init__(self, scheduler, now: datetime.datetime) -> None:
        self._scheduler = scheduler
        self._now = now
        self._slots: dict[str, dict] = {}

    def free(self, kind: str) -> dict:
        """``Scheduler.free_slots`` of ``kind``, minus this pass's use."""
        if kind not in self._slots:
            self._slots[kind] = self._scheduler.free_slots(kind,
                                                           now=self._now)
        return self._slots[kind]

    def used(self, params: dict, replicas: int | None) -> None:
        """Take the slots a recorded scale-out will fill."""
        per_instance = 1 + int(replicas or 0)
        for kind, before, after, per in (
                ('instance', 'instances_before', 'instances_after',
                 per_instance),
                ('vhsm', 'vhsms_before', 'vhsms_after', 1)):
            grown = params[after] - params[before]
            if grown > 0 and kind in self._slots:
                self._slots[kind]['free'] = max(
                    0, self._slots[kind]['free'] - grown * per)
