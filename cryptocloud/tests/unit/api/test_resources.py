"""Every endpoint's happy path, against a real SQLite database."""

import hashlib
import uuid

from cryptocloud.common import states
from cryptocloud.tests.unit.api import base


class TestVersions(base.APITestCase):

    def test_root_needs_no_credentials(self):
        resp = self.call('GET', '/', user=None, status=200)
        self.assertEqual('v1', resp.json['default_version']['id'])
        self.assertEqual('http://localhost/v1',
                         resp.json['versions'][0]['links'][0]['href'])

    def test_v1(self):
        resp = self.call('GET', '/v1', user=None, status=200)
        self.assertEqual('CURRENT', resp.json['status'])
        self.call('GET', '/v1/', user=None, status=200)

    def test_public_endpoint_in_links(self):
        self.conf.set_override('public_endpoint', 'https://api.example/',
                               'api')
        resp = self.call('GET', '/', user=None, status=200)
        self.assertEqual('https://api.example/v1',
                         resp.json['versions'][0]['links'][0]['href'])

    def test_request_id_header(self):
        resp = self.call('GET', '/v1/nodes', status=200)
        self.assertTrue(resp.headers['X-OpenStack-Request-Id']
                        .startswith('req-'))


class TestNodes(base.APITestCase):

    def test_list_show_patch(self):
        node = self.add_node()
        self.add_node('node-2', roles=['device'])
        resp = self.call('GET', '/v1/nodes', status=200)
        self.assertEqual(['node-1', 'node-2'],
                         [n['hostname'] for n in resp.json['nodes']])
        self.assertIsNone(resp.json['next'])
        shown = self.call('GET', '/v1/nodes/%d' % node['id'],
                          status=200).json
        self.assertEqual(['device', 'service'], shown['roles'])
        self.assertTrue(shown['created_at'].endswith('Z'))
        patched = self.call('PATCH', '/v1/nodes/%d' % node['id'],
                            {'enabled': False}, status=200).json
        self.assertFalse(patched['enabled'])
        self.assertFalse(self.conn.get('nodes', node['id'])['enabled'])

    def test_filters(self):
        self.add_node()
        self.add_node('node-2', roles=['device'])
        by_role = self.call('GET', '/v1/nodes?role=service', status=200)
        self.assertEqual(['node-1'],
                         [n['hostname'] for n in by_role.json['nodes']])
        self.call('PATCH', '/v1/nodes/2', {'enabled': False}, status=200)
        disabled = self.call('GET', '/v1/nodes?enabled=false', status=200)
        self.assertEqual(['node-2'],
                         [n['hostname'] for n in disabled.json['nodes']])
        up = self.call('GET', '/v1/nodes?state=UP&enabled=true', status=200)
        self.assertEqual(['node-1'],
                         [n['hostname'] for n in up.json['nodes']])

    def test_paging(self):
        for i in range(5):
            self.add_node('node-%d' % i)
        first = self.call('GET', '/v1/nodes?limit=2', status=200).json
        self.assertEqual(2, len(first['nodes']))
        seen = [n['id'] for n in first['nodes']]
        nxt = first['next']
        while nxt:
            page = self.call('GET', nxt.replace('http://localhost', ''),
                             status=200).json
            seen += [n['id'] for n in page['nodes']]
            nxt = page['next']
        self.assertEqual([1, 2, 3, 4, 5], seen)
        desc = self.call('GET', '/v1/nodes?sort_dir=desc&limit=2',
                         status=200).json
        self.assertEqual([5, 4], [n['id'] for n in desc['nodes']])
        self.assertIn('sort_dir=desc', desc['next'])


