"""Filters, weighers and select() on plain node dicts."""

import collections
import datetime

import testtools

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor.scheduler import filters
from cryptocloud.conductor.scheduler import scheduler
from cryptocloud.conductor.scheduler import weighers

NOW = datetime.datetime(2030, 1, 1, 12, 0, 0)


def node(id, roles=('device', 'service'), enabled=True, state='UP',
         age=1, vhsm_capacity=4, instance_capacity=4):
    return {'id': id, 'hostname': 'n%d' % id, 'roles': list(roles),
            'enabled': enabled, 'state': state,
            'last_heartbeat': NOW - datetime.timedelta(seconds=age),
            'vhsm_capacity': vhsm_capacity,
            'instance_capacity': instance_capacity}


def request(kind='vhsm', usage=None, spread=(), exclude=()):
    return filters.Request(kind=filters.KINDS[kind], now=NOW,
                           heartbeat_timeout=30,
                           exclude=frozenset(exclude),
                           spread=collections.Counter(spread),
                           usage=usage or {})


class TestFilters(testtools.TestCase):

    def test_role(self):
        flt = filters.RoleFilter()
        self.assertTrue(flt.passes(node(1, roles=['device']), request()))
        self.assertFalse(flt.passes(node(1, roles=['service']), request()))
        self.assertTrue(flt.passes(node(1, roles=['service']),
                                   request('instance')))

    def test_enabled(self):
        self.assertFalse(filters.EnabledFilter().passes(
            node(1, enabled=False), request()))

    def test_up_needs_state_and_fresh_heartbeat(self):
        flt = filters.UpFilter()
        self.assertTrue(flt.passes(node(1), request()))
        self.assertFalse(flt.passes(node(1, state=states.NODE_DOWN),
                                    request()))
        self.assertFalse(flt.passes(node(1, age=31), request()))

    def test_capacity_counts_usage(self):
        flt = filters.CapacityFilter()
        full = request(usage={1: {'vhsms': 4, 'instances': 0}})
        self.assertFalse(flt.passes(node(1), full))
        self.assertTrue(flt.passes(node(1), request('instance', usage={
            1: {'vhsms': 4, 'instances': 3}})))

    def test_anti_affinity_keeps_fewest_members(self):
        kept = filters.AntiAffinityFilter().filter_all(
            [node(1), node(2), node(3)], request(spread=[1, 1, 2]))
        self.assertEqual([3], [n['id'] for n in kept])

    def test_anti_affinity_never_empties(self):
        kept = filters.AntiAffinityFilter().filter_all(
            [node(1), node(2)], request(spread=[1, 2]))
        self.assertEqual([1, 2], [n['id'] for n in kept])


class TestWeighers(testtools.TestCase):

    def test_least_loaded_first(self):
        req = request(usage={1: {'vhsms': 3}, 2: {'vhsms': 1}})
        ordered = weighers.order([node(1), node(2)], req)
        self.assertEqual([2, 1], [n['id'] for n in ordered])

    def test_fraction_of_capacity(self):
        req = request(usage={1: {'vhsms': 2}, 2: {'vhsms': 2}})
        ordered = weighers.order([node(1, vhsm_capacity=4),
                                  node(2, vhsm_capacity=8)], req)
        self.assertEqual([2, 1], [n['id'] for n in ordered])

    def test_spread_before_load(self):
        req = request(usage={2: {'vhsms': 3}}, spread=[1])
        ordered = weighers.order([node(1), node(2)], req)
        self.assertEqual([2, 1], [n['id'] for n in ordered])


class TestSelect(testtools.TestCase):

    def test_group_spreads_over_every_node(self):
        chosen = scheduler.select([node(1), node(2), node(3)], request(), 3)
        self.assertEqual({1, 2, 3}, {n['id'] for n in chosen})

    def test_more_than_nodes_reuses_them_evenly(self):
        chosen = scheduler.select([node(1), node(2)], request(), 4)
        self.assertEqual(collections.Counter({1: 2, 2: 2}),
                         collections.Counter(n['id'] for n in chosen))

    def test_avoids_nodes_of_existing_members(self):
        chosen = scheduler.select([node(1), node(2), node(3)],
                                  request(spread=[1, 2]), 1)
        self.assertEqual([3], [n['id'] for n in chosen])

    def test_capacity_within_one_request(self):
        nodes = [node(1, vhsm_capacity=1), node(2, vhsm_capacity=2)]
        chosen = scheduler.select(nodes, request(), 3)
        self.assertEqual(collections.Counter({1: 1, 2: 2}),
                         collections.Counter(n['id'] for n in chosen))

    def test_exclude(self):
        chosen = scheduler.select([node(1), node(2)],
                                  request(exclude=[1]), 2)
        self.assertEqual([2, 2], [n['id'] for n in chosen])

    def test_no_valid_host_names_the_reasons(self):
        nodes = [node(1, roles=['service']), node(2, roles=['service']),
                 node(3, enabled=False), node(4, state='DOWN'),
                 node(5, vhsm_capacity=1)]
        exc = self.assertRaises(exception.NoValidHost, scheduler.select,
                                nodes, request(), 2)
        msg = str(exc)
        self.assertIn('need 2 vHSM slot(s) on device nodes, found 1', msg)
        self.assertIn("2 lack role 'device'", msg)
        self.assertIn('1 are disabled', msg)
        self.assertIn('1 are down (no heartbeat within 30 s)', msg)
        self.assertIn('1 have no free vHSM slot', msg)

    def test_no_nodes_at_all(self):
        exc = self.assertRaises(exception.NoValidHost, scheduler.select,
                                [], request('instance'), 1)
        self.assertIn('of 0 node(s)', str(exc))

    def test_zero_count(self):
        self.assertEqual([], scheduler.select([], request(), 0))
