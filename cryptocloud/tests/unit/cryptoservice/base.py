"""Shared set-up: an app over the fake vHSM client and a real credential."""

import io
import json
import os

import fixtures
import testtools

from cryptocloud.cryptoservice import app as app_mod
from cryptocloud.cryptoservice import auth
from cryptocloud.cryptoservice import metrics as metrics_mod
from cryptocloud.tests.unit.cryptoservice import fakes

PROJECT = 'project-a'
MAX_BODY = 64 * 1024
BATCH_MAX = 16


class Response:
    """What the app answered: status, headers and the decoded body."""

    def __init__(self, status_line, headers, body):
        self.status = int(status_line.split(' ', 1)[0])
        self.status_line = status_line
        self.headers = dict(headers)
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return '<Response %s %r>' % (self.status_line, self.body[:300])


class AppTestCase(testtools.TestCase):
    """Builds the app; ``request`` calls it in-process through WSGI."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.cred_path = os.path.join(self.tmp, 'credentials.json')
        self.token = auth.create_credential(self.cred_path, PROJECT)
        self.client = fakes.FakeVHSMClient()
        self.authenticator = auth.CredentialAuthenticator(
            self.cred_path, check_interval=0)
        self.metrics = metrics_mod.Metrics()
        self.app = app_mod.CryptoServiceApp(
            self.client, self.authenticator, metrics=self.metrics,
            max_body_size=MAX_BODY, batch_max_items=BATCH_MAX)

    def environ(self, method, path, body=None, *, token=True,
                content_type='application/json', query='', headers=None):
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode('utf-8')
        environ = {
            'REQUEST_METHOD': method, 'PATH_INFO': path,
            'QUERY_STRING': query, 'SERVER_NAME': 'test',
            'SERVER_PORT': '80', 'wsgi.url_scheme': 'http',
            'wsgi.input': io.BytesIO(body or b''),
        }
        if body is not None:
            environ['CONTENT_LENGTH'] = str(len(body))
            if content_type:
                environ['CONTENT_TYPE'] = content_type
        if token is True:
            environ['HTTP_AUTHORIZATION'] = 'Bearer ' + self.token
        elif token:
            environ['HTTP_AUTHORIZATION'] = 'Bearer ' + token
        environ.update(headers or {})
        return environ

    def call(self, environ):
        captured = {}

        def start_response(status, headers, exc_info=None):
            captured['status'] = status
            captured['headers'] = headers

        body = b''.join(self.app(environ, start_response))
        resp = Response(captured['status'], captured['headers'], body)
        self.assertEqual(str(len(body)), resp.headers['Content-Length'])
        return resp

    def request(self, method, path, body=None, **kwargs):
        return self.call(self.environ(method, path, body, **kwargs))

    def create_key(self, algorithm='SM4', **extra):
        resp = self.request('POST', '/v1/keys',
                            dict(extra, algorithm=algorithm))
        self.assertEqual(201, resp.status, resp)
        return resp.json['key_id']

    def assertError(self, resp, code, *, contains=None, type_=None):
        self.assertEqual(code, resp.status, resp)
        self.assertEqual('application/json', resp.headers['Content-Type'])
        error = resp.json['error']
        self.assertEqual({'code', 'type', 'message'}, set(error))
        self.assertEqual(code, error['code'])
        self.assertTrue(error['message'])
        if contains is not None:
            self.assertIn(contains, error['message'])
        if type_ is not None:
            self.assertEqual(type_, error['type'])
        return error
