"""``/v1/services/{id}/scaling_policy``: set, show, replace, delete, and
every way to get it wrong."""

import uuid

from cryptocloud.api import schemas
from cryptocloud.common import states
from cryptocloud.conductor import nodes
from cryptocloud.tests.unit.api import base

GOOD = {'metric': 'requests_per_s', 'lower': 5, 'upper': 50,
        'max_instances': 4}


class TestScalingPolicy(base.APITestCase):

    def setUp(self):
        super().setUp()
        group = self.create_group()['vhsm_group']
        self.service = self.create_service(group['id'])['service']
        self.activate('services', self.service['id'])
        self.path = '/v1/services/%s/scaling_policy' % self.service['id']

    def put(self, body, user='alice', status=200):
        return self.call('PUT', self.path, body, user=user, status=status)

    def test_set_show_replace_delete(self):
        casts, tasks = len(self.conductor.casts), self.conn.count('tasks')
        made = self.put(GOOD).json
        self.assertEqual({
            'service_id': self.service['id'], 'project_id': 'project-a',
            'metric': 'requests_per_s', 'lower': 5, 'upper': 50,
            'add_instances': 1, 'remove_instances': 1, 'add_vhsms': 0,
            'remove_vhsms': 0, 'min_instances': 1, 'max_instances': 4,
            'min_vhsms': 1, 'max_vhsms': None, 'cooldown': 60,
            'window': 30, 'enabled': True, 'pressure': None,
            'evaluated_at': None, 'last_decision': None,
            'last_reason': None, 'last_scaled_at': None,
            'last_task_id': None},
            {k: v for k, v in made.items()
             if k not in ('id', 'created_at', 'updated_at')})
        # Configuration only: no task, no cast.
        self.assertEqual(casts, len(self.conductor.casts))
        self.assertEqual(tasks, self.conn.count('tasks'))
        self.assertEqual(made, self.call('GET', self.path, user='alice',
                                         status=200).json)
        replaced = self.put({
            'metric': 'p95_ms', 'lower': 0.5, 'upper': 20.25,
            'add_instances': 2, 'remove_instances': 0, 'add_vhsms': 1,
            'remove_vhsms': 1, 'min_instances': 2, 'max_instances': 6,
            'min_vhsms': 2, 'max_vhsms': 5, 'cooldown': 0, 'window': 10,
            'enabled': False}).json
        self.assertEqual(made['id'], replaced['id'])
        self.assertEqual((0.5, 20.25, 2, 0, 5, 0, 10, False),
                         tuple(replaced[k] for k in (
                             'lower', 'upper', 'add_instances',
                             'remove_instances', 'max_vhsms', 'cooldown',
                             'window', 'enabled')))
        row = self.conn.get('scaling_policies', made['id'])
        self.assertEqual(1, row['generation'])
        self.assertEqual(1, self.conn.count('scaling_policies'))
        resp = self.call('DELETE', self.path, user='alice', status=204)
        self.assertEqual(b'', resp.body)
        self.assertError(self.call('GET', self.path, user='alice'), 404,
                         text='scaling policy of service %s'
                              % self.service['id'])
        self.assertError(self.call('DELETE', self.path, user='alice'), 404)

    def test_replacing_starts_the_evaluation_afresh(self):
        made = self.put(GOOD).json
        self.conn.update('scaling_policies', made['id'], {
            'pressure': {'metric': 'requests_per_s', 'since': 1.0e9,
                         'points': [[1.0e9, 10.0, 2], [1.0e9 + 5, 20.0, 2]]},
            'last_decision': 'hold', 'last_reason': 'within the band'})
        shown = self.call('GET', self.path, user='alice', status=200).json
        self.assertEqual({'value': 15.0, 'latest': 20.0, 'points': 2,
                          'samples': 2, 'at': '2001-09-09T01:46:45Z'},
                         shown['pressure'])
        self.assertEqual('hold', shown['last_decision'])
        again = self.put(dict(GOOD, upper=60)).json
        self.assertIsNone(again['pressure'])
        self.assertIsNone(again['last_decision'])

    def test_admin_sets_another_projects_policy(self):
        made = self.put(GOOD, user='admin').json
        self.assertEqual('project-a', made['project_id'])
        self.call('GET', self.path, user='alice', status=200)

    def test_other_project_sees_nothing(self):
        self.put(GOOD)
        for method, body in (('GET', None), ('PUT', GOOD),
                             ('DELETE', None)):
            resp = self.call(method, self.path, body, user='bob')
            self.assertError(resp, 404, text='service')
        self.assertEqual(5, self.conn.list('scaling_policies')[0]['lower'])

    def test_unknown_service(self):
        path = '/v1/services/%s/scaling_policy' % uuid.uuid4()
        self.assertError(self.call('PUT', path, GOOD), 404)
        self.assertError(self.call('GET', path), 404)
        self.assertError(self.call('PUT', '/v1/services/nope/scaling_policy',
                                   GOOD), 404)

    def test_method_not_allowed(self):
        resp = self.call('POST', self.path, GOOD, user='alice')
        self.assertError(resp, 405)
        self.assertEqual('DELETE, GET, PUT', resp.headers['Allow'])

    def test_refused_while_the_service_is_deleted(self):
        self.conn.transition('services', self.service['id'],
                             states.RESOURCE_MACHINE, 'delete')
        self.assertError(self.put(GOOD, status=None), 409, 'InvalidState',
                         'DELETING')

    def test_deleting_the_service_takes_its_policy(self):
        self.put(GOOD)
        self.conn.transition('services', self.service['id'],
                             states.RESOURCE_MACHINE, 'delete')
        self.conn.delete_where('service_credentials',
                               {'service_id': self.service['id']})
        self.conn.transition('services', self.service['id'],
                             states.RESOURCE_MACHINE, 'deleted')
        self.assertEqual(0, self.conn.count('scaling_policies'))

    def test_bad_input(self):
        cases = [
            ({'lower': 5, 'upper': 50, 'max_instances': 4}, 'metric'),
            (dict(GOOD, metric='qps'), 'metric'),
            (dict(GOOD, metric=None), 'metric'),
            ({'metric': 'cpu', 'upper': 1, 'max_instances': 2}, 'lower'),
            ({'metric': 'cpu', 'lower': 0, 'max_instances': 2}, 'upper'),
            ({'metric': 'cpu', 'lower': 0, 'upper': 1}, 'max_instances'),
            (dict(GOOD, lower=-1), 'lower'),
            (dict(GOOD, lower='5'), 'lower'),
            (dict(GOOD, lower=True), 'lower'),
            (dict(GOOD, upper=1e10), 'upper'),
            (dict(GOOD, lower=50), 'lower (50) must be less than upper'),
            (dict(GOOD, lower=60), 'lower (60) must be less than upper'),
            (dict(GOOD, add_instances=-1), 'add_instances'),
            (dict(GOOD, add_instances=1.5), 'add_instances'),
            (dict(GOOD, add_instances=51), 'add_instances'),
            (dict(GOOD, remove_instances=-1), 'remove_instances'),
            (dict(GOOD, add_vhsms=101, max_vhsms=5), 'add_vhsms'),
            (dict(GOOD, remove_vhsms='1'), 'remove_vhsms'),
            (dict(GOOD, max_instances=0), 'max_instances'),
            (dict(GOOD, max_instances=51), 'max_instances'),
            (dict(GOOD, min_instances=0), 'min_instances'),
            (dict(GOOD, min_instances=5), 'min_instances (5) must not '
                                          'exceed max_instances (4)'),
            (dict(GOOD, min_vhsms=0), 'min_vhsms'),
            (dict(GOOD, max_vhsms=101), 'max_vhsms'),
            (dict(GOOD, min_vhsms=3, max_vhsms=2),
             'min_vhsms (3) must not exceed max_vhsms (2)'),
            (dict(GOOD, add_vhsms=1), 'max_vhsms is required'),
            (dict(GOOD, add_instances=0), 'add_instances or add_vhsms'),
            (dict(GOOD, remove_instances=0),
             'remove_instances or remove_vhsms'),
            (dict(GOOD, cooldown=-1), 'cooldown'),
            (dict(GOOD, cooldown=86401), 'cooldown'),
            (dict(GOOD, window=0), 'window'),
            (dict(GOOD, window=3601), 'window'),
            (dict(GOOD, window=2.5), 'window'),
            (dict(GOOD, enabled='yes'), 'enabled'),
            (dict(GOOD, size=3), 'size'),
            ([GOOD], 'the request body'),
            ('{"metric": "cpu",', 'malformed JSON'),
            ('{"metric": "cpu", "lower": NaN, "upper": 1, '
             '"max_instances": 2}', 'NaN'),
        ]
        for body, text in cases:
            resp = self.call('PUT', self.path, body, user='alice')
            err = self.assertError(resp, 400, 'InvalidInput')
            self.assertIn(text, err['message'], body)
        self.assertEqual(0, self.conn.count('scaling_policies'))
        resp = self.call('PUT', self.path, None, user='alice')
        self.assertError(resp, 400, 'InvalidInput', 'metric')

    def test_scale_in_never_is_lower_zero(self):
        made = self.put(dict(GOOD, lower=0, remove_instances=1)).json
        self.assertEqual(0, made['lower'])

    def test_metrics_are_the_heartbeat_figures(self):
        self.assertEqual(tuple(nodes.LOAD_FIGURES), schemas.SCALING_METRICS)

    def test_scale_tasks_are_listed(self):
        self.conn.create('tasks', {
            'project_id': 'project-a', 'action': 'scale_service',
            'resource_type': 'service', 'resource_id': self.service['id'],
            'params': {'direction': 'out', 'metric': 'requests_per_s',
                       'value': 80.5, 'instances_before': 2,
                       'instances_after': 3},
            'state': states.PENDING})
        listed = self.call('GET', '/v1/tasks?action=scale_service',
                           user='alice', status=200).json['tasks']
        self.assertEqual([80.5], [t['params']['value'] for t in listed])


