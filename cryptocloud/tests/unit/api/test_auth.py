"""Authentication (http_basic, keystone) and policy."""

import base64
import os
import uuid
from unittest import mock

import webtest

from cryptocloud.api import app as app_mod
from cryptocloud.api import auth_basic
from cryptocloud.api import policy
from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.tests.unit.api import base


class TestHTTPBasic(base.APITestCase):

    def test_no_credentials(self):
        resp = self.call('GET', '/v1/tasks', user=None)
        self.assertError(resp, 401, 'Unauthorized')
        self.assertEqual('Basic realm="cryptocloud"',
                         resp.headers['WWW-Authenticate'])

    def test_wrong_password_is_not_logged(self):
        resp = self.call('GET', '/v1/tasks', user='alice',
                         headers=self.auth('alice', 'hunter2-guess'))
        self.assertError(resp, 401, 'Unauthorized')
        self.assertIn('WWW-Authenticate', resp.headers)
        self.assertNotIn('hunter2-guess', self.logger.output)

    def test_unknown_user(self):
        resp = self.call('GET', '/v1/tasks', user=None,
                         headers=self.auth('mallory'))
        self.assertError(resp, 401)

    def test_malformed_header(self):
        for value in ('Basic', 'Basic !!!', 'Bearer abc',
                      'Basic ' + base64.b64encode(b'nocolon').decode(),
                      'Basic ' + base64.b64encode(b'\xff:x').decode()):
            resp = self.call('GET', '/v1/tasks', user=None,
                             headers={'Authorization': value})
            self.assertError(resp, 401)

    def test_forged_identity_headers_are_dropped(self):
        resp = self.call('GET', '/v1/nodes', user='alice', headers={
            'X-Roles': 'admin', 'X-Project-Id': 'ops',
            'X-Identity-Status': 'Confirmed'})
        self.assertError(resp, 403)
        resp = self.call('GET', '/v1/nodes', user=None, headers={
            'X-Roles': 'admin', 'X-Project-Id': 'ops',
            'X-Identity-Status': 'Confirmed'})
        self.assertError(resp, 401)

    def test_default_project_and_role(self):
        with open(self.htpasswd, 'a') as f:
            line = open(self.htpasswd).read().splitlines()[1]
            f.write('carol:%s\n' % line.split(':')[1])
        app = webtest.TestApp(self.make_app())
        resp = app.post_json('/v1/vhsm_groups', {'size': 1},
                             headers=self.auth('carol'))
        self.assertEqual('carol', resp.json['vhsm_group']['project_id'])

    def test_file_changes_are_picked_up(self):
        self.call('GET', '/v1/tasks', user='bob', status=200)
        lines = [ln for ln in open(self.htpasswd).read().splitlines()
                 if not ln.startswith('bob:')]
        with open(self.htpasswd + '.new', 'w') as f:
            f.write('\n'.join(lines) + '\n')
        os.replace(self.htpasswd + '.new', self.htpasswd)
        with mock.patch.object(auth_basic, '_STAT_INTERVAL', 0):
            basic = auth_basic.BasicAuth(None, self.htpasswd)
            self.assertRaises(exception.Unauthorized, basic.authenticate,
                              {'HTTP_AUTHORIZATION':
                               self.auth('bob')['Authorization']})

    def test_refuses_plain_text_passwords(self):
        with open(self.htpasswd, 'a') as f:
            f.write('eve:plaintext\n')
        e = self.assertRaises(exception.ConfigurationError, self.make_app)
        self.assertIn('bcrypt', e.message)
        self.assertNotIn('plaintext', e.message)

    def test_missing_file(self):
        self.conf.set_override('http_basic_auth_user_file',
                               self.htpasswd + '.nope', 'api')
        self.assertRaises(exception.ConfigurationError, self.make_app)

    def test_cache_skips_bcrypt_for_a_known_password(self):
        self.call('GET', '/v1/tasks', user='alice', status=200)
        with mock.patch.object(auth_basic.bcrypt, 'checkpw') as check:
            self.call('GET', '/v1/tasks', user='alice', status=200)
            self.call('GET', '/v1/tasks', user='alice',
                      headers=self.auth('alice', 'other'))
        self.assertEqual(1, check.call_count)


