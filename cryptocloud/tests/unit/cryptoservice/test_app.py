"""Happy paths of every route, against the fake vHSM client."""

import base64
import hashlib
import uuid

from cryptocloud.common import exception
from cryptocloud.tests.unit.cryptoservice import base


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestPublicRoutes(base.AppTestCase):

    def test_versions(self):
        resp = self.request('GET', '/', token=None)
        self.assertEqual(200, resp.status)
        self.assertEqual('v1', resp.json['versions'][0]['id'])
        resp = self.request('GET', '/v1', token=None)
        self.assertEqual('CURRENT', resp.json['version']['status'])

    def test_healthz_ok_and_cached(self):
        resp = self.request('GET', '/healthz', token=None)
        self.assertEqual(200, resp.status)
        self.assertEqual('ok', resp.json['status'])
        self.assertEqual('up', resp.json['vhsms']['127.0.0.1:1']['status'])
        self.request('GET', '/healthz', token=None)
        self.assertEqual(1, self.client.pings)

    def test_healthz_unavailable(self):
        self.client.ping_result = {
            '127.0.0.1:1': 'connection refused',
            '127.0.0.1:2': 'timed out'}
        resp = self.request('GET', '/healthz', token=None)
        self.assertEqual(503, resp.status)
        self.assertEqual({'status': 'down', 'error': 'timed out'},
                         resp.json['vhsms']['127.0.0.1:2'])

    def test_healthz_one_up_is_enough(self):
        self.client.ping_result = {'127.0.0.1:1': 'connection refused',
                                   '127.0.0.1:2': True}
        resp = self.request('GET', '/healthz', token=None)
        self.assertEqual(200, resp.status)

    def test_healthz_ping_failure_is_503(self):
        def broken():
            raise exception.VHSMUnavailable(reason='x')
        self.client.ping_all = broken
        resp = self.request('GET', '/healthz', token=None)
        self.assertEqual(503, resp.status)

    def test_metrics_needs_no_auth(self):
        resp = self.request('GET', '/metrics', token=None)
        self.assertEqual(200, resp.status)
        self.assertIn(b'cryptoservice_in_flight', resp.body)


