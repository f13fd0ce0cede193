"""Task-first ordering, and what happens when the bus is down."""

from cryptocloud.common import states
from cryptocloud.tests.unit.api import base


class TestTaskFirst(base.APITestCase):

    def test_task_is_pending_when_the_cast_goes_out(self):
        group = self.create_group()['vhsm_group']
        self.activate('vhsm_groups', group['id'])
        self.call('PATCH', '/v1/vhsm_groups/' + group['id'], {'size': 3},
                  user='alice', status=202)
        service = self.create_service(group['id'])['service']
        self.activate('services', service['id'])
        self.call('PATCH', '/v1/services/' + service['id'],
                  {'instances': 3}, user='alice', status=202)
        self.call('POST', '/v1/services/%s/credentials' % service['id'],
                  user='alice', status=201)
        self.call('DELETE', '/v1/services/' + service['id'], user='alice',
                  status=202)
        self.assertEqual(
            ['create_vhsm_group', 'resize_vhsm_group', 'create_service',
             'resize_service', 'update_service_credentials',
             'delete_service'],
            [row['action'] for _, _, row in self.conductor.casts])
        for ctxt, task_id, row in self.conductor.casts:
            self.assertEqual(states.PENDING, row['state'])
            self.assertEqual(task_id, row['id'])
            self.assertEqual(row['request_id'], ctxt.request_id)
            self.assertEqual('alice', row['user_id'])
            # The resource row was written before the cast, too.
            self.assertLessEqual(row['created_at'], self.conn.get(
                'tasks', task_id)['updated_at'])

    def test_resource_state_is_set_before_the_cast(self):
        seen = []
        cast = self.conductor.do_task

        def do_task(ctxt, task_id):
            task = self.conn.get('tasks', task_id)
            seen.append(self.conn.get('vhsm_groups',
                                      task['resource_id'])['state'])
            cast(ctxt, task_id)
        self.conductor.do_task = do_task
        self.create_group()
        self.assertEqual([states.CREATING], seen)

    def test_bus_down_fails_the_task_and_answers_503(self):
        self.conductor.fail = True
        resp = self.call('POST', '/v1/vhsm_groups', {'size': 1},
                         user='alice')
        err = self.assertError(resp, 503, 'ServiceUnavailable')
        (task,) = self.conn.list('tasks')
        self.assertEqual(states.FAILED, task['state'])
        self.assertIn('BusDown', task['error'])
        self.assertIn(task['id'], err['message'])
        group = self.conn.get('vhsm_groups', task['resource_id'])
        self.assertEqual(states.ERROR, group['state'])
        self.assertEqual(0, self.conn.count('tasks', {'state': 'PENDING'}))

    def test_bus_down_on_service_create(self):
        group = self.create_group()['vhsm_group']
        self.conductor.fail = True
        resp = self.call('POST', '/v1/services', {
            'vhsm_group_id': group['id'], 'instances': 1}, user='alice')
        self.assertError(resp, 503)
        self.assertNotIn('token', resp.text)
        (service,) = self.conn.list('services')
        self.assertEqual(states.ERROR, service['state'])
        (task,) = self.conn.list('tasks', filters={'action':
                                                   'create_service'})
        self.assertEqual(states.FAILED, task['state'])
        # The token was never shown: its credential is gone too.
        self.assertEqual(0, self.conn.count('service_credentials'))

    def test_bus_down_on_credential_create(self):
        group = self.create_group()['vhsm_group']
        service = self.create_service(group['id'])['service']
        self.conductor.fail = True
        resp = self.call('POST', '/v1/services/%s/credentials'
                         % service['id'], user='alice')
        self.assertError(resp, 503)
        self.assertEqual(1, self.conn.count('service_credentials'))

    def test_bus_down_on_delete_leaves_it_deleting(self):
        group = self.create_group()['vhsm_group']
        self.activate('vhsm_groups', group['id'])
        self.conductor.fail = True
        self.assertError(self.call('DELETE', '/v1/vhsm_groups/'
                                   + group['id'], user='alice'), 503)
        self.assertEqual(states.DELETING,
                         self.conn.get('vhsm_groups', group['id'])['state'])
        # Repeating the request retries it.
        self.conductor.fail = False
        self.call('DELETE', '/v1/vhsm_groups/' + group['id'], user='alice',
                  status=202)

    def test_cast_that_went_through_is_not_failed(self):
        def do_task(ctxt, task_id):
            self.conn.claim_task(task_id, 'conductor-1', 60)
            raise base.BusDown('timeout after sending')
        self.conductor.do_task = do_task
        resp = self.call('POST', '/v1/vhsm_groups', {'size': 1},
                         user='alice', status=202)
        self.assertEqual(states.RUNNING, resp.json['task']['state'])

    def test_refused_request_writes_no_task(self):
        group = self.create_group()['vhsm_group']
        before = self.conn.count('tasks')
        self.assertError(self.call('PATCH', '/v1/vhsm_groups/' + group['id'],
                                   {'size': 4}, user='alice'), 409)
        self.assertEqual(before, self.conn.count('tasks'))
