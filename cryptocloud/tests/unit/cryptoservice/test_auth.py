"""Service credentials: file format, checking, revocation and reloads."""

import json
import os
import stat

import fixtures
import testtools

from cryptocloud.common import exception
from cryptocloud.cryptoservice import auth
from cryptocloud.tests.unit.cryptoservice import base


def env(token=None, header='HTTP_AUTHORIZATION', scheme='Bearer '):
    if token is None:
        return {}
    return {header: (scheme + token) if header == 'HTTP_AUTHORIZATION'
            else token}


class TestCredentialFile(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger())
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'creds.json')

    def test_create_stores_only_the_hash(self):
        token = auth.create_credential(self.path, 'p1')
        cred_id, secret = token.split('.')
        self.assertEqual(0o600, stat.S_IMODE(os.stat(self.path).st_mode))
        with open(self.path) as f:
            text = f.read()
        self.assertNotIn(secret, text)
        data = json.loads(text)['credentials'][0]
        self.assertEqual({'id', 'project_id', 'secret_sha256',
                          'created_at'}, set(data))
        self.assertEqual((cred_id, 'p1', auth.hash_secret(secret)),
                         (data['id'], data['project_id'],
                          data['secret_sha256']))

    def test_authenticate_both_headers(self):
        token = auth.create_credential(self.path, 'p1')
        authn = auth.CredentialAuthenticator(self.path)
        for environ in (env(token), env(token, 'HTTP_X_AUTH_TOKEN'),
                        env(token, scheme='bearer ')):
            ctx = authn.authenticate(environ)
            self.assertEqual('p1', ctx.project_id)
            self.assertEqual(token.split('.')[0], ctx.credential_id)

    def test_refusals(self):
        token = auth.create_credential(self.path, 'p1')
        other = auth.create_credential(self.path, 'p2')
        authn = auth.CredentialAuthenticator(self.path)
        cred_id, secret = token.split('.')
        other_id, other_secret = other.split('.')
        for environ in (env(), env(''), env(token, scheme='Basic '),
                        env(cred_id), env(cred_id + '.'),
                        env(cred_id + '.' + other_secret),
                        env(other_id + '.' + secret), env('.' + secret),
                        env('\u00e9.\u00e9'), env(token + '\x00')):
            self.assertRaises(exception.Unauthorized, authn.authenticate,
                              environ)

    def test_revoke_and_mtime_reload(self):
        token = auth.create_credential(self.path, 'p1')
        authn = auth.CredentialAuthenticator(self.path, check_interval=0)
        authn.authenticate(env(token))
        auth.revoke_credential(self.path, token.split('.')[0])
        self.assertRaises(exception.Unauthorized, authn.authenticate,
                          env(token))
        new = auth.create_credential(self.path, 'p3')
        self.assertEqual('p3', authn.authenticate(env(new)).project_id)
        self.assertRaises(exception.NotFound, auth.revoke_credential,
                          self.path, 'nope')

    def test_explicit_reload(self):
        authn = auth.CredentialAuthenticator(self.path,
                                             check_interval=3600)
        token = auth.create_credential(self.path, 'p1')
        # Not looked at again within the interval...
        self.assertRaises(exception.Unauthorized, authn.authenticate,
                          env(token))
        # ...until reload() (what SIGHUP calls).
        authn.reload()
        self.assertEqual('p1', authn.authenticate(env(token)).project_id)

    def test_broken_file_keeps_last_good_set(self):
        token = auth.create_credential(self.path, 'p1')
        authn = auth.CredentialAuthenticator(self.path, check_interval=0)
        with open(self.path, 'w') as f:
            f.write('{"credentials": [{"id": ')
        self.assertEqual('p1', authn.authenticate(env(token)).project_id)

    def test_missing_file_refuses_everything(self):
        authn = auth.CredentialAuthenticator(self.path)
        self.assertRaises(exception.Unauthorized, authn.authenticate,
                          env('a.b'))

    def test_bad_project(self):
        for project in ('', 'x' * 65, None):
            self.assertRaises(exception.InvalidInput,
                              auth.create_credential, self.path, project)

    def test_header_strategy(self):
        authn = auth.HeaderAuthenticator()
        ctx = authn.authenticate({'HTTP_X_PROJECT_ID': 'p9',
                                  'HTTP_X_USER_ID': 'u'})
        self.assertEqual(('p9', 'u'), (ctx.project_id, ctx.credential_id))
        self.assertRaises(exception.Unauthorized, authn.authenticate, {})
        self.assertRaises(exception.Unauthorized, authn.authenticate,
                          {'HTTP_X_PROJECT_ID': 'p9',
                           'HTTP_X_IDENTITY_STATUS': 'Invalid'})


class TestAppAuth(base.AppTestCase):

    def test_revoked_credential_is_refused_by_the_app(self):
        body = {'length': 2}
        self.assertEqual(200, self.request('POST', '/v1/random',
                                           body).status)
        auth.revoke_credential(self.cred_path, self.token.split('.')[0])
        resp = self.request('POST', '/v1/random', body)
        self.assertError(resp, 401, type_='Unauthorized')

    def test_new_credential_in_file_is_accepted(self):
        token = auth.create_credential(self.cred_path, 'project-b')
        self.request('POST', '/v1/random', {'length': 2}, token=token)
        self.assertEqual('project-b', self.client.calls[-1][1])

    def test_project_comes_from_the_credential(self):
        self.request('POST', '/v1/random', {'length': 2},
                     headers={'HTTP_X_PROJECT_ID': 'evil'})
        self.assertEqual(base.PROJECT, self.client.calls[-1][1])
