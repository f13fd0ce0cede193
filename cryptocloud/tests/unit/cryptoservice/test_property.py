"""Property test: whatever a client sends, the app never answers 5xx."""

import base64
import json

import hypothesis
from hypothesis import strategies as st

from cryptocloud.cryptoservice import app as app_mod
from cryptocloud.tests.unit.cryptoservice import base

KEY_ID = '11111111-2222-4333-8444-555555555555'

_scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
            | st.floats(allow_nan=False) | st.text(max_size=20)
            | st.sampled_from(['aGk=', 'cc:v1:RQBoaQ==', 'cc:v2:', 'SM3',
                               'SM2', 'der', 'raw', 'pss', KEY_ID,
                               'encrypt', 'random', 'hash', 'sign']))
_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)

_FIELDS = sorted({name for r in app_mod.ROUTES if isinstance(r.body, dict)
                  for name in r.body.get('properties', {})}
                 | {'op', 'key_id', 'items'})
# Bodies shaped like the real ones: known field names with random values,
# which reach far deeper into the app than random dicts alone.
_shaped = st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=5)
_items = st.fixed_dictionaries({'items': st.lists(
    st.fixed_dictionaries({'op': st.sampled_from(
        ['encrypt', 'decrypt', 'rewrap', 'sign', 'verify', 'hmac',
         'hmac-verify', 'datakey', 'hash', 'random', 'nope'])},
        optional={'key_id': st.sampled_from([KEY_ID, 'x']),
                  'plaintext': _scalars, 'ciphertext': _scalars,
                  'message': _scalars, 'digest': _scalars,
                  'data': _scalars, 'length': _scalars,
                  'algorithm': _scalars}), max_size=5)})

_paths = st.sampled_from(sorted(
    {r.template.replace('{key_id}', KEY_ID) for r in app_mod.ROUTES}
    | {'/v1/keys/x', '/v1/keys/%s/nope' % KEY_ID}))
_methods = st.sampled_from(['GET', 'POST', 'PATCH', 'PUT', 'DELETE'])
_bodies = (_shaped.map(json.dumps) | _items.map(json.dumps)
           | _json.map(json.dumps) | st.binary(max_size=64)
           | st.text(max_size=64))
_queries = st.sampled_from(['', 'limit=2', 'limit=x', 'version=1',
                            'marker=' + KEY_ID, 'state=ENABLED', '&&=',
                            'version=1&version=2', 'limit=%ff'])


class TestNo5xx(base.AppTestCase):

    def setUp(self):
        super().setUp()
        key_id = self.create_key('SM4')
        # Give the fake a key at a fixed id so calls reach deep code.
        self.client.keys[KEY_ID] = dict(self.client.keys.pop(key_id),
                                        key_id=KEY_ID)

    @hypothesis.settings(max_examples=600, deadline=None,
                         suppress_health_check=list(
                             hypothesis.HealthCheck))
    @hypothesis.given(method=_methods, path=_paths, body=_bodies,
                      query=_queries,
                      ctype=st.sampled_from(['application/json', None,
                                             'text/plain']))
    def test_no_5xx(self, method, path, body, query, ctype):
        resp = self.request(method, path, body, query=query,
                            content_type=ctype)
        self.assertLess(resp.status, 500, (method, path, body, resp))
        payload = json.loads(resp.body) if resp.status != 200 or \
            path != '/metrics' else None
        if resp.status >= 400:
            self.assertEqual({'code', 'type', 'message'},
                             set(payload['error']))

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(data=st.binary(max_size=64))
    def test_encrypt_round_trip(self, data):
        path = '/v1/keys/%s/' % KEY_ID
        enc = self.request('POST', path + 'encrypt', {
            'plaintext': base64.b64encode(data).decode()})
        dec = self.request('POST', path + 'decrypt', {
            'ciphertext': enc.json['ciphertext']})
        self.assertEqual(data, base64.b64decode(dec.json['plaintext']))
