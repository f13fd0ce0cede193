"""Filters: which nodes may take one more workload of a kind.

Every filter works on plain node dicts (rows of ``nodes``) and a
:class:`Request`; each says in words why it drops a node, so that
NoValidHost can name what filtered the nodes out.
"""

import abc
import collections
import dataclasses
import datetime

from cryptocloud.common import states


@dataclasses.dataclass(frozen=True)
class Kind:
    """What a workload kind needs from a node."""

    name: str            # 'vhsm' or 'instance'
    role: str            # node role that runs it
    capacity_field: str  # node column with the most it runs
    usage_field: str     # key in Connection.node_usage() values
    label: str           # for messages
    table: str           # control-database table of its rows


KINDS: dict[str, Kind] = {
    'vhsm': Kind('vhsm', 'device', 'vhsm_capacity', 'vhsms', 'vHSM',
                 'vhsms'),
    'instance': Kind('instance', 'service', 'instance_capacity',
                     'instances', 'service instance', 'service_instances'),
}


@dataclasses.dataclass
class Request:
    """One placement: the kind, hints, and what is used where."""

    kind: Kind
    now: datetime.datetime
    heartbeat_timeout: int
    # False while the conductor has not heard for a whole timeout (after
    # a broker or database outage, or its own start): a node's last
    # heartbeat is then old for want of a bus, not of a node.
    trust_heartbeats: bool = True
    # Node ids never to use (hard anti-affinity).
    exclude: frozenset = frozenset()
    # Node id -> members of the same vHSM group or service already there
    # (soft anti-affinity); grows as the scheduler places workloads.
    spread: collections.Counter = dataclasses.field(
        default_factory=collections.Counter)
    # Node id -> {'vhsms': n, 'instances': m}; grows likewise.
    usage: dict = dataclasses.field(default_factory=dict)

    def used(self, node: dict) -> int:
        """Workloads of this kind on ``node``, planned ones included."""
        return self.usage.get(node['id'], {}).get(self.kind.usage_field, 0)

    def capacity(self, node: dict) -> int:
        """The most workloads of this kind ``node`` runs."""
        return int(node.get(self.kind.capacity_field) or 0)


class Filter(abc.ABC):
    """Keeps the nodes that pass; ``reason`` says why others did not."""

    @abc.abstractmethod
    def passes(self, node: dict, request: Request) -> bool:
        """Whether ``node`` may take one more workload."""

    @abc.abstractmethod
    def reason(self, request: Request) -> str:
        """Why a node failed, in words, e.g. "lack role 'device'"."""

    def filter_all(self, nodes: list[dict], request: Request) -> list[dict]:
        """The nodes that pass."""
        return [node for node in nodes if self.passes(node, request)]


class RoleFilter(Filter):
    """The node has the role that runs the kind."""

    def passes(self, node: dict, request: Request) -> bool:
        """Whether the node's roles include the kind's role."""
        return request.kind.role in (node.get('roles') or ())

    def reason(self, request: Request) -> str:
        """Names the missing role."""
        return "lack role '%s'" % request.kind.role


class EnabledFilter(Filter):
    """The operator has not disabled the node."""

    def passes(self, node: dict, request: Request) -> bool:
        """Whether the node is enabled."""
        return bool(node.get('enabled', True))

    def reason(self, request: Request) -> str:
        """Disabled by the operator."""
        return 'are disabled'


class UpFilter(Filter):
    """The node is UP and has sent a heartbeat recently.

    Both are checked: a node's state turns DOWN only at the next liveness
    pass, and new work must not go to it meanwhile.  The heartbeat's age
    only when the conductor could have heard it (``trust_heartbeats``).
    """

    def passes(self, node: dict, request: Request) -> bool:
        """Whether the node is UP with a fresh heartbeat."""
        if node.get('state') != states.NODE_UP:
            return False
        if not request.trust_heartbeats:
            return True
        last = node.get('last_heartbeat')
        if last is None:
            return False
        cutoff = request.now - datetime.timedelta(
            seconds=request.heartbeat_timeout)
        return last >= cutoff

    def reason(self, request: Request) -> str:
        """Down or silent."""
        return ('are down (no heartbeat within %d s)'
                % request.heartbeat_timeout)


class ExcludeFilter(Filter):
    """The request did not rule the node out."""

    def passes(self, node: dict, request: Request) -> bool:
        """Whether the node is not excluded."""
        return node['id'] not in request.exclude

    def reason(self, request: Request) -> str:
        """Excluded by the caller (e.g. the node a workload failed on)."""
        return 'are excluded by the request'


class CapacityFilter(Filter):
    """The node runs fewer workloads of the kind than its capacity."""

    def passes(self, node: dict, request: Request) -> bool:
        """Whether there is a free slot, planned placements counted."""
        return request.used(node) < request.capacity(node)

    def reason(self, request: Request) -> str:
        """Full."""
        return 'have no free %s slot' % request.kind.label


class AntiAffinityFilter(Filter):
    """Keep the nodes holding the fewest members of the same group/service.

    Soft: it never empties the list, so a group larger than the number of
    nodes still fits, spread over as many nodes as possible.
    """

    def passes(self, node: dict, request: Request) -> bool:
        """Unused alone; see filter_all."""
        return True

    def reason(self, request: Request) -> str:
        """Never the last filter to drop a node."""
        return 'already hold more members of the same group or service'

    def filter_all(self, nodes: list[dict], request: Request) -> list[dict]:
        """The nodes with the fewest members of the group or service."""
        if not nodes:
            return nodes
        fewest = min(request.spread[node['id']] for node in nodes)
        return [n for n in nodes if request.spread[n['id']] == fewest]


# Hard filters first (their reasons explain NoValidHost), the soft
# anti-affinity one last.
DEFAULT_FILTERS: tuple[Filter, ...] = (
    RoleFilter(), EnabledFilter(), UpFilter(), ExcludeFilter(),
    CapacityFilter(),
)
SOFT_FILTERS: tuple[Filter, ...] = (AntiAffinityFilter(),)