class TestGroups(base.APITestCase):

    def test_create(self):
        out = self.create_group(size=3)
        group, task = out['vhsm_group'], out['task']
        self.assertEqual({'name': 'g1', 'size': 3, 'state': 'CREATING',
                          'project_id': 'project-a'},
                         {k: group[k] for k in ('name', 'size', 'state',
                                                'project_id')})
        self.assertEqual('create_vhsm_group', task['action'])
        self.assertEqual(group['id'], task['resource_id'])
        self.assertEqual('alice', task['user_id'])
        self.assertEqual('PENDING', task['state'])
        self.assertEqual([task['id']],
                         [c[1] for c in self.conductor.casts])
        ctxt = self.conductor.casts[0][0]
        self.assertEqual('project-a', ctxt.project_id)
        self.assertEqual(task['request_id'], ctxt.request_id)

    def test_show_list(self):
        group = self.create_group()['vhsm_group']
        shown = self.call('GET', '/v1/vhsm_groups/' + group['id'],
                          user='alice', status=200).json
        self.assertEqual(group, shown)
        listed = self.call('GET', '/v1/vhsm_groups?state=CREATING',
                           user='alice', status=200).json
        self.assertEqual([group['id']],
                         [g['id'] for g in listed['vhsm_groups']])
        none = self.call('GET', '/v1/vhsm_groups?state=ACTIVE',
                         user='alice', status=200).json
        self.assertEqual([], none['vhsm_groups'])

    def test_resize(self):
        group = self.create_group()['vhsm_group']
        self.activate('vhsm_groups', group['id'])
        out = self.call('PATCH', '/v1/vhsm_groups/' + group['id'],
                        {'size': 5}, user='alice', status=202).json
        self.assertEqual('UPDATING', out['vhsm_group']['state'])
        self.assertEqual(5, out['vhsm_group']['size'])
        self.assertEqual({'size': 5, 'previous_size': 2},
                         out['task']['params'])
        self.assertEqual('resize_vhsm_group', out['task']['action'])

    def test_delete(self):
        group = self.create_group()['vhsm_group']
        self.activate('vhsm_groups', group['id'])
        out = self.call('DELETE', '/v1/vhsm_groups/' + group['id'],
                        user='alice', status=202).json
        self.assertEqual('DELETING', out['vhsm_group']['state'])
        self.assertEqual('delete_vhsm_group', out['task']['action'])
        # Deleting again is allowed: DELETING -> delete -> DELETING.
        self.call('DELETE', '/v1/vhsm_groups/' + group['id'], user='alice',
                  status=202)

    def test_delete_refused_while_services_use_it(self):
        group = self.create_group()['vhsm_group']
        self.create_service(group['id'])
        casts = len(self.conductor.casts)
        tasks = self.conn.count('tasks')
        resp = self.call('DELETE', '/v1/vhsm_groups/' + group['id'],
                         user='alice')
        self.assertError(resp, 409, 'Conflict', 'used by 1 service')
        self.assertEqual(casts, len(self.conductor.casts))
        self.assertEqual(tasks, self.conn.count('tasks'))

    def test_resize_refused_by_the_state_machine(self):
        group = self.create_group()['vhsm_group']
        tasks = self.conn.count('tasks')
        resp = self.call('PATCH', '/v1/vhsm_groups/' + group['id'],
                         {'size': 3}, user='alice')
        self.assertError(resp, 409, 'InvalidState', 'CREATING')
        self.assertEqual(tasks, self.conn.count('tasks'))