class _FakeAuthToken:
    """Test double of keystonemiddleware's AuthProtocol: token -> headers."""

    TOKENS = {
        'admin-token': ('u-admin', 'ops', 'admin,member'),
        'member-token': ('u-alice', 'project-a', 'member'),
        # Valid, but for the whole deployment: no project.
        'system-token': ('u-admin', None, 'admin,member,reader'),
    }

    def __init__(self, app, conf):
        self.app = app
        self.conf = conf

    def __call__(self, environ, start_response):
        token = environ.get('HTTP_X_AUTH_TOKEN')
        if token == 'delayed-bad-token':
            # delay_auth_decision: the app hears of the bad token.
            environ['HTTP_X_IDENTITY_STATUS'] = 'Invalid'
            return self.app(environ, start_response)
        found = self.TOKENS.get(token)
        if found is None:
            start_response('401 Unauthorized', [
                ('Content-Type', 'application/json'),
                ('WWW-Authenticate', "Keystone uri='http://ks'")])
            return [b'{"error": {"code": 401, "title": "Unauthorized", '
                    b'"message": "The request you have made requires '
                    b'authentication."}}']
        user, project, roles = found
        environ.update({'HTTP_X_IDENTITY_STATUS': 'Confirmed',
                        'HTTP_X_USER_ID': user,
                        'HTTP_X_ROLES': roles})
        if project:
            environ['HTTP_X_PROJECT_ID'] = project
        return self.app(environ, start_response)


class TestKeystone(base.APITestCase):

    auth_strategy = 'keystone'

    def make_app(self):
        from keystonemiddleware import auth_token
        with mock.patch.object(auth_token, 'AuthProtocol', _FakeAuthToken):
            return super().make_app()

    def test_headers_become_the_context(self):
        resp = self.call('POST', '/v1/vhsm_groups', {'size': 1}, user=None,
                         headers={'X-Auth-Token': 'member-token'},
                         status=202)
        task = resp.json['task']
        self.assertEqual(('u-alice', 'project-a'),
                         (task['user_id'], task['project_id']))
        self.call('GET', '/v1/nodes', user=None,
                  headers={'X-Auth-Token': 'admin-token'}, status=200)
        resp = self.call('GET', '/v1/nodes', user=None,
                         headers={'X-Auth-Token': 'member-token'})
        self.assertError(resp, 403)

    def test_keystone_errors_are_rewritten(self):
        resp = self.call('GET', '/v1/tasks', user=None,
                         headers={'X-Auth-Token': 'bad'})
        err = self.assertError(resp, 401, 'Unauthorized')
        self.assertIn('requires authentication', err['message'])
        self.assertIn('WWW-Authenticate', resp.headers)

    def test_versions_need_no_token(self):
        self.call('GET', '/', user=None, status=200)

    def test_a_token_without_a_project_is_forbidden(self):
        for method, path, body in (('GET', '/v1/nodes', None),
                                   ('GET', '/v1/tasks', None),
                                   ('POST', '/v1/vhsm_groups', {'size': 1})):
            resp = self.call(method, path, body, user=None,
                             headers={'X-Auth-Token': 'system-token'})
            err = self.assertError(resp, 403, 'Forbidden')
            self.assertIn('not scoped to a project', err['message'])
        self.assertEqual([], self.conn.list('tasks'))

    def test_no_basic_challenge_under_keystone(self):
        # keystonemiddleware adds its own challenge to a 401; a Basic one
        # would send clients to a scheme this API does not accept.
        resp = self.call('GET', '/v1/tasks', user=None,
                         headers={'X-Auth-Token': 'delayed-bad-token'})
        self.assertError(resp, 401, 'Unauthorized')
        self.assertNotIn('WWW-Authenticate', resp.headers)

    def test_real_middleware_is_wired(self):
        from keystonemiddleware import auth_token
        stack = app_mod.setup_app(self.conf, self.conn, self.conductor)
        inner = stack.app.app.app.authenticated
        self.assertIsInstance(inner, auth_token.AuthProtocol)


