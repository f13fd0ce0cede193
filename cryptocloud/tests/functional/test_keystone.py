"""The admin API behind a real Keystone (``[api] auth_strategy = keystone``).

A Keystone (``keystone.Keystone``: gunicorn, SQLite, fernet tokens) and
a control plane (API, conductor, a device node and a service node over
RabbitMQ and MariaDB) are started once; keystonemiddleware in the API
validates every token against that Keystone with its own service
account, and nothing is stubbed.  Two projects, each with a ``member``
user, provision a vHSM group (project A also a service) with their own
tokens; project A also has a ``reader``.

Starting all that costs most of the test's time, so one test runs the
checks one after the other (stestr would spread the tests of a class
over its workers, each paying for its own Keystone and control plane).
"""

import time

import requests
import testtools
from testtools import content

from cryptocloud.tests import db as test_db
from cryptocloud.tests.functional import controlplane
from cryptocloud.tests.functional import keystone

# The answer of every call that needs a token and has none.
NEEDS_AUTH = 'requires authentication'


class TestKeystoneAuth(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.ks = ks = self.useFixture(keystone.Keystone())
        self.addOnException(self._attach_logs)
        self.project_a = ks.make_project('tenant-a')
        self.project_b = ks.make_project('tenant-b')
        self.alice = ks.make_user('alice', self.project_a, 'member')
        self.bob = ks.make_user('bob', self.project_b, 'member')
        self.rita = ks.make_user('rita', self.project_a, 'reader')
        control_db = self.useFixture(test_db.Database('mysql'))
        keystore_db = self.useFixture(test_db.Database('mysql'))
        vhost = self.useFixture(controlplane.RabbitVhost())
        self.cp = self.useFixture(controlplane.ControlPlane(
            control_db.url, keystore_db.url, vhost.url,
            computes=(('device-1', 'device'), ('service-1', 'service')),
            api_groups={'api': {'auth_strategy': 'keystone'},
                        'keystone_authtoken': ks.authtoken_options()}))
        self.session = requests.Session()
        self.addCleanup(self.session.close)
        self.admin_token = ks.token(ks.admin)
        self.alice_token = ks.token(self.alice)
        self.bob_token = ks.token(self.bob)
        self._wait(self.admin_token, '/v1/nodes', lambda b: len(
            [n for n in b['nodes'] if n['state'] == 'UP']) == 2)
        # Each project provisions with its own member token.
        made_a = self._ok(self.alice_token, 'POST', '/v1/vhsm_groups',
                          {'name': 'a-hsm', 'size': 1})
        made_b = self._ok(self.bob_token, 'POST', '/v1/vhsm_groups',
                          {'name': 'b-hsm', 'size': 1})
        self.group_a = made_a['vhsm_group']
        self.group_b = made_b['vhsm_group']
        self.task_a = self._wait_task(self.alice_token, made_a['task']['id'])
        self._wait_task(self.bob_token, made_b['task']['id'])
        made = self._ok(self.alice_token, 'POST', '/v1/services', {
            'name': 'a-payments', 'vhsm_group_id': self.group_a['id'],
            'instances': 1, 'replicas': 0})
        self.service_a = made['service']
        self._wait_task(self.alice_token, made['task']['id'])

    def _attach_logs(self, exc_info):
        paths = [('keystone.log', self.ks.log_path)]
        if getattr(self, 'cp', None) is not None:
            paths += [(p.rsplit('/', 1)[-1], p) for p in self.cp.log_files()
                      if p.endswith('/api.log')]
        for name, path in paths:
            with open(path, errors='replace') as f:
                self.addDetail(name, content.text_content(
                    ''.join(f.readlines()[-80:])))

    def _call(self, token, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if token is not None:
            headers['X-Auth-Token'] = token
        return self.session.request(method, self.cp.url + path, json=body,
                                    headers=headers, timeout=60)

    def _ok(self, token, method, path, body=None):
        resp = self._call(token, method, path, body)
        if resp.status_code not in (200, 201, 202):
            raise AssertionError('%s %s -> %d %s' % (
                method, path, resp.status_code, resp.text[:800]))
        return resp.json()

    def _wait(self, token, path, predicate, timeout=90.0):
        deadline = time.monotonic() + timeout
        body = None
        while time.monotonic() < deadline:
            body = self._ok(token, 'GET', path)
            if predicate(body):
                return body
            time.sleep(0.3)
        raise AssertionError('timed out waiting on %s; last: %s'
                             % (path, body))

    def _wait_task(self, token, task_id):
        task = self._wait(token, '/v1/tasks/' + task_id,
                          lambda t: t['state'] in ('SUCCEEDED', 'FAILED'),
                          timeout=120.0)
        self.assertEqual('SUCCEEDED', task['state'], task)
        return task

    def assertError(self, resp, code, error_type, text=None) -> dict:
        """``resp`` is the API's JSON error ``code``; return its body."""
        self.assertEqual(code, resp.status_code, resp.text)
        self.assertEqual('application/json', resp.headers['Content-Type'])
        err = resp.json()['error']
        self.assertEqual((code, error_type), (err['code'], err['type']))
        if text is not None:
            self.assertIn(text, err['message'])
        return err

    def _ids(self, token, collection):
        body = self._ok(token, 'GET', '/v1/' + collection)
        return {row['id'] for row in body[collection]}

    def test_tokens_roles_and_projects(self):
        self.check_version_documents_need_no_token()
        self.check_no_token_is_401_with_the_keystone_challenge()
        self.check_bad_and_revoked_tokens_are_401()
        self.check_tasks_carry_the_keystone_identity()
        self.check_members_see_their_project_only()
        self.check_admin_sees_every_project()
        self.check_identity_headers_from_the_client_are_ignored()
        self.check_tokens_not_scoped_to_a_project_are_refused()
        self.check_other_roles_allow_nothing()
        self.check_readers_read_and_members_write()
        self.check_members_are_refused_admin_routes()
        self.check_other_projects_rows_are_not_found()

    # -- authentication -----------------------------------------------

    def check_version_documents_need_no_token(self):
        for path in ('/', '/v1'):
            resp = self._call(None, 'GET', path)
            self.assertEqual(200, resp.status_code, resp.text)

    def check_no_token_is_401_with_the_keystone_challenge(self):
        for method, path in (('GET', '/v1/services'), ('GET', '/v1/nodes'),
                             ('POST', '/v1/vhsm_groups')):
            resp = self._call(None, method, path, {'size': 1})
            self.assertError(resp, 401, 'Unauthorized', NEEDS_AUTH)
            self.assertEqual('Keystone uri="%s/v3"' % self.ks.url,
                             resp.headers['WWW-Authenticate'])

    def check_bad_and_revoked_tokens_are_401(self):
        resp = self._call('not-a-token', 'GET', '/v1/services')
        self.assertError(resp, 401, 'Unauthorized', NEEDS_AUTH)
        # A well-formed token Keystone revoked before its first use.
        token = self.ks.token(self.alice)
        self.ks.revoke(token)
        resp = self._call(token, 'GET', '/v1/services')
        self.assertError(resp, 401, 'Unauthorized', NEEDS_AUTH)
        self._ok(self.ks.token(self.alice), 'GET', '/v1/services')

    def check_tasks_carry_the_keystone_identity(self):
        self.assertEqual((self.alice.id, self.project_a),
                         (self.task_a['user_id'], self.task_a['project_id']))
        self.assertEqual(self.project_a, self.group_a['project_id'])
        self.assertEqual(self.project_b, self.group_b['project_id'])
        self.assertEqual(self.project_a, self.service_a['project_id'])

    # -- policy -----------------------------------------------------------

    def check_members_are_refused_admin_routes(self):
        node = self._ok(self.admin_token, 'GET', '/v1/nodes')['nodes'][0]
        for method, path, body, rule in (
                ('GET', '/v1/nodes', None, 'cryptocloud:node:get'),
                ('GET', '/v1/nodes/%s' % node['id'], None,
                 'cryptocloud:node:get'),
                ('PATCH', '/v1/nodes/%s' % node['id'], {'enabled': False},
                 'cryptocloud:node:update'),
                ('GET', '/v1/images', None, 'cryptocloud:image:get'),
                ('POST', '/v1/images', None, 'cryptocloud:image:build')):
            resp = self._call(self.alice_token, method, path, body)
            self.assertError(resp, 403, 'Forbidden',
                             'policy does not allow %s' % rule)
        self.assertTrue(self._ok(self.admin_token, 'GET',
                                 '/v1/nodes/%s' % node['id'])['enabled'])

    def check_admin_sees_every_project(self):
        nodes = self._ok(self.admin_token, 'GET', '/v1/nodes')['nodes']
        self.assertEqual({'device-1', 'service-1'},
                         {n['hostname'] for n in nodes})
        self._ok(self.admin_token, 'GET', '/v1/images')
        self.assertLessEqual({self.group_a['id'], self.group_b['id']},
                             self._ids(self.admin_token, 'vhsm_groups'))
        self.assertEqual(
            self.project_a,
            self._ok(self.admin_token, 'GET', '/v1/services/%s'
                     % self.service_a['id'])['project_id'])
        self.assertEqual(2, len(self._ids(self.admin_token, 'vhsms')))

    def check_readers_read_and_members_write(self):
        rita = self.ks.token(self.rita)
        sid = self.service_a['id']
        self.assertEqual({self.group_a['id']}, self._ids(rita, 'vhsm_groups'))
        self.assertEqual({sid}, self._ids(rita, 'services'))
        self._ok(rita, 'GET', '/v1/services/%s/credentials' % sid)
        for method, path, body, rule in (
                ('POST', '/v1/vhsm_groups', {'size': 1},
                 'cryptocloud:vhsm_group:create'),
                ('DELETE', '/v1/services/' + sid, None,
                 'cryptocloud:service:delete'),
                ('POST', '/v1/services/%s/credentials' % sid, None,
                 'cryptocloud:service:credential:create')):
            resp = self._call(rita, method, path, body)
            self.assertError(resp, 403, 'Forbidden',
                             'policy does not allow %s' % rule)
        service = self._ok(self.alice_token, 'GET', '/v1/services/' + sid)
        self.assertEqual('ACTIVE', service['state'])

    def check_other_roles_allow_nothing(self):
        # keystonemiddleware's own account: role "service" only.
        token = self.ks.token(self.ks.service_user)
        for path in ('/v1/vhsm_groups', '/v1/tasks', '/v1/nodes'):
            self.assertError(self._call(token, 'GET', path), 403,
                             'Forbidden')

    def check_tokens_not_scoped_to_a_project_are_refused(self):
        for token in (self.ks.token(self.alice, scope='unscoped'),
                      self.ks.token(self.ks.admin, scope='system')):
            for method, path, body in (
                    ('GET', '/v1/vhsm_groups', None),
                    ('GET', '/v1/nodes', None),
                    ('POST', '/v1/vhsm_groups', {'size': 1})):
                resp = self._call(token, method, path, body)
                self.assertError(resp, 403, 'Forbidden',
                                 'not scoped to a project')
                self.assertNotIn('WWW-Authenticate', resp.headers)

    def check_identity_headers_from_the_client_are_ignored(self):
        forged = {'X-Project-Id': self.project_b, 'X-Roles': 'admin',
                  'X-User-Id': self.bob.id, 'X-Tenant-Id': self.project_b,
                  'X-Identity-Status': 'Confirmed'}
        resp = self._call(self.alice_token, 'GET', '/v1/nodes',
                          headers=forged)
        self.assertError(resp, 403, 'Forbidden')
        resp = self._call(self.alice_token, 'GET', '/v1/vhsm_groups',
                          headers=forged)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertEqual([self.group_a['id']],
                         [g['id'] for g in resp.json()['vhsm_groups']])
        # Without a token, forged headers are no identity at all.
        resp = self._call(None, 'GET', '/v1/vhsm_groups', headers=forged)
        self.assertError(resp, 401, 'Unauthorized', NEEDS_AUTH)

    # -- isolation of projects ----------------------------------------

    def check_members_see_their_project_only(self):
        alice, bob = self.alice_token, self.bob_token
        self.assertEqual({self.group_a['id']},
                         self._ids(alice, 'vhsm_groups'))
        self.assertEqual({self.group_b['id']}, self._ids(bob, 'vhsm_groups'))
        self.assertEqual({self.service_a['id']}, self._ids(alice, 'services'))
        self.assertEqual(set(), self._ids(bob, 'services'))
        for token, group in ((alice, self.group_a), (bob, self.group_b)):
            vhsms = self._ok(token, 'GET', '/v1/vhsms')['vhsms']
            self.assertEqual([group['id']], [v['group_id'] for v in vhsms])
        instances = self._ok(alice, 'GET', '/v1/instances')['instances']
        self.assertEqual([self.service_a['id']],
                         [i['service_id'] for i in instances])
        self.assertEqual(1, len(self._ids(alice, 'associations')))
        self.assertEqual(set(), self._ids(bob, 'instances'))
        self.assertEqual(set(), self._ids(bob, 'associations'))
        for token, project in ((alice, self.project_a),
                               (bob, self.project_b)):
            tasks = self._ok(token, 'GET', '/v1/tasks')['tasks']
            self.assertTrue(tasks)
            self.assertEqual({project}, {t['project_id'] for t in tasks})

    def check_other_projects_rows_are_not_found(self):
        gid, sid = self.group_a['id'], self.service_a['id']
        vhsm = next(iter(self._ids(self.alice_token, 'vhsms')))
        instance = next(iter(self._ids(self.alice_token, 'instances')))
        for method, path, body in (
                ('GET', '/v1/vhsm_groups/' + gid, None),
                ('PATCH', '/v1/vhsm_groups/' + gid, {'size': 2}),
                ('DELETE', '/v1/vhsm_groups/' + gid, None),
                ('GET', '/v1/services/' + sid, None),
                ('PATCH', '/v1/services/' + sid, {'instances': 2}),
                ('DELETE', '/v1/services/' + sid, None),
                ('GET', '/v1/services/%s/credentials' % sid, None),
                ('POST', '/v1/services/%s/credentials' % sid, None),
                ('GET', '/v1/vhsms/' + vhsm, None),
                ('GET', '/v1/instances/' + instance, None),
                ('GET', '/v1/tasks/' + self.task_a['id'], None)):
            resp = self._call(self.bob_token, method, path, body)
            self.assertError(resp, 404, 'ResourceNotFound')
        # Nor may bob put a service in front of project A's group.
        resp = self._call(self.bob_token, 'POST', '/v1/services', {
            'vhsm_group_id': gid, 'instances': 1})
        self.assertError(resp, 400, 'InvalidInput', 'names no vHSM group')
        # Nothing changed in project A.
        group = self._ok(self.alice_token, 'GET', '/v1/vhsm_groups/' + gid)
        self.assertEqual((1, 'ACTIVE'), (group['size'], group['state']))
