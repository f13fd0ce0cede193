"""Pick nodes for new vHSMs and service instances.

Placement is all or nothing: either every requested workload gets a node
or NoValidHost says how many could be placed and what filtered the nodes
out.  Workloads are placed one at a time, each counting the ones placed
before it, so a group spreads over as many device nodes as possible and
no node is given more than its capacity within one request.

Two conductors placing at once may both count the same free slot.
``Scheduler.place`` therefore inserts each row through a guarded insert
that locks the node and counts again; the loser of such a race selects
anew, with the winner's workload counted.
"""

import collections
import copy
import datetime
from collections.abc import Callable
from collections.abc import Iterable

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.conductor.scheduler import filters
from cryptocloud.conductor.scheduler import weighers

LOG = logging.getLogger(__name__)

# Selections one placement makes before it gives up when other
# conductors keep taking the slots it chose.
PLACE_ATTEMPTS = 4


def _why(nodes: list[dict], request: filters.Request,
         hard: tuple[filters.Filter, ...]) -> str:
    """What each filter dropped, e.g. "2 lack role 'device', 1 ...". """
    parts = []
    remaining = nodes
    for flt in hard:
        kept = flt.filter_all(remaining, request)
        dropped = len(remaining) - len(kept)
        if dropped:
            parts.append('%d %s' % (dropped, flt.reason(request)))
        remaining = kept
    return ', '.join(parts) or 'none was dropped'


def select(nodes: list[dict], request: filters.Request, count: int, *,
           hard: tuple[filters.Filter, ...] = filters.DEFAULT_FILTERS,
           soft: tuple[filters.Filter, ...] = filters.SOFT_FILTERS,
           order: tuple[weighers.Weigher, ...] = weighers.DEFAULT_WEIGHERS,
           ) -> list[dict]:
    """``count`` nodes (repeats allowed) for ``request``, or NoValidHost."""
    if count <= 0:
        return []
    chosen: list[dict] = []
    usage_field = request.kind.usage_field
    for _ in range(count):
        candidates = nodes
        for flt in hard:
            candidates = flt.filter_all(candidates, request)
        if not candidates:
            raise exception.NoValidHost(reason=(
                'need %d %s slot(s) on %s nodes, found %d; of %d node(s): %s'
                % (count, request.kind.label, request.kind.role, len(chosen),
                   len(nodes), _why(nodes, request, hard))))
        for flt in soft:
            candidates = flt.filter_all(candidates, request)
        best = weighers.order(candidates, request, order)[0]
        chosen.append(best)
        slot = request.usage.setdefault(best['id'],
                                        {'vhsms': 0, 'instances': 0})
        slot[usage_field] = slot.get(usage_field, 0) + 1
        request.spread[best['id']] += 1
    return chosen


class Scheduler:
    """Selects hosts from the nodes and usage in the control database."""

    def __init__(self, db, *, heartbeat_timeout: int,
                 hearing=None) -> None:
        self._db = db
        self._heartbeat_timeout = heartbeat_timeout
        # A conductor.nodes.Hearing: heartbeat ages count only once the
        # conductor has heard for a whole timeout.  None: always.
        self._hearing = hearing

    def _trust_heartbeats(self) -> bool:
        return self._hearing is None or self._hearing.long_enough()

    def select_hosts(self, kind: str, count: int, *,
                     exclude: Iterable[int] = (),
                     spread: Iterable[int | None] = (),
                     now: datetime.datetime | None = None) -> list[dict]:
        """Nodes for ``count`` new workloads of ``kind`` ('vhsm'/'instance').

        ``exclude``: node ids never to use.  ``spread``: node ids of the
        members of the same group or service (once per member), which the
        new ones avoid while other nodes can take them.
        """
        if kind not in filters.KINDS:
            raise exception.InvalidInput(
                reason='unknown workload kind %r' % (kind,))
        now = now or datetime.datetime.now(datetime.UTC).replace(
            tzinfo=None)
        request = filters.Request(
            kind=filters.KINDS[kind], now=now,
            heartbeat_timeout=self._heartbeat_timeout,
            trust_heartbeats=self._trust_heartbeats(),
            exclude=frozenset(exclude),
            spread=collections.Counter(n for n in spread if n is not None),
            usage=copy.deepcopy(self._db.node_usage()))
        return select(self._db.list('nodes'), request, count)

    def place(self, kind: str, count: int,
              make_row: Callable[[dict], dict], *,
              exclude: Iterable[int] = (),
              spread: Iterable[int | None] = ()) -> list[dict]:
        """Select nodes for ``count`` workloads and insert their rows.

        ``make_row(node)`` gives the values of the row for ``node``.  Each
        row claims its slot under a lock on the node (``create_placed``),
        so a slot another conductor took since the selection is noticed:
        the rest are selected again.  All or nothing, like
        :meth:`select_hosts`: on NoValidHost the rows this call inserted
        are deleted again (nothing was started for them yet).
        """
        table = filters.KINDS[kind].table if kind in filters.KINDS else ''
        exclude = list(exclude)
        spread = list(spread)
        placed: list[dict] = []
        try:
            for attempt in range(1, PLACE_ATTEMPTS + 1):
                nodes = self.select_hosts(
                    kind, count - len(placed), exclude=exclude,
                    spread=spread + [r['node_id'] for r in placed])
                try:
                    for node in nodes:
                        placed.append(self._db.create_placed(
                            table, make_row(node)))
                    return placed
                except exception.NodeFull as exc:
                    if attempt == PLACE_ATTEMPTS:
                        raise
                    LOG.info('%s; selecting again (attempt %d of %d).',
                             exc, attempt + 1, PLACE_ATTEMPTS)
        except exception.NoValidHost:
            for row in placed:
                self._db.delete(table, row['id'])
            raise
        return placed

    def free_slots(self, kind: str, *,
                   now: datetime.datetime | None = None) -> dict:
        """How many more workloads of ``kind`` the cluster can take now.

        Counts the free slots (capacity minus placed workloads) of the
        nodes that pass every hard filter but the capacity one: the right
        role, enabled, UP with a fresh heartbeat.  ``{'free': n, 'nodes':
        eligible node count, 'why': what dropped the others}``.
        """
        if kind not in filters.KINDS:
            raise exception.InvalidInput(
                reason='unknown workload kind %r' % (kind,))
        now = now or datetime.datetime.now(datetime.UTC).replace(
            tzinfo=None)
        request = filters.Request(
            kind=filters.KINDS[kind], now=now,
            heartbeat_timeout=self._heartbeat_timeout,
            trust_heartbeats=self._trust_heartbeats(),
            usage=self._db.node_usage())
        nodes = self._db.list('nodes')
        eligible = nodes
        hard = tuple(f for f in filters.DEFAULT_FILTERS
                     if not isinstance(f, filters.CapacityFilter))
        for flt in hard:
            eligible = flt.filter_all(eligible, request)
        free = sum(max(0, request.capacity(n) - request.used(n))
                   for n in eligible)
        return {'free': free, 'nodes': len(eligible),
                'why': _why(nodes, request, hard)}