class TestWorkloadLoad(base.APITestCase):

    def test_instances_and_vhsms_show_their_latest_figures(self):
        group = self.create_group()['vhsm_group']
        service = self.create_service(group['id'])['service']
        inst = self.conn.create('service_instances', {
            'service_id': service['id'], 'state': states.ACTIVE})
        vhsm = self.conn.create('vhsms', {'group_id': group['id'],
                                          'state': states.ACTIVE})
        shown = self.call('GET', '/v1/instances/' + inst['id'],
                          user='alice', status=200).json
        self.assertEqual((None, None), (shown['load'],
                                        shown['load_updated_at']))
        figures = {'requests_per_s': 12.5, 'in_flight': 1, 'p95_ms': 3.0,
                   'cpu': 0.2}
        self.conn.record_loads('service_instances', {inst['id']: figures})
        self.conn.record_loads('vhsms', {vhsm['id']: figures})
        shown = self.call('GET', '/v1/instances/' + inst['id'],
                          user='alice', status=200).json
        self.assertEqual(figures, shown['load'])
        self.assertTrue(shown['load_updated_at'].endswith('Z'))
        listed = self.call('GET', '/v1/vhsms?group_id=' + group['id'],
                           user='alice', status=200).json['vhsms']
        self.assertEqual([figures], [v['load'] for v in listed])
