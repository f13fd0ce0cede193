"""Weighers: order the nodes that passed the filters, best first.

Each weigher gives a number where lower is better; nodes are compared on
the weighers in turn (the first one decides, later ones break ties), and
finally on the host name so that placement is deterministic.
"""

import abc

from cryptocloud.conductor.scheduler import filters


class Weigher(abc.ABC):
    """One criterion; lower weight is better."""

    @abc.abstractmethod
    def weigh(self, node: dict, request: filters.Request) -> float:
        """The weight of ``node`` for ``request``."""


class SpreadWeigher(Weigher):
    """Fewer members of the same group or service on the node first."""

    def weigh(self, node: dict, request: filters.Request) -> float:
        """Members of the same group/service already on the node."""
        return float(request.spread[node['id']])


class LeastLoadedWeigher(Weigher):
    """The emptiest node first, as a fraction of its capacity."""

    def weigh(self, node: dict, request: filters.Request) -> float:
        """Used slots of the kind divided by the node's capacity."""
        capacity = request.capacity(node)
        if capacity <= 0:
            return float('inf')
        return request.used(node) / capacity


class FreeSlotsWeigher(Weigher):
    """Between equally loaded nodes, the one with more free slots."""

    def weigh(self, node: dict, request: filters.Request) -> float:
        """Minus the free slots (more free is better)."""
        return -float(request.capacity(node) - request.used(node))


DEFAULT_WEIGHERS: tuple[Weigher, ...] = (
    SpreadWeigher(), LeastLoadedWeigher(), FreeSlotsWeigher(),
)


def order(nodes: list[dict], request: filters.Request,
          weighers: tuple[Weigher, ...] = DEFAULT_WEIGHERS) -> list[dict]:
    """``nodes`` sorted best first."""
    def key(node: dict) -> tuple:
        return (tuple(w.weigh(node, request) for w in weighers),
                node.get('hostname') or '', node['id'])
    return sorted(nodes, key=key)