class TestKeys(base.AppTestCase):

    def test_create(self):
        resp = self.request('POST', '/v1/keys', {
            'algorithm': 'SM2', 'name': 'signer', 'description': 'd'})
        self.assertEqual(201, resp.status, resp)
        key = resp.json
        uuid.UUID(key['key_id'])
        self.assertEqual('sign', key['purpose'])
        op, project, args = self.client.calls[-1]
        self.assertEqual(('key.create', base.PROJECT), (op, project))
        self.assertEqual(key['key_id'], args['key_id'])
        self.assertIs(False, args['exportable'])
        self.assertIsNone(args['purpose'])

    def test_create_with_purpose(self):
        # The vHSM's purposes are lower case; the schema once allowed
        # only upper case, so no purpose could ever be chosen.
        resp = self.request('POST', '/v1/keys', {
            'algorithm': 'RSA_2048', 'purpose': 'encrypt'})
        self.assertEqual(201, resp.status, resp)
        self.assertEqual('encrypt', resp.json['purpose'])
        self.assertEqual('encrypt', self.client.calls[-1][2]['purpose'])
        for purpose in ('ENCRYPT', '', 'x' * 17):
            resp = self.request('POST', '/v1/keys', {
                'algorithm': 'RSA_2048', 'purpose': purpose})
            self.assertEqual(400, resp.status, resp)
            self.assertIn('purpose', resp.json['error']['message'])

    def test_list_and_pages(self):
        ids = sorted(self.create_key() for _ in range(3))
        resp = self.request('GET', '/v1/keys', query='limit=2')
        self.assertEqual(200, resp.status, resp)
        self.assertEqual(ids[:2], [k['key_id'] for k in resp.json['keys']])
        self.assertEqual(ids[1], resp.json['next_marker'])
        resp = self.request('GET', '/v1/keys',
                            query='limit=2&marker=%s&state=ENABLED' % ids[1])
        self.assertEqual([ids[2]], [k['key_id'] for k in resp.json['keys']])
        self.assertIsNone(resp.json['next_marker'])
        resp = self.request('GET', '/v1/keys')
        self.assertEqual(100, self.client.calls[-1][2]['limit'])

    def test_get_and_update(self):
        key_id = self.create_key()
        resp = self.request('GET', '/v1/keys/' + key_id)
        self.assertEqual(key_id, resp.json['key_id'])
        resp = self.request('PATCH', '/v1/keys/' + key_id, {
            'description': 'new', 'min_decryption_version': 1,
            'exportable': True})
        self.assertEqual(200, resp.status, resp)
        self.assertEqual('new', resp.json['description'])
        self.assertIs(True, resp.json['exportable'])

    def test_actions(self):
        key_id = self.create_key()
        path = '/v1/keys/%s/' % key_id
        self.assertEqual(2, self.request('POST', path + 'rotate')
                         .json['latest_version'])
        self.assertEqual('DISABLED', self.request('POST', path + 'disable',
                                                  {}).json['state'])
        self.assertEqual('ENABLED', self.request('POST', path + 'enable')
                         .json['state'])
        resp = self.request('POST', path + 'schedule-deletion')
        self.assertEqual('PENDING_DELETION', resp.json['state'])
        self.assertEqual(30, self.client.calls[-1][2]['pending_days'])
        self.request('POST', path + 'schedule-deletion', {'pending_days': 7})
        self.assertEqual(7, self.client.calls[-1][2]['pending_days'])
        self.assertEqual('DISABLED', self.request(
            'POST', path + 'cancel-deletion').json['state'])

    def test_public_key_and_export(self):
        key_id = self.create_key('SM2', exportable=True)
        resp = self.request('GET', '/v1/keys/%s/public-key' % key_id,
                            query='version=1')
        self.assertEqual(200, resp.status, resp)
        self.assertEqual({'key_id', 'key_version', 'algorithm',
                          'public_key_pem'}, set(resp.json))
        resp = self.request('GET', '/v1/keys/%s/export' % key_id)
        self.assertEqual(b64(b'\x01' * 16), resp.json['material'])
        self.assertEqual(1, resp.json['key_version'])

    def test_export_refused_is_passed_on(self):
        key_id = self.create_key('SM2')
        resp = self.request('GET', '/v1/keys/%s/export' % key_id)
        self.assertError(resp, 403, type_='NotExportable')

    def test_other_projects_key_is_404(self):
        key_id = self.create_key()
        self.client.keys[key_id]['project_id'] = 'someone-else'
        resp = self.request('GET', '/v1/keys/' + key_id)
        self.assertError(resp, 404, type_='KeyNotFound')


