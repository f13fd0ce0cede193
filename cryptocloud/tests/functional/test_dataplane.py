"""The data plane end to end: real vHSM and service processes, real DBs.

Each scenario runs on the keystore backends SQLite, MariaDB and
PostgreSQL (the latter two in a database made for the test and dropped
after it).
"""

import os
import subprocess
import tempfile
import time

import testtools

from cryptocloud.tests import db as test_db
from cryptocloud.tests.functional import dataplane
from cryptocloud.tests.functional.dataplane import b64
from cryptocloud.tests.functional.dataplane import unb64

MESSAGE = b'transfer 100 CNY from A to B'
KEY_CACHE_TTL = 0.5


def settle():
    """Wait until every vHSM of the group sees a key change.

    The member that makes a change applies it at once; the others trust
    their cached record for key_cache_ttl seconds (docs/dataplane.md).
    """
    time.sleep(KEY_CACHE_TTL + 0.2)


def openssl_sm2_verify(public_pem: str, message: bytes, signature: bytes,
                       user_id: str = '1234567812345678') -> bool:
    """Verify an SM2 signature with the openssl command line."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, data in (('pub.pem', public_pem.encode()),
                           ('msg', message), ('sig', signature)):
            paths[name] = os.path.join(tmp, name)
            with open(paths[name], 'wb') as f:
                f.write(data)
        result = subprocess.run(
            ['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey',
             paths['pub.pem'], '-rawin', '-digest', 'sm3', '-in',
             paths['msg'], '-sigfile', paths['sig'], '-pkeyopt',
             'distid:' + user_id], capture_output=True)
        return result.returncode == 0


class _DataPlaneScenarios:
    backend: str

    def setUp(self):
        super().setUp()
        database = self.useFixture(test_db.Database(self.backend))
        self.dp = self.useFixture(dataplane.DataPlane(
            database.url, key_cache_ttl=KEY_CACHE_TTL))

    def _sign(self, key_id: str, project: str = 'project-a') -> bytes:
        body = self.dp.ok('POST', '/v1/keys/%s/sign' % key_id, project,
                          {'message': b64(MESSAGE)})
        return unb64(body['signature'])

    def test_group_serves_keys_through_member_loss_and_growth(self):
        dp = self.dp
        key = dp.ok('POST', '/v1/keys', body={'algorithm': 'SM2'})
        key_id = key['key_id']
        public = dp.ok('GET', '/v1/keys/%s/public-key' % key_id)
        self.assertTrue(openssl_sm2_verify(public['public_key_pem'], MESSAGE,
                                           self._sign(key_id)))
        sm4 = dp.ok('POST', '/v1/keys', body={'algorithm': 'SM4_GCM'})
        sealed = dp.ok('POST', '/v1/keys/%s/encrypt' % sm4['key_id'],
                       body={'plaintext': b64(b'ledger row 7'),
                             'aad': b64(b'table=ledger')})

        # kill -9 one member: the service carries on with the other.
        dp.vhsms[0][0].kill()
        for _ in range(5):
            self.assertTrue(openssl_sm2_verify(
                public['public_key_pem'], MESSAGE, self._sign(key_id)))

        # A member added later serves the existing keys at once.
        third = dp.add_vhsm()
        dp.set_service_endpoints(dp.endpoints([third]))
        self.assertTrue(openssl_sm2_verify(public['public_key_pem'],
                                           MESSAGE, self._sign(key_id)))
        opened = dp.ok('POST', '/v1/keys/%s/decrypt' % sm4['key_id'],
                       body={'ciphertext': sealed['ciphertext'],
                             'aad': b64(b'table=ledger')})
        self.assertEqual(b'ledger row 7', unb64(opened['plaintext']))

        # The killed member, restarted, serves the same keys again.
        dp.restart_vhsm(0)
        dp.set_service_endpoints(dp.endpoints([0]))
        self.assertTrue(openssl_sm2_verify(public['public_key_pem'],
                                           MESSAGE, self._sign(key_id)))

    def test_projects_cannot_see_or_use_each_others_keys(self):
        dp = self.dp
        key_a = dp.ok('POST', '/v1/keys', 'project-a',
                      body={'algorithm': 'SM4_GCM', 'name': 'shared-name'})
        # The same name in another project is a different key.
        key_b = dp.ok('POST', '/v1/keys', 'project-b',
                      body={'algorithm': 'SM4_GCM', 'name': 'shared-name'})
        self.assertNotEqual(key_a['key_id'], key_b['key_id'])
        sealed = dp.ok('POST', '/v1/keys/%s/encrypt' % key_a['key_id'],
                       'project-a', {'plaintext': b64(b'secret of A')})

        base = '/v1/keys/%s' % key_a['key_id']
        attempts = [
            ('GET', base, None),
            ('POST', base + '/encrypt', {'plaintext': b64(b'x')}),
            ('POST', base + '/decrypt', {'ciphertext': sealed['ciphertext']}),
            ('POST', base + '/rotate', None),
            ('POST', base + '/disable', None),
            ('POST', base + '/schedule-deletion', {'pending_days': 7}),
            ('PATCH', base, {'description': 'mine now'}),
            ('GET', base + '/export', None),
        ]
        for method, path, body in attempts:
            resp = dp.call(method, path, 'project-b', body)
            self.assertEqual(404, resp.status_code,
                             '%s %s: %s' % (method, path, resp.text))
        listed = dp.ok('GET', '/v1/keys', 'project-b')['keys']
        self.assertEqual([key_b['key_id']], [k['key_id'] for k in listed])
        batch = dp.ok('POST', '/v1/batch', 'project-b', {'items': [
            {'op': 'decrypt', 'key_id': key_a['key_id'],
             'ciphertext': sealed['ciphertext']}]})
        self.assertEqual(404, batch['results'][0]['status'])
        # A's key is untouched and still works for A.
        opened = dp.ok('POST', base + '/decrypt', 'project-a',
                       {'ciphertext': sealed['ciphertext']})
        self.assertEqual(b'secret of A', unb64(opened['plaintext']))
        self.assertEqual('ENABLED', dp.ok('GET', base)['state'])

    def test_rotation_versions_and_deletion_schedule(self):
        dp = self.dp
        key = dp.ok('POST', '/v1/keys', body={'algorithm': 'SM4_GCM'})
        base = '/v1/keys/%s' % key['key_id']
        old = dp.ok('POST', base + '/encrypt', body={'plaintext': b64(b'v1')})
        self.assertTrue(old['ciphertext'].startswith('cc:v1:'))
        self.assertEqual(2, dp.ok('POST', base + '/rotate')['latest_version'])
        # Right after a rotation, members may still encrypt under v1 for
        # key_cache_ttl, but every member decrypts whatever any made,
        # including v2 ciphertexts it has not heard of yet.
        for _ in range(4):
            made = dp.ok('POST', base + '/encrypt',
                         body={'plaintext': b64(b'fresh')})
            for _ in range(3):
                self.assertEqual(b'fresh', unb64(dp.ok(
                    'POST', base + '/decrypt',
                    body={'ciphertext': made['ciphertext']})['plaintext']))
        settle()
        new = dp.ok('POST', base + '/encrypt', body={'plaintext': b64(b'v2')})
        self.assertTrue(new['ciphertext'].startswith('cc:v2:'))
        self.assertEqual(b'v1', unb64(dp.ok(
            'POST', base + '/decrypt',
            body={'ciphertext': old['ciphertext']})['plaintext']))
        rewrapped = dp.ok('POST', base + '/rewrap',
                          body={'ciphertext': old['ciphertext']})
        self.assertTrue(rewrapped['ciphertext'].startswith('cc:v2:'))
        dp.ok('PATCH', base, body={'min_decryption_version': 2})
        settle()
        resp = dp.call('POST', base + '/decrypt', body={
            'ciphertext': old['ciphertext']})
        self.assertEqual(400, resp.status_code, resp.text)
        self.assertIn('minimum decryption version', resp.json()['error'][
            'message'])

        scheduled = dp.ok('POST', base + '/schedule-deletion',
                          body={'pending_days': 7})
        self.assertEqual('PENDING_DELETION', scheduled['state'])
        self.assertIsNotNone(scheduled['deletion_date'])
        settle()
        resp = dp.call('POST', base + '/encrypt',
                       body={'plaintext': b64(b'x')})
        self.assertEqual(409, resp.status_code, resp.text)
        self.assertEqual('DISABLED',
                         dp.ok('POST', base + '/cancel-deletion')['state'])
        self.assertEqual('ENABLED', dp.ok('POST', base + '/enable')['state'])
        self.assertEqual(b'v2', unb64(dp.ok(
            'POST', base + '/decrypt',
            body={'ciphertext': new['ciphertext']})['plaintext']))


class TestDataPlaneSQLite(_DataPlaneScenarios, testtools.TestCase):
    backend = 'sqlite'


class TestDataPlaneMySQL(_DataPlaneScenarios, testtools.TestCase):
    backend = 'mysql'


class TestDataPlanePostgreSQL(_DataPlaneScenarios, testtools.TestCase):
    backend = 'postgresql'
