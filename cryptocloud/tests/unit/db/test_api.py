"""Tests of the control-plane database API on SQLite.

``ControlDBTests`` holds the tests; the functional tests run the same
class on MariaDB and PostgreSQL as well, where the races are settled by
row locks rather than SQLite's single writer.
"""

import concurrent.futures
import datetime
import threading
import uuid

import testtools

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.db import api
from cryptocloud.db import migration
from cryptocloud.tests import db as test_db

PROJECT = 'project-a'
# Threads that race in the concurrency tests.
RACERS = 6
LEASE = 60


def race(calls):
    """Run the callables at the same moment; return (results, errors)."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    results, errors = [], []
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        for future in [pool.submit(run, call) for call in calls]:
            try:
                results.append(future.result())
            except Exception as exc:
                errors.append(exc)
    return results, errors


def _later(seconds: float) -> datetime.datetime:
    return api.utcnow() + datetime.timedelta(seconds=seconds)


class ControlDBTests:
    """Behaviour every backend must show; needs ``backend``."""

    backend = 'sqlite'

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(test_db.Database(self.backend))
        migration.upgrade(self.database.url, schema='control')
        self.db = self.new_connection()

    def new_connection(self) -> api.Connection:
        """Another process's view of the database (its own engine)."""
        conn = api.Connection(self.database.url, max_pool_size=RACERS)
        self.addCleanup(conn.close)
        return conn

    # -- builders -----------------------------------------------------------

    def group(self, **values) -> dict:
        return self.db.create('vhsm_groups', dict(
            {'project_id': PROJECT, 'target_size': 2}, **values))

    def vhsm(self, group_id: str | None = None, **values) -> dict:
        group_id = group_id or self.group()['id']
        return self.db.create('vhsms', dict({'group_id': group_id},
                                            **values))

    def service(self, group_id: str | None = None, **values) -> dict:
        group_id = group_id or self.group()['id']
        return self.db.create('services', dict(
            {'project_id': PROJECT, 'group_id': group_id,
             'target_instances': 1, 'replicas': 1,
             'algorithms': ['SM2', 'SM4']}, **values))

    def instance(self, service_id: str | None = None, **values) -> dict:
        service_id = service_id or self.service()['id']
        return self.db.create('service_instances', dict(
            {'service_id': service_id}, **values))

    def node(self, hostname: str = 'node-1', roles=('device', 'service'),
             **kwargs) -> dict:
        args = dict({'address': '127.0.0.1', 'vhsm_capacity': 4,
                     'instance_capacity': 8}, **kwargs)
        return self.db.register_node(hostname, roles=list(roles), **args)

    def task(self, **values) -> dict:
        return self.db.create('tasks', dict(
            {'action': 'create_vhsm_group', 'project_id': PROJECT,
             'params': {'target_size': 2}}, **values))

    # -- schema -------------------------------------------------------------

    def test_check_schema_at_head(self):
        self.db.check_schema()

    def test_check_schema_behind_head(self):
        migration.stamp(self.database.url, 'base', schema='control')
        exc = self.assertRaises(exception.ConfigurationError,
                                self.db.check_schema)
        self.assertIn('is at base', str(exc))
        self.assertIn('expected head %s' % migration.head('control'),
                      str(exc))
        self.assertIn('cryptocloud-dbsync upgrade --schema control',
                      str(exc))

    # -- create and get -----------------------------------------------------

    def test_create_fills_uuid_and_timestamps(self):
        before = api.utcnow()
        group = self.group(name='g1')
        self.assertEqual(str(uuid.UUID(group['id'])), group['id'])
        self.assertIsNone(group['created_at'].tzinfo)
        self.assertLessEqual(before, group['created_at'])
        self.assertEqual(group['created_at'], group['updated_at'])
        self.assertEqual(states.CREATING, group['state'])
        self.assertEqual(group, self.db.get('vhsm_groups', group['id']))

    def test_create_keeps_a_given_id(self):
        group_id = str(uuid.uuid4())
        self.assertEqual(group_id, self.group(id=group_id)['id'])

    def test_create_integer_and_hex_ids(self):
        vhsm = self.vhsm()
        inst = self.instance()
        first = self.db.create('associations', {'vhsm_id': vhsm['id'],
                                                'instance_id': inst['id']})
        second = self.db.create('associations', {
            'vhsm_id': self.vhsm()['id'], 'instance_id': inst['id']})
        self.assertIsInstance(first['id'], int)
        self.assertEqual(first['id'] + 1, second['id'])
        self.assertNotIn('updated_at', first)
        cred = self.db.create('service_credentials', {
            'service_id': inst['service_id'], 'project_id': PROJECT,
            'secret_sha256': 'ab' * 32})
        self.assertRegex(cred['id'], '^[0-9a-f]{32}$')

    def test_json_columns_round_trip(self):
        service = self.service(algorithms=['SM2', 'SM4', 'AES-GCM'])
        self.assertEqual(['SM2', 'SM4', 'AES-GCM'], service['algorithms'])
        task = self.task(params={'target_size': 3, 'names': ['a', 'b'],
                                 'nested': {'x': None}})
        self.assertEqual({'target_size': 3, 'names': ['a', 'b'],
                          'nested': {'x': None}},
                         self.db.get('tasks', task['id'])['params'])
        self.assertIsNone(self.task(params=None)['params'])

    def test_aware_datetimes_are_stored_as_naive_utc(self):
        aware = datetime.datetime(2030, 1, 2, 20, 0, 0, 5,
                                  tzinfo=datetime.timezone(
                                      datetime.timedelta(hours=8)))
        task = self.task(lease_expires_at=aware)
        self.assertEqual(datetime.datetime(2030, 1, 2, 12, 0, 0, 5),
                         task['lease_expires_at'])
        self.assertEqual([task['id']], [t['id'] for t in self.db.list(
            'tasks', filters={'lease_expires_at': aware})])

    def test_create_unknown_column_or_kind(self):
        exc = self.assertRaises(exception.InvalidInput, self.group,
                                colour='red')
        self.assertIn('colour', str(exc))
        exc = self.assertRaises(exception.InvalidInput, self.db.create,
                                'widgets', {})
        self.assertIn('widgets', str(exc))

    def test_create_duplicate_association_conflicts(self):
        vhsm = self.vhsm()
        inst = self.instance()
        values = {'vhsm_id': vhsm['id'], 'instance_id': inst['id']}
        self.db.create('associations', values)
        self.assertRaises(exception.Conflict, self.db.create,
                          'associations', values)

    def test_create_with_missing_reference_conflicts(self):
        self.assertRaises(exception.Conflict, self.vhsm,
                          group_id=str(uuid.uuid4()))

    def test_get_missing(self):
        missing = str(uuid.uuid4())
        exc = self.assertRaises(exception.ResourceNotFound, self.db.get,
                                'vhsm_groups', missing)
        self.assertIsInstance(exc, exception.NotFound)
        self.assertEqual('vhsm_group %s could not be found.' % missing,
                         str(exc))
        self.assertRaises(exception.NotFound, self.db.get, 'nodes', 42)
        self.assertRaises(exception.NotFound, self.db.get, 'nodes', 'x')

    # -- list and count -----------------------------------------------------

    def test_list_filters(self):
        a = self.group(name='a')
        b = self.group(name='b', project_id='project-b')
        c = self.group()

        def ids(**filters):
            return [g['id'] for g in self.db.list('vhsm_groups',
                                                  filters=filters)]

        self.assertEqual([a['id'], b['id'], c['id']], ids())
        self.assertEqual([a['id'], c['id']], ids(project_id=PROJECT))
        self.assertEqual([a['id'], b['id']], ids(name=['a', 'b']))
        self.assertEqual([c['id']], ids(name=None))
        self.assertEqual([a['id'], c['id']], ids(name=['a', None]))
        self.assertEqual([], ids(name=[]))
        self.assertEqual([a['id']], ids(name='a', project_id=PROJECT))
        self.assertEqual(2, self.db.count('vhsm_groups',
                                          {'project_id': PROJECT}))
        self.assertEqual(3, self.db.count('vhsm_groups'))

    def test_list_bad_arguments_name_the_culprit(self):
        for kwargs, culprit in (
                ({'filters': {'colour': 'red'}}, 'colour'),
                ({'filters': {'params': {}}}, 'params'),
                ({'sort_key': 'colour'}, 'colour'),
                ({'sort_dir': 'up'}, 'up'),
                ({'limit': -1}, 'limit'),
                ({'marker': str(uuid.uuid4())}, 'marker')):
            exc = self.assertRaises(exception.InvalidInput, self.db.list,
                                    'tasks', **kwargs)
            self.assertIn(culprit, str(exc))
        self.assertRaises(exception.InvalidInput, self.db.count, 'tasks',
                          {'colour': 'red'})
        self.assertRaises(exception.InvalidInput, self.db.list, 'nodes',
                          marker='not-a-number')

    def test_list_limit(self):
        for _ in range(3):
            self.group()
        self.assertEqual(2, len(self.db.list('vhsm_groups', limit=2)))
        self.assertEqual([], self.db.list('vhsm_groups', limit=0))

    def _pages(self, kind: str, size: int, **kwargs) -> list:
        seen, marker = [], None
        while True:
            page = self.db.list(kind, limit=size, marker=marker, **kwargs)
            seen.extend(row['id'] for row in page)
            if len(page) < size:
                return seen
            marker = page[-1]['id']

    def test_marker_pagination_is_stable(self):
        # Ties on the sort key and NULLs must neither repeat nor skip rows.
        for i in range(7):
            self.group(name=None if i % 3 == 0 else 'g%d' % (i % 2),
                       project_id='p%d' % (i % 2))
        for sort_key in ('created_at', 'name', 'project_id', 'id'):
            for sort_dir in ('asc', 'desc'):
                whole = [g['id'] for g in self.db.list(
                    'vhsm_groups', sort_key=sort_key, sort_dir=sort_dir)]
                self.assertEqual(7, len(set(whole)))
                for size in (1, 2, 3):
                    self.assertEqual(
                        whole, self._pages('vhsm_groups', size,
                                           sort_key=sort_key,
                                           sort_dir=sort_dir),
                        (sort_key, sort_dir, size))

    def test_nulls_sort_last_ascending(self):
        named = self.group(name='x')
        unnamed = self.group()
        for sort_dir, expected in (('asc', [named, unnamed]),
                                   ('desc', [unnamed, named])):
            self.assertEqual(
                [g['id'] for g in expected],
                [g['id'] for g in self.db.list('vhsm_groups',
                                               sort_key='name',
                                               sort_dir=sort_dir)])

    def test_marker_pagination_of_nodes(self):
        for i in range(5):
            self.node('node-%d' % i)
        whole = [n['id'] for n in self.db.list('nodes', sort_key='hostname',
                                               sort_dir='desc')]
        self.assertEqual(whole, self._pages('nodes', 2, sort_key='hostname',
                                            sort_dir='desc'))
        # A marker may come as text from a query string.
        self.assertEqual(whole[1:], [n['id'] for n in self.db.list(
            'nodes', sort_key='hostname', sort_dir='desc',
            marker=str(whole[0]))])

    def test_filter_nodes_by_role(self):
        both = self.node('both')
        device = self.node('device', roles=['device'])
        service = self.node('service', roles=['service'])

        def hosts(roles):
            return {n['id'] for n in self.db.list(
                'nodes', filters={'roles': roles})}

        self.assertEqual({both['id'], device['id']}, hosts('device'))
        self.assertEqual({both['id'], service['id']}, hosts('service'))
        self.assertEqual({both['id']}, hosts(['device', 'service']))
        self.assertRaises(exception.InvalidInput, hosts, 'storage')

    # -- update -------------------------------------------------------------

    def test_update(self):
        group = self.group()
        updated = self.db.update('vhsm_groups', group['id'],
                                 {'target_size': 5, 'status_reason': 'x'})
        self.assertEqual(5, updated['target_size'])
        self.assertEqual('x', updated['status_reason'])
        self.assertGreaterEqual(updated['updated_at'], group['updated_at'])
        self.assertEqual(group['created_at'], updated['created_at'])
        self.assertEqual(updated, self.db.get('vhsm_groups', group['id']))

    def test_update_refuses_state_ids_and_unknown_columns(self):
        group = self.group()
        for values in ({'state': states.ACTIVE}, {'id': 'x'},
                       {'created_at': api.utcnow()}, {'colour': 'red'}):
            exc = self.assertRaises(exception.InvalidInput, self.db.update,
                                    'vhsm_groups', group['id'], values)
            self.assertIn(list(values)[0], str(exc))

    def test_update_missing(self):
        self.assertRaises(exception.ResourceNotFound, self.db.update,
                          'vhsm_groups', str(uuid.uuid4()),
                          {'target_size': 1})

    # -- transition ---------------------------------------------------------

    def test_transition_sets_state_and_values(self):
        node = self.node()
        vhsm = self.vhsm()
        built = self.db.transition(
            'vhsms', vhsm['id'], states.WORKLOAD_MACHINE, 'built',
            {'node_id': node['id'], 'host': '127.0.0.1', 'port': 7001})
        self.assertEqual(states.ACTIVE, built['state'])
        self.assertEqual((node['id'], '127.0.0.1', 7001),
                         (built['node_id'], built['host'], built['port']))
        self.assertEqual(built, self.db.get('vhsms', vhsm['id']))
        # The target follows the current state: fail from ACTIVE is ERROR.
        failed = self.db.transition('vhsms', vhsm['id'],
                                    states.WORKLOAD_MACHINE, 'fail',
                                    {'status_reason': 'exited'})
        self.assertEqual((states.ERROR, 'exited'),
                         (failed['state'], failed['status_reason']))

    def test_transition_not_allowed(self):
        group = self.group()
        exc = self.assertRaises(exception.InvalidState, self.db.transition,
                                'vhsm_groups', group['id'],
                                states.RESOURCE_MACHINE, 'resize')
        self.assertEqual(states.CREATING, exc.kwargs['state'])
        self.assertEqual('resize', exc.kwargs['action'])
        self.assertEqual('vhsm_group', exc.kwargs['kind'])
        self.assertEqual(states.CREATING,
                         self.db.get('vhsm_groups', group['id'])['state'])

    def test_transition_missing(self):
        self.assertRaises(exception.ResourceNotFound, self.db.transition,
                          'vhsms', str(uuid.uuid4()),
                          states.WORKLOAD_MACHINE, 'built')

    def test_transition_refuses_state_in_values(self):
        group = self.group()
        self.assertRaises(exception.InvalidInput, self.db.transition,
                          'vhsm_groups', group['id'],
                          states.RESOURCE_MACHINE, 'done',
                          {'state': states.ERROR})

    def test_transition_to_deleted_deletes_the_row(self):
        vhsm = self.vhsm()
        inst = self.instance()
        self.db.create('associations', {'vhsm_id': vhsm['id'],
                                        'instance_id': inst['id']})
        self.db.transition('vhsms', vhsm['id'], states.WORKLOAD_MACHINE,
                           'delete')
        gone = self.db.transition('vhsms', vhsm['id'],
                                  states.WORKLOAD_MACHINE, 'deleted')
        self.assertEqual(states.DELETED, gone['state'])
        self.assertEqual(vhsm['id'], gone['id'])
        self.assertRaises(exception.ResourceNotFound, self.db.get, 'vhsms',
                          vhsm['id'])
        # Its associations went with it.
        self.assertEqual(0, self.db.count('associations'))
        self.assertRaises(exception.ResourceNotFound, self.db.transition,
                          'vhsms', vhsm['id'], states.WORKLOAD_MACHINE,
                          'deleted')

    def test_deleted_only_from_deleting(self):
        vhsm = self.vhsm()
        exc = self.assertRaises(exception.InvalidState, self.db.transition,
                                'vhsms', vhsm['id'],
                                states.WORKLOAD_MACHINE, 'deleted')
        self.assertEqual(states.BUILDING, exc.kwargs['state'])
        self.assertEqual(vhsm, self.db.get('vhsms', vhsm['id']))

    def test_concurrent_transitions_one_wins(self):
        group = self.group()
        conns = [self.new_connection() for _ in range(RACERS)]
        results, errors = race(
            [lambda c=c: c.transition('vhsm_groups', group['id'],
                                      states.RESOURCE_MACHINE, 'done')
             for c in conns])
        self.assertEqual(1, len(results))
        self.assertEqual(states.ACTIVE, results[0]['state'])
        self.assertEqual(RACERS - 1, len(errors))
        for exc in errors:
            self.assertIsInstance(exc, exception.InvalidState)
            self.assertEqual(states.ACTIVE, exc.kwargs['state'])

    def test_concurrent_deletes_one_wins(self):
        vhsm = self.vhsm(state=states.DELETING)
        conns = [self.new_connection() for _ in range(RACERS)]
        results, errors = race(
            [lambda c=c: c.transition('vhsms', vhsm['id'],
                                      states.WORKLOAD_MACHINE, 'deleted')
             for c in conns])
        self.assertEqual([states.DELETED], [r['state'] for r in results])
        self.assertEqual(RACERS - 1, len(errors))
        for exc in errors:
            self.assertIsInstance(exc, exception.ResourceNotFound)

    # -- placement under a node lock ----------------------------------------

    def test_create_placed_respects_capacity(self):
        node = self.node(vhsm_capacity=2)
        group = self.group()
        made = [self.db.create_placed('vhsms', {
            'group_id': group['id'], 'node_id': node['id']})
            for _ in range(2)]
        self.assertEqual(2, len(made))
        exc = self.assertRaises(exception.NodeFull, self.db.create_placed,
                                'vhsms', {'group_id': group['id'],
                                          'node_id': node['id']})
        self.assertIn('node-1 already runs 2 vHSM(s)', str(exc))
        # A DELETING workload no longer holds its slot.
        self.db.transition('vhsms', made[0]['id'], states.WORKLOAD_MACHINE,
                           'delete')
        self.db.create_placed('vhsms', {'group_id': group['id'],
                                        'node_id': node['id']})

    def test_create_placed_needs_a_node(self):
        group = self.group()
        self.assertRaises(exception.ResourceNotFound, self.db.create_placed,
                          'vhsms', {'group_id': group['id'],
                                    'node_id': 424242})
        self.assertRaises(exception.InvalidInput, self.db.create_placed,
                          'tasks', {'action': 'x'})

    def test_concurrent_placements_never_oversubscribe(self):
        node = self.node(instance_capacity=2)
        service = self.service()
        conns = [self.new_connection() for _ in range(RACERS)]
        results, errors = race(
            [lambda c=c: c.create_placed('service_instances', {
                'service_id': service['id'], 'node_id': node['id']})
             for c in conns])
        self.assertEqual(2, len(results))
        self.assertEqual(RACERS - 2, len(errors))
        for exc in errors:
            self.assertIsInstance(exc, exception.NodeFull)
        self.assertEqual(2, self.db.count('service_instances',
                                          {'node_id': node['id']}))

    # -- delete -------------------------------------------------------------

    def test_delete(self):
        group = self.group()
        self.db.delete('vhsm_groups', group['id'])
        self.assertRaises(exception.ResourceNotFound, self.db.get,
                          'vhsm_groups', group['id'])
        self.assertRaises(exception.ResourceNotFound, self.db.delete,
                          'vhsm_groups', group['id'])

    def test_delete_referenced_row_conflicts(self):
        vhsm = self.vhsm()
        self.assertRaises(exception.Conflict, self.db.delete, 'vhsm_groups',
                          vhsm['group_id'])
        self.assertEqual(vhsm, self.db.get('vhsms', vhsm['id']))

    def test_deleting_a_service_deletes_its_credentials(self):
        service = self.service()
        self.db.create('service_credentials', {
            'service_id': service['id'], 'project_id': PROJECT,
            'secret_sha256': '00' * 32})
        self.db.delete('services', service['id'])
        self.assertEqual(0, self.db.count('service_credentials'))

    def test_delete_where(self):
        vhsm = self.vhsm()
        for _ in range(3):
            self.db.create('associations', {
                'vhsm_id': vhsm['id'], 'instance_id': self.instance()['id']})
        other = self.db.create('associations', {
            'vhsm_id': self.vhsm()['id'],
            'instance_id': self.instance()['id']})
        self.assertEqual(3, self.db.delete_where(
            'associations', {'vhsm_id': vhsm['id']}))
        self.assertEqual([other['id']],
                         [a['id'] for a in self.db.list('associations')])
        self.assertEqual(0, self.db.delete_where(
            'associations', {'vhsm_id': vhsm['id']}))
        self.assertRaises(exception.InvalidInput, self.db.delete_where,
                          'associations', {})

    # -- nodes --------------------------------------------------------------

    def test_register_node(self):
        before = api.utcnow()
        node = self.node(roles=['service', 'device'])
        self.assertIsInstance(node['id'], int)
        self.assertEqual(['device', 'service'], node['roles'])
        self.assertEqual(states.NODE_UP, node['state'])
        self.assertTrue(node['enabled'])
        self.assertLessEqual(before, node['last_heartbeat'])
        self.assertEqual((4, 8), (node['vhsm_capacity'],
                                  node['instance_capacity']))
        self.assertEqual(node, self.db.get('nodes', node['id']))

    def test_register_again_updates_and_keeps_enabled(self):
        node = self.node()
        self.db.update('nodes', node['id'], {'enabled': False})
        self.db.mark_silent_nodes_down(_later(1))
        again = self.node(roles=['device'], address='127.0.0.2',
                          vhsm_capacity=9)
        self.assertEqual(node['id'], again['id'])
        self.assertFalse(again['enabled'])
        self.assertEqual(states.NODE_UP, again['state'])
        self.assertEqual(['device'], again['roles'])
        self.assertEqual(('127.0.0.2', 9),
                         (again['address'], again['vhsm_capacity']))
        self.assertEqual(1, self.db.count('nodes'))

    def test_register_node_bad_roles(self):
        for roles in ([], ['storage'], ['device', 'gpu']):
            self.assertRaises(exception.InvalidInput, self.node,
                              roles=roles)
        self.assertEqual(0, self.db.count('nodes'))

    def test_register_race_makes_one_node(self):
        conns = [self.new_connection() for _ in range(RACERS)]
        results, errors = race(
            [lambda c=c: c.register_node('node-r', '127.0.0.1', ['device'],
                                         1, 1) for c in conns])
        self.assertEqual([], errors)
        self.assertEqual(1, len({n['id'] for n in results}))
        self.assertEqual(1, self.db.count('nodes'))

    def test_heartbeat(self):
        node = self.node()
        self.db.mark_silent_nodes_down(_later(1))
        beat = self.db.heartbeat_node('node-1', {'cpu': 0.5,
                                                 'workloads': 2})
        self.assertEqual(states.NODE_UP, beat['state'])
        self.assertEqual({'cpu': 0.5, 'workloads': 2}, beat['load'])
        self.assertGreaterEqual(beat['last_heartbeat'],
                                node['last_heartbeat'])
        exc = self.assertRaises(exception.ResourceNotFound,
                                self.db.heartbeat_node, 'nobody', {})
        self.assertIn('nobody', str(exc))

    def test_mark_silent_nodes_down(self):
        quiet = self.node('quiet')
        self.node('loud')
        self.db.update('nodes', quiet['id'], {
            'last_heartbeat': api.utcnow() - datetime.timedelta(minutes=5)})
        cutoff = api.utcnow() - datetime.timedelta(minutes=1)
        down = self.db.mark_silent_nodes_down(cutoff)
        self.assertEqual([quiet['id']], [n['id'] for n in down])
        self.assertEqual(states.NODE_DOWN, down[0]['state'])
        self.assertEqual(states.NODE_DOWN,
                         self.db.get('nodes', quiet['id'])['state'])
        self.assertEqual({'loud': states.NODE_UP,
                          'quiet': states.NODE_DOWN},
                         {n['hostname']: n['state']
                          for n in self.db.list('nodes')})
        # Already DOWN: not reported again.
        self.assertEqual([], self.db.mark_silent_nodes_down(cutoff))

    def test_mark_silent_race_reports_each_node_once(self):
        for i in range(4):
            self.node('node-%d' % i)
        conns = [self.new_connection() for _ in range(RACERS)]
        cutoff = _later(1)
        results, errors = race(
            [lambda c=c: c.mark_silent_nodes_down(cutoff) for c in conns])
        self.assertEqual([], errors)
        reported = [n['hostname'] for nodes in results for n in nodes]
        self.assertEqual(['node-%d' % i for i in range(4)],
                         sorted(reported))

    def test_node_usage(self):
        one = self.node('one')
        two = self.node('two')
        idle = self.node('idle')
        group = self.group()
        service = self.service(group['id'])
        self.vhsm(group['id'], node_id=one['id'])
        self.vhsm(group['id'], node_id=one['id'], state=states.ACTIVE)
        self.vhsm(group['id'], node_id=one['id'], state=states.DELETING)
        self.vhsm(group['id'])  # not scheduled yet
        self.instance(service['id'], node_id=two['id'])
        self.instance(service['id'], node_id=one['id'], state=states.ERROR)
        self.assertEqual({one['id']: {'vhsms': 2, 'instances': 1},
                          two['id']: {'vhsms': 0, 'instances': 1},
                          idle['id']: {'vhsms': 0, 'instances': 0}},
                         self.db.node_usage())

    # -- tasks --------------------------------------------------------------

    def test_claim_pending_task(self):
        task = self.task()
        self.assertEqual(states.PENDING, task['state'])
        claimed = self.db.claim_task(task['id'], 'conductor-1', LEASE)
        self.assertEqual(states.RUNNING, claimed['state'])
        self.assertEqual('conductor-1', claimed['owner'])
        self.assertIsNotNone(claimed['started_at'])
        self.assertAlmostEqual(
            LEASE, (claimed['lease_expires_at'] -
                    claimed['started_at']).total_seconds(), delta=1)
        # Another conductor cannot take it while the lease lasts...
        self.assertIsNone(self.db.claim_task(task['id'], 'conductor-2',
                                             LEASE))
        # ...its owner may claim it again.
        self.assertEqual('conductor-1', self.db.claim_task(
            task['id'], 'conductor-1', LEASE)['owner'])

    def test_claim_expired_lease_takes_over(self):
        task = self.task()
        first = self.db.claim_task(task['id'], 'conductor-1', LEASE)
        self.db.update('tasks', task['id'], {
            'lease_expires_at': api.utcnow() - datetime.timedelta(
                seconds=1)})
        taken = self.db.claim_task(task['id'], 'conductor-2', LEASE)
        self.assertEqual('conductor-2', taken['owner'])
        self.assertEqual(first['started_at'], taken['started_at'])
        self.assertFalse(self.db.renew_task_lease(task['id'],
                                                  'conductor-1', LEASE))

    def test_claim_unowned_running_task(self):
        task = self.task(state=states.RUNNING)
        self.assertEqual('conductor-1', self.db.claim_task(
            task['id'], 'conductor-1', LEASE)['owner'])

    def test_claim_final_or_missing_task(self):
        task = self.task()
        self.db.finish_task(task['id'], None, succeeded=False, error='x')
        self.assertIsNone(self.db.claim_task(task['id'], 'c', LEASE))
        self.assertRaises(exception.ResourceNotFound, self.db.claim_task,
                          str(uuid.uuid4()), 'c', LEASE)

    def test_claim_race_one_wins(self):
        task = self.task()
        conns = [self.new_connection() for _ in range(RACERS)]
        results, errors = race(
            [lambda c=c, i=i: c.claim_task(task['id'], 'conductor-%d' % i,
                                           LEASE)
             for i, c in enumerate(conns)])
        self.assertEqual([], errors)
        won = [r for r in results if r is not None]
        self.assertEqual(1, len(won))
        self.assertEqual(won[0]['owner'],
                         self.db.get('tasks', task['id'])['owner'])

    def test_renew_task_lease(self):
        task = self.task()
        claimed = self.db.claim_task(task['id'], 'conductor-1', 1)
        self.assertTrue(self.db.renew_task_lease(task['id'], 'conductor-1',
                                                 LEASE))
        renewed = self.db.get('tasks', task['id'])
        self.assertGreater(renewed['lease_expires_at'],
                           claimed['lease_expires_at'])
        self.assertFalse(self.db.renew_task_lease(task['id'], 'conductor-2',
                                                  LEASE))
        self.db.finish_task(task['id'], 'conductor-1', succeeded=True)
        self.assertFalse(self.db.renew_task_lease(task['id'], 'conductor-1',
                                                  LEASE))

    def test_finish_task(self):
        task = self.task()
        self.db.claim_task(task['id'], 'conductor-1', LEASE)
        self.assertRaises(exception.TaskNotOwned, self.db.finish_task,
                          task['id'], 'conductor-2', succeeded=True)
        done = self.db.finish_task(task['id'], 'conductor-1',
                                   succeeded=True)
        self.assertEqual(states.SUCCEEDED, done['state'])
        self.assertIsNotNone(done['finished_at'])
        self.assertIsNone(done['lease_expires_at'])
        exc = self.assertRaises(exception.InvalidState, self.db.finish_task,
                                task['id'], 'conductor-1', succeeded=False)
        self.assertEqual(states.SUCCEEDED, exc.kwargs['state'])

    def test_finish_task_failed_and_forced(self):
        task = self.task()
        failed = self.db.finish_task(task['id'], None, succeeded=False,
                                     error='no valid host')
        self.assertEqual((states.FAILED, 'no valid host'),
                         (failed['state'], failed['error']))
        # A PENDING task never ran, so it cannot have succeeded.
        pending = self.task()
        self.assertRaises(exception.InvalidState, self.db.finish_task,
                          pending['id'], None, succeeded=True)
        running = self.task()
        self.db.claim_task(running['id'], 'conductor-1', LEASE)
        forced = self.db.finish_task(running['id'], None, succeeded=False,
                                     error='recovered')
        self.assertEqual(states.FAILED, forced['state'])
        self.assertRaises(exception.ResourceNotFound, self.db.finish_task,
                          str(uuid.uuid4()), None, succeeded=False)

    def test_orphaned_tasks(self):
        fresh = self.task()
        live = self.task()
        self.db.claim_task(live['id'], 'conductor-1', LEASE)
        expired = self.task()
        self.db.claim_task(expired['id'], 'conductor-1', 1)
        final = self.task()
        self.db.finish_task(final['id'], None, succeeded=False)
        self.assertEqual([], self.db.orphaned_tasks(api.utcnow()))
        # Some seconds later the PENDING task was never picked up and the
        # short lease has run out; the live lease has not.
        later = _later(api.ORPHAN_PENDING_SECONDS + 1)
        self.assertEqual([fresh['id'], expired['id']],
                         [t['id'] for t in self.db.orphaned_tasks(later)])
        self.assertEqual(
            [fresh['id'], live['id'], expired['id']],
            [t['id'] for t in self.db.orphaned_tasks(_later(LEASE + 1))])
        # conductor-1 restarted: its previous run's task is orphaned now,
        # another conductor's live one is not.
        other = self.task()
        self.db.claim_task(other['id'], 'conductor-2', LEASE)
        self.assertEqual(
            [live['id'], expired['id']],
            [t['id'] for t in self.db.orphaned_tasks(
                api.utcnow(), restarted_owner='conductor-1')])


class TestControlDBSQLite(ControlDBTests, testtools.TestCase):
    """Every control-plane database test on SQLite."""

    backend = 'sqlite'