class TestPolicy(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.a_group = self.create_group('alice')['vhsm_group']
        self.b_group = self.create_group('bob')['vhsm_group']
        self.a_service = self.create_service(self.a_group['id'])

    def test_members_see_their_project_only(self):
        listed = self.call('GET', '/v1/vhsm_groups', user='bob',
                           status=200).json['vhsm_groups']
        self.assertEqual([self.b_group['id']], [g['id'] for g in listed])
        # A second member of project-a sees project-a's rows.
        self.call('GET', '/v1/vhsm_groups/' + self.a_group['id'],
                  user='alan', status=200)
        self.assertEqual(2, len(self.call('GET', '/v1/vhsm_groups',
                                          status=200).json['vhsm_groups']))

    def test_other_projects_rows_are_not_found(self):
        gid = self.a_group['id']
        sid = self.a_service['service']['id']
        cid = self.a_service['credential']['id']
        task = self.a_service['task']['id']
        for method, path, body in (
                ('GET', '/v1/vhsm_groups/' + gid, None),
                ('PATCH', '/v1/vhsm_groups/' + gid, {'size': 3}),
                ('DELETE', '/v1/vhsm_groups/' + gid, None),
                ('GET', '/v1/services/' + sid, None),
                ('PATCH', '/v1/services/' + sid, {'instances': 3}),
                ('DELETE', '/v1/services/' + sid, None),
                ('GET', '/v1/services/%s/credentials' % sid, None),
                ('POST', '/v1/services/%s/credentials' % sid, None),
                ('DELETE', '/v1/services/%s/credentials/%s' % (sid, cid),
                 None),
                ('GET', '/v1/tasks/' + task, None),
                ('GET', '/v1/instances?service_id=' + sid, None),
                ('GET', '/v1/vhsms?group_id=' + gid, None),
                ('GET', '/v1/associations?service_id=' + sid, None),
                ('GET', '/v1/associations?group_id=' + gid, None)):
            resp = self.call(method, path, body, user='bob')
            self.assertError(resp, 404)
        self.assertEqual(1, len(self.conn.list(
            'service_credentials', filters={'service_id': sid})))

    def test_readers_read_and_members_write(self):
        gid = self.a_group['id']
        sid = self.a_service['service']['id']
        listed = self.call('GET', '/v1/vhsm_groups', user='rita',
                           status=200).json['vhsm_groups']
        self.assertEqual([gid], [g['id'] for g in listed])
        for path in ('/v1/services/' + sid,
                     '/v1/services/%s/credentials' % sid,
                     '/v1/tasks', '/v1/instances?service_id=' + sid):
            self.call('GET', path, user='rita', status=200)
        for method, path, body, rule in (
                ('POST', '/v1/vhsm_groups', {'size': 1},
                 'cryptocloud:vhsm_group:create'),
                ('DELETE', '/v1/vhsm_groups/' + gid, None,
                 'cryptocloud:vhsm_group:delete'),
                ('PATCH', '/v1/services/' + sid, {'instances': 3},
                 'cryptocloud:service:update'),
                ('DELETE', '/v1/services/' + sid, None,
                 'cryptocloud:service:delete'),
                ('POST', '/v1/services/%s/credentials' % sid, None,
                 'cryptocloud:service:credential:create'),
                ('PUT', '/v1/services/%s/scaling_policy' % sid, None,
                 'cryptocloud:service:scaling_policy:set')):
            resp = self.call(method, path, body, user='rita')
            err = self.assertError(resp, 403, 'Forbidden')
            self.assertIn(rule, err['message'])
        self.assertEqual(states.CREATING,
                         self.conn.get('services', sid)['state'])

    def test_a_role_that_is_neither_reader_nor_member_allows_nothing(self):
        for path in ('/v1/vhsm_groups', '/v1/tasks',
                     '/v1/vhsm_groups/' + self.a_group['id']):
            self.assertError(self.call('GET', path, user='sam'), 403)

    def test_bob_cannot_use_alices_group(self):
        resp = self.call('POST', '/v1/services', {
            'vhsm_group_id': self.a_group['id'], 'instances': 1},
            user='bob')
        self.assertError(resp, 400)

    def test_admin_sees_and_acts_on_everything(self):
        self.call('GET', '/v1/services/' + self.a_service['service']['id'],
                  status=200)
        self.activate('vhsm_groups', self.b_group['id'])
        out = self.call('PATCH', '/v1/vhsm_groups/' + self.b_group['id'],
                        {'size': 4}, status=202).json
        self.assertEqual('project-b', self.conn.get(
            'vhsm_groups', self.b_group['id'])['project_id'])
        self.assertEqual('ops', out['task']['project_id'])

    def test_nodes_are_admin_only(self):
        node = self.add_node()
        for method, path, body in (
                ('GET', '/v1/nodes', None),
                ('GET', '/v1/nodes/%d' % node['id'], None),
                ('PATCH', '/v1/nodes/%d' % node['id'], {'enabled': False})):
            self.assertError(self.call(method, path, body, user='alice'),
                             403)
        self.assertTrue(self.conn.get('nodes', node['id'])['enabled'])

    def test_policy_file_overrides(self):
        path = os.path.join(self.tmp, 'policy.yaml')
        with open(path, 'w') as f:
            f.write('"cryptocloud:vhsm_group:create": "rule:admin_api"\n')
        self.conf.set_override('policy_file', path, 'oslo_policy')
        policy.reset()
        resp = self.call('POST', '/v1/vhsm_groups', {'size': 1},
                         user='alice')
        self.assertError(resp, 403)
        self.call('POST', '/v1/vhsm_groups', {'size': 1}, status=202)

    def test_unknown_ids_look_the_same(self):
        missing = str(uuid.uuid4())
        a = self.call('GET', '/v1/vhsm_groups/' + missing, user='bob')
        b = self.call('GET', '/v1/vhsm_groups/' + self.a_group['id'],
                      user='bob')
        self.assertEqual(a.json['error']['type'], b.json['error']['type'])
