"""The batch endpoint: per-item validation, one vHSM call, order kept."""

import base64

from cryptocloud.tests.unit.cryptoservice import base


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestBatch(base.AppTestCase):

    def test_mixed_valid_and_invalid_items(self):
        key_id = self.create_key()
        sm2 = self.create_key('SM2')
        missing = '00000000-0000-4000-8000-000000000000'
        items = [
            {'op': 'encrypt', 'key_id': key_id, 'plaintext': b64(b'one')},
            {'op': 'encrypt', 'key_id': key_id, 'plaintext': 'bad!'},
            {'op': 'hash', 'algorithm': 'SM3', 'data': b64(b'x')},
            {'op': 'frobnicate'},
            {'op': 'sign', 'key_id': sm2, 'message': b64(b'm'),
             'user_id': 'bob'},
            {'op': 'random', 'length': 2, 'key_id': key_id},
            {'op': 'encrypt', 'key_id': missing, 'plaintext': b64(b'x')},
            {'op': 'decrypt', 'key_id': key_id, 'ciphertext': 'cc:v1:x'},
            {'op': 'encrypt', 'plaintext': b64(b'x')},
            {'op': 'random', 'length': 3},
        ]
        before = len(self.client.calls)
        resp = self.request('POST', '/v1/batch', {'items': items})
        self.assertEqual(200, resp.status, resp)
        results = resp.json['results']
        self.assertEqual([200, 400, 200, 400, 200, 400, 404, 400, 400, 200],
                         [r['status'] for r in results])
        self.assertTrue(results[0]['result']['ciphertext']
                        .startswith('cc:v1:'))
        self.assertIn('items[1].plaintext', results[1]['error']['message'])
        self.assertIn('items[3].op', results[3]['error']['message'])
        self.assertIn('key_id', results[5]['error']['message'])
        self.assertEqual('KeyNotFound', results[6]['error']['type'])
        self.assertIn('items[7].ciphertext', results[7]['error']['message'])
        self.assertIn('key_id', results[8]['error']['message'])
        self.assertEqual(3, len(base64.b64decode(
            results[9]['result']['random'])))
        # Exactly one vHSM call carrying only the valid items.
        calls = self.client.calls[before:]
        self.assertEqual(1, len(calls))
        op, project, args = calls[0]
        self.assertEqual(('batch', base.PROJECT), (op, project))
        self.assertEqual(['encrypt', 'hash', 'sign', 'encrypt', 'random'],
                         [i['op'] for i in args['items']])
        self.assertEqual(b'bob', args['items'][2]['args']['user_id'])

    def test_all_invalid_items_make_no_call(self):
        before = len(self.client.calls)
        resp = self.request('POST', '/v1/batch', {'items': [
            {'op': 'random', 'length': 0}, {'nothing': 1}, {'op': 5}]})
        self.assertEqual([400, 400, 400],
                         [r['status'] for r in resp.json['results']])
        self.assertEqual(before, len(self.client.calls))

    def test_item_count_bounds(self):
        for items in ([], [{'op': 'random', 'length': 1}] *
                      (base.BATCH_MAX + 1), [1, 2], 'x'):
            resp = self.request('POST', '/v1/batch', {'items': items})
            self.assertError(resp, 400, contains='items')
        resp = self.request('POST', '/v1/batch', {'items': [
            {'op': 'random', 'length': 1}] * base.BATCH_MAX})
        self.assertEqual(200, resp.status)

    def test_hmac_verify_op_name_and_round_trip(self):
        key_id = self.create_key('HMAC_SM3')
        resp = self.request('POST', '/v1/batch', {'items': [
            {'op': 'hmac', 'key_id': key_id, 'data': b64(b'd')}]})
        mac = resp.json['results'][0]['result']['mac']
        resp = self.request('POST', '/v1/batch', {'items': [
            {'op': 'hmac-verify', 'key_id': key_id, 'data': b64(b'd'),
             'mac': mac},
            {'op': 'datakey', 'key_id': key_id, 'include_plaintext': False}]})
        self.assertIs(True, resp.json['results'][0]['result']['valid'])
        self.assertEqual('hmac_verify',
                         self.client.calls[-1][2]['items'][0]['op'])

    def test_vhsm_unavailable_fails_the_request(self):
        self.client.unavailable = True
        resp = self.request('POST', '/v1/batch', {'items': [
            {'op': 'random', 'length': 1}]})
        self.assertError(resp, 503, type_='VHSMUnavailable')

    def test_wrong_result_count_is_502(self):
        self.client.call = lambda op, project, args: {'results': []}
        resp = self.request('POST', '/v1/batch', {'items': [
            {'op': 'random', 'length': 1}]})
        self.assertError(resp, 502, type_='BadVHSMReply')

    def test_items_are_counted(self):
        self.request('POST', '/v1/batch', {'items': [
            {'op': 'random', 'length': 1}] * 3})
        self.assertIn(b'cryptoservice_batch_items_total 3.0',
                      self.metrics.render())