class TestCrypto(base.AppTestCase):

    def test_encrypt_decrypt_rewrap(self):
        key_id = self.create_key()
        path = '/v1/keys/%s/' % key_id
        resp = self.request('POST', path + 'encrypt', {
            'plaintext': b64(b'secret'), 'aad': b64(b'ctx')})
        self.assertEqual(200, resp.status, resp)
        ciphertext = resp.json['ciphertext']
        self.assertTrue(ciphertext.startswith('cc:v1:'))
        self.assertEqual(1, resp.json['key_version'])
        self.assertEqual(b'secret', self.client.calls[-1][2]['plaintext'])
        self.request('POST', path + 'rotate')
        resp = self.request('POST', path + 'rewrap', {
            'ciphertext': ciphertext, 'aad': b64(b'ctx')})
        self.assertTrue(resp.json['ciphertext'].startswith('cc:v2:'), resp)
        self.assertEqual(1, self.client.calls[-1][2]['version'])
        resp = self.request('POST', path + 'decrypt', {
            'ciphertext': resp.json['ciphertext'], 'aad': b64(b'ctx')})
        self.assertEqual(b64(b'secret'), resp.json['plaintext'])
        self.assertEqual(2, resp.json['key_version'])
        self.assertEqual(2, self.client.calls[-1][2]['version'])

    def test_decrypt_failure_passed_on(self):
        key_id = self.create_key()
        resp = self.request('POST', '/v1/keys/%s/decrypt' % key_id,
                            {'ciphertext': 'cc:v1:' + b64(b'xx')})
        self.assertError(resp, 400, type_='DecryptionFailed')

    def test_sign_verify(self):
        key_id = self.create_key('SM2')
        path = '/v1/keys/%s/' % key_id
        resp = self.request('POST', path + 'sign', {
            'message': b64(b'msg'), 'user_id': 'alice@example.com'})
        self.assertEqual(200, resp.status, resp)
        self.assertEqual(b'alice@example.com',
                         self.client.calls[-1][2]['user_id'])
        sig = resp.json['signature']
        base64.b64decode(sig, validate=True)
        resp = self.request('POST', path + 'verify', {
            'message': b64(b'msg'), 'user_id': 'alice@example.com',
            'signature': sig})
        self.assertIs(True, resp.json['valid'])
        resp = self.request('POST', path + 'verify', {
            'message': b64(b'msg'), 'signature': sig, 'key_version': 1})
        self.assertIs(False, resp.json['valid'])
        resp = self.request('POST', path + 'sign', {
            'digest': b64(b'\x00' * 32), 'signature_format': 'raw'})
        self.assertEqual(200, resp.status, resp)
        self.assertNotIn('message', self.client.calls[-1][2])
        self.assertEqual('raw', self.client.calls[-1][2]['signature_format'])

    def test_hmac(self):
        key_id = self.create_key('HMAC_SM3')
        path = '/v1/keys/%s/' % key_id
        mac = self.request('POST', path + 'hmac',
                           {'data': b64(b'd')}).json['mac']
        resp = self.request('POST', path + 'hmac-verify',
                            {'data': b64(b'd'), 'mac': mac})
        self.assertEqual({'key_id': key_id, 'key_version': 1,
                          'valid': True}, resp.json)
        self.assertEqual('hmac_verify', self.client.calls[-1][0])

    def test_datakey(self):
        key_id = self.create_key()
        path = '/v1/keys/%s/datakey' % key_id
        resp = self.request('POST', path)
        self.assertEqual(200, resp.status, resp)
        self.assertEqual(32, len(base64.b64decode(resp.json['plaintext'])))
        self.assertTrue(resp.json['ciphertext'].startswith('cc:v1:'))
        resp = self.request('POST', path, {'spec': 'SM4_128',
                                           'include_plaintext': False})
        self.assertNotIn('plaintext', resp.json)
        self.assertEqual('SM4_128', self.client.calls[-1][2]['spec'])

    def test_hash_and_random(self):
        resp = self.request('POST', '/v1/hash', {'algorithm': 'SHA256',
                                                 'data': b64(b'abc')})
        self.assertEqual(200, resp.status, resp)
        self.assertEqual(b64(hashlib.sha256(b'abc').digest()),
                         resp.json['digest'])
        resp = self.request('POST', '/v1/random', {'length': 1024})
        self.assertEqual(1024, len(base64.b64decode(resp.json['random'])))

    def test_charset_parameter_is_accepted(self):
        resp = self.request('POST', '/v1/random', {'length': 3},
                            content_type='application/json; charset=utf-8')
        self.assertEqual(200, resp.status, resp)

    def test_x_auth_token(self):
        resp = self.request('POST', '/v1/random', {'length': 3}, token=None,
                            headers={'HTTP_X_AUTH_TOKEN': self.token})
        self.assertEqual(200, resp.status, resp)


class TestFailures(base.AppTestCase):

    def test_vhsm_unavailable_is_503(self):
        self.client.unavailable = True
        resp = self.request('POST', '/v1/random', {'length': 3})
        self.assertError(resp, 503, type_='VHSMUnavailable')

    def test_unexpected_error_is_generic_500(self):
        def boom(op, project, args):
            raise RuntimeError('internal detail')
        self.client.call = boom
        logger = self.useFixture(__import__('fixtures').FakeLogger())
        resp = self.request('POST', '/v1/hash',
                            {'algorithm': 'SM3', 'data': b64(b'TOPSECRET')})
        error = self.assertError(resp, 500, type_='InternalError')
        self.assertNotIn('internal detail', error['message'])
        self.assertIn('Traceback', logger.output)
        self.assertNotIn(b64(b'TOPSECRET'), logger.output)