class TestServices(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.group = self.create_group()['vhsm_group']

    def test_create_returns_the_token_once(self):
        out = self.create_service(self.group['id'], replicas=2,
                                  algorithms=['SM2', 'SM4'])
        service, cred = out['service'], out['credential']
        self.assertEqual('CREATING', service['state'])
        self.assertEqual(2, service['replicas'])
        self.assertEqual(['SM2', 'SM4'], service['algorithms'])
        self.assertIsNone(service['endpoint'])
        cred_id, _, secret = cred['token'].partition('.')
        self.assertEqual(cred['id'], cred_id)
        self.assertEqual(32, len(cred_id))
        self.assertGreaterEqual(len(secret), 43)
        row = self.conn.get('service_credentials', cred_id)
        self.assertEqual(hashlib.sha256(secret.encode()).hexdigest(),
                         row['secret_sha256'])
        # Nowhere else: not the task, not later reads, not the log.
        task = self.conn.get('tasks', out['task']['id'])
        self.assertNotIn(secret, repr(task))
        self.assertEqual(cred_id, task['params']['credential_id'])
        shown = self.call('GET', '/v1/services/' + service['id'],
                          user='alice', status=200)
        listed = self.call('GET', '/v1/services/%s/credentials'
                           % service['id'], user='alice', status=200)
        tasks = self.call('GET', '/v1/tasks', user='alice', status=200)
        for resp in (shown, listed, tasks):
            self.assertNotIn(secret, resp.text)
        self.assertNotIn(secret, self.logger.output)
        self.assertEqual([{'id': cred_id, 'service_id': service['id'],
                           'project_id': 'project-a'}],
                         [{k: c[k] for k in ('id', 'service_id',
                                             'project_id')}
                          for c in listed.json['credentials']])

    def test_default_replicas(self):
        out = self.create_service(self.group['id'])
        self.assertEqual(1, out['service']['replicas'])
        self.assertEqual('create_service', out['task']['action'])

    def test_endpoint_when_active(self):
        service = self.create_service(self.group['id'])['service']
        self.conn.transition('services', service['id'],
                             states.RESOURCE_MACHINE, 'done',
                             {'endpoint_host': '127.0.0.1',
                              'endpoint_port': 9700})
        shown = self.call('GET', '/v1/services/' + service['id'],
                          user='alice', status=200).json
        self.assertEqual({'host': '127.0.0.1', 'port': 9700},
                         shown['endpoint'])
        listed = self.call('GET', '/v1/services?vhsm_group_id=%s'
                           % self.group['id'], user='alice',
                           status=200).json
        self.assertEqual([shown], listed['services'])

    def test_resize_and_delete(self):
        service = self.create_service(self.group['id'])['service']
        self.activate('services', service['id'])
        out = self.call('PATCH', '/v1/services/' + service['id'],
                        {'instances': 4}, user='alice', status=202).json
        self.assertEqual(('UPDATING', 4), (out['service']['state'],
                                           out['service']['instances']))
        self.assertEqual('resize_service', out['task']['action'])
        out = self.call('DELETE', '/v1/services/' + service['id'],
                        user='alice', status=202).json
        self.assertEqual('DELETING', out['service']['state'])
        self.assertEqual('delete_service', out['task']['action'])
        resp = self.call('PATCH', '/v1/services/' + service['id'],
                         {'instances': 1}, user='alice')
        self.assertError(resp, 409, 'InvalidState')

    def test_credentials(self):
        service = self.create_service(self.group['id'])['service']
        path = '/v1/services/%s/credentials' % service['id']
        out = self.call('POST', path, user='alice', status=201).json
        cred_id, _, secret = out['credential']['token'].partition('.')
        self.assertEqual('update_service_credentials', out['task']['action'])
        self.assertEqual({'added': cred_id}, out['task']['params'])
        listed = self.call('GET', path, user='alice', status=200).json
        self.assertEqual(2, len(listed['credentials']))
        self.assertNotIn('secret_sha256', listed['credentials'][0])
        self.call('POST', path, {}, user='alice', status=201)
        out = self.call('DELETE', '%s/%s' % (path, cred_id), user='alice',
                        status=202).json
        self.assertEqual({'revoked': cred_id}, out['task']['params'])
        self.assertEqual(2, len(self.call('GET', path, user='alice',
                                          status=200).json['credentials']))
        resp = self.call('DELETE', '%s/%s' % (path, cred_id), user='alice')
        self.assertError(resp, 404)
        resp = self.call('DELETE', '%s/%s' % (path, 'f' * 31), user='alice')
        self.assertError(resp, 404)

    def test_credential_of_another_service_is_not_found(self):
        one = self.create_service(self.group['id'])
        two = self.create_service(self.group['id'])
        resp = self.call('DELETE', '/v1/services/%s/credentials/%s'
                         % (two['service']['id'], one['credential']['id']),
                         user='alice')
        self.assertError(resp, 404)

    def test_group_must_be_usable(self):
        resp = self.call('POST', '/v1/services', {
            'vhsm_group_id': str(uuid.uuid4()), 'instances': 1},
            user='alice')
        self.assertError(resp, 400, 'InvalidInput', 'vhsm_group_id')
        other = self.create_group(user='bob')['vhsm_group']
        resp = self.call('POST', '/v1/services', {
            'vhsm_group_id': other['id'], 'instances': 1}, user='alice')
        self.assertError(resp, 400, 'InvalidInput', 'vhsm_group_id')
        resp = self.call('POST', '/v1/services', {
            'vhsm_group_id': other['id'], 'instances': 1}, user='admin')
        self.assertError(resp, 400, 'InvalidInput', 'another project')
        self.activate('vhsm_groups', self.group['id'])
        self.conn.transition('vhsm_groups', self.group['id'],
                             states.RESOURCE_MACHINE, 'delete')
        resp = self.call('POST', '/v1/services', {
            'vhsm_group_id': self.group['id'], 'instances': 1},
            user='alice')
        self.assertError(resp, 409, 'InvalidState')


class TestWorkloads(base.APITestCase):
    """Instances, vHSMs and associations, written as the conductor would."""

    def setUp(self):
        super().setUp()
        self.node = self.add_node()
        self.group = self.create_group()['vhsm_group']
        self.service = self.create_service(self.group['id'])['service']
        self.vhsm = self.conn.create('vhsms', {
            'group_id': self.group['id'], 'node_id': self.node['id'],
            'host': '127.0.0.1', 'port': 9800, 'state': states.ACTIVE})
        self.instance = self.conn.create('service_instances', {
            'service_id': self.service['id'], 'node_id': self.node['id'],
            'host': '127.0.0.1', 'port': 9700, 'state': states.BUILDING})
        self.assoc = self.conn.create('associations', {
            'vhsm_id': self.vhsm['id'], 'instance_id': self.instance['id']})
        # Another project's rows, which alice must never see.
        bgroup = self.create_group(user='bob')['vhsm_group']
        bservice = self.create_service(bgroup['id'], user='bob')['service']
        self.bvhsm = self.conn.create('vhsms', {
            'group_id': bgroup['id'], 'state': states.BUILDING})
        self.binstance = self.conn.create('service_instances', {
            'service_id': bservice['id'], 'state': states.BUILDING})
        self.bassoc = self.conn.create('associations', {
            'vhsm_id': self.bvhsm['id'],
            'instance_id': self.binstance['id']})

    def ids(self, path, key, user='alice'):
        return [r['id'] for r in self.call('GET', path, user=user,
                                           status=200).json[key]]

    def test_instances(self):
        self.assertEqual([self.instance['id']],
                         self.ids('/v1/instances', 'instances'))
        self.assertEqual(2, len(self.ids('/v1/instances', 'instances',
                                         user='admin')))
        self.assertEqual([self.instance['id']], self.ids(
            '/v1/instances?service_id=%s&state=BUILDING&node_id=%d'
            % (self.service['id'], self.node['id']), 'instances'))
        shown = self.call('GET', '/v1/instances/' + self.instance['id'],
                          user='alice', status=200).json
        self.assertEqual(9700, shown['port'])
        self.assertError(self.call('GET', '/v1/instances/'
                                   + self.binstance['id'], user='alice'),
                         404)

    def test_vhsms(self):
        self.assertEqual([self.vhsm['id']], self.ids('/v1/vhsms', 'vhsms'))
        self.assertEqual([self.vhsm['id']], self.ids(
            '/v1/vhsms?group_id=%s&state=ACTIVE' % self.group['id'],
            'vhsms'))
        self.assertEqual([], self.ids('/v1/vhsms?state=ERROR', 'vhsms'))
        shown = self.call('GET', '/v1/vhsms/' + self.vhsm['id'],
                          user='alice', status=200).json
        self.assertEqual(self.group['id'], shown['group_id'])
        self.assertError(self.call('GET', '/v1/vhsms/' + self.bvhsm['id'],
                                   user='alice'), 404)

    def test_associations(self):
        self.assertEqual([self.assoc['id']],
                         self.ids('/v1/associations', 'associations'))
        self.assertEqual(2, len(self.ids('/v1/associations', 'associations',
                                         user='admin')))
        for query in ('service_id=' + self.service['id'],
                      'group_id=' + self.group['id'],
                      'vhsm_id=' + self.vhsm['id'],
                      'instance_id=' + self.instance['id']):
            self.assertEqual([self.assoc['id']], self.ids(
                '/v1/associations?' + query, 'associations'), query)
        self.assertEqual([], self.ids(
            '/v1/associations?vhsm_id=' + self.bvhsm['id'],
            'associations'))
        self.call('GET', '/v1/associations/%d' % self.assoc['id'],
                  user='alice', status=200)
        self.assertError(self.call('GET', '/v1/associations/%d'
                                   % self.bassoc['id'], user='alice'), 404)

    def test_tasks(self):
        mine = self.ids('/v1/tasks', 'tasks')
        self.assertEqual(2, len(mine))
        self.assertEqual(4, len(self.ids('/v1/tasks', 'tasks',
                                         user='admin')))
        created = self.ids('/v1/tasks?action=create_service&state=PENDING',
                           'tasks')
        self.assertEqual(1, len(created))
        by_resource = self.ids('/v1/tasks?resource_id=' + self.group['id'],
                               'tasks')
        self.assertEqual(1, len(by_resource))
        shown = self.call('GET', '/v1/tasks/' + created[0], user='alice',
                          status=200).json
        self.assertEqual(self.service['id'], shown['resource_id'])
        self.assertNotIn('lease_expires_at', shown)
