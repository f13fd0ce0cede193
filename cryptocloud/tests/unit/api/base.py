"""Shared set-up: the admin API over a real SQLite control database.

``FakeConductorAPI`` is a test double of ``ConductorAPI``: it records
each cast, with the task row as it was at that moment, and can be told
to fail as a broken bus would.
"""

import base64
import os

import bcrypt
import fixtures
import testtools
import webtest
from oslo_config import fixture as config_fixture

from cryptocloud import conf as cc_conf
from cryptocloud.api import app as app_mod
from cryptocloud.api import policy
from cryptocloud.db import api as db_api
from cryptocloud.db import migration

PASSWORD = 'correct horse'
# user -> (project, roles) in the htpasswd file.
USERS = {
    'admin': ('ops', 'admin'),
    'alice': ('project-a', ''),
    'alan': ('project-a', 'member,reader'),
    'bob': ('project-b', ''),
    'rita': ('project-a', 'reader'),
    'sam': ('project-a', 'service'),
}


class BusDown(Exception):
    """What a cast raises when the broker cannot be reached."""


class FakeConductorAPI:
    """Records casts of do_task (a test double of ConductorAPI)."""

    def __init__(self, conn):
        self.conn = conn
        self.casts = []
        self.fail = False

    def do_task(self, ctxt, task_id: str) -> None:
        """Record the cast and the task row as the cast saw it."""
        self.casts.append((ctxt, task_id, self.conn.get('tasks', task_id)))
        if self.fail:
            raise BusDown('connection refused')


class APITestCase(testtools.TestCase):
    """An app per test, on a fresh database, with http_basic auth."""

    auth_strategy = 'http_basic'

    def setUp(self):
        super().setUp()
        self.logger = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.conf = self.useFixture(config_fixture.Config(cc_conf.CONF)).conf
        self.conf([], project='cryptocloud', default_config_files=[])
        self.htpasswd = os.path.join(self.tmp, 'htpasswd')
        pw_hash = bcrypt.hashpw(PASSWORD.encode(),
                                bcrypt.gensalt(rounds=4)).decode()
        with open(self.htpasswd, 'w') as f:
            f.write('# users of the tests\n')
            for user, (project, roles) in USERS.items():
                line = '%s:%s:%s' % (user, pw_hash, project)
                f.write(line + (':' + roles if roles else '') + '\n')
        self.conf.set_override('http_basic_auth_user_file', self.htpasswd,
                               'api')
        self.conf.set_override('auth_strategy', self.auth_strategy, 'api')
        self.conf.set_override('max_body_size', 4096, 'api')
        self.conf.set_override('max_limit', 50, 'api')
        policy.reset()
        self.addCleanup(policy.reset)
        self.url = 'sqlite:///%s' % os.path.join(self.tmp, 'control.sqlite')
        migration.upgrade(self.url, schema='control')
        self.conn = db_api.Connection(self.url)
        self.addCleanup(self.conn.close)
        self.conductor = FakeConductorAPI(self.conn)
        self.app = webtest.TestApp(self.make_app())

    def make_app(self):
        return app_mod.setup_app(self.conf, self.conn, self.conductor)

    @staticmethod
    def auth(user: str, password: str = PASSWORD) -> dict:
        token = base64.b64encode(('%s:%s' % (user, password)).encode())
        return {'Authorization': 'Basic ' + token.decode()}

    def call(self, method: str, path: str, body=None, *, user='admin',
             status=None, headers=None, **kw):
        """Call the app as ``user``; JSON ``body``; returns the response."""
        hdrs = dict(self.auth(user) if user else {})
        hdrs.update(headers or {})
        kwargs = {'headers': hdrs, 'expect_errors': True}
        if body is not None:
            if isinstance(body, (bytes, str)):
                kwargs['params'] = body
                hdrs.setdefault('Content-Type', 'application/json')
            else:
                kwargs['params'] = body
        fn = getattr(self.app, method.lower())
        if body is not None and not isinstance(body, (bytes, str)):
            fn = getattr(self.app, method.lower() + '_json')
        resp = fn(path, **kwargs, **kw)
        if status is not None:
            self.assertEqual(status, resp.status_int, resp.body[:500])
        return resp

    def assertError(self, resp, status: int, error_type: str | None = None,
                    text: str | None = None):
        self.assertEqual(status, resp.status_int, resp.body[:500])
        self.assertEqual('application/json', resp.content_type)
        err = resp.json['error']
        self.assertEqual({'code', 'type', 'message'}, set(err))
        self.assertEqual(status, err['code'])
        if error_type:
            self.assertEqual(error_type, err['type'])
        if text:
            self.assertIn(text, err['message'])
        return err

    # -- fixtures of rows -------------------------------------------------

    def create_group(self, user='alice', size=2, name='g1') -> dict:
        return self.call('POST', '/v1/vhsm_groups',
                         {'name': name, 'size': size}, user=user,
                         status=202).json

    def activate(self, kind: str, ident: str) -> dict:
        from cryptocloud.common import states
        return self.conn.transition(kind, ident, states.RESOURCE_MACHINE,
                                    'done')

    def create_service(self, group_id: str, user='alice', **extra) -> dict:
        body = dict({'name': 's1', 'vhsm_group_id': group_id,
                     'instances': 2}, **extra)
        return self.call('POST', '/v1/services', body, user=user,
                         status=202).json

    def add_node(self, hostname='node-1', roles=('device', 'service')):
        return self.conn.register_node(hostname, '127.0.0.1', list(roles),
                                       4, 4)
