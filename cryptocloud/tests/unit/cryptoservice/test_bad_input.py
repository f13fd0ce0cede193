"""Every class of bad input on every route family: 4xx, never 5xx.

Table-driven: the routes come from the app's own route table, and each
class of mistake is applied to each route that can make it.
"""

import json

from cryptocloud.cryptoservice import app as app_mod
from cryptocloud.tests.unit.cryptoservice import base

KEY = '{key_id}'

# A valid body for every route that takes one.
VALID_BODIES = {
    ('POST', '/v1/keys'): {'algorithm': 'SM4'},
    ('PATCH', '/v1/keys/{key_id}'): {'description': 'x'},
    ('POST', '/v1/keys/{key_id}/rotate'): {},
    ('POST', '/v1/keys/{key_id}/enable'): {},
    ('POST', '/v1/keys/{key_id}/disable'): {},
    ('POST', '/v1/keys/{key_id}/cancel-deletion'): {},
    ('POST', '/v1/keys/{key_id}/schedule-deletion'): {'pending_days': 7},
    ('POST', '/v1/keys/{key_id}/encrypt'): {'plaintext': 'aGk='},
    ('POST', '/v1/keys/{key_id}/decrypt'): {'ciphertext': 'cc:v1:RQBoaQ=='},
    ('POST', '/v1/keys/{key_id}/rewrap'): {'ciphertext': 'cc:v1:RQBoaQ=='},
    ('POST', '/v1/keys/{key_id}/sign'): {'message': 'aGk='},
    ('POST', '/v1/keys/{key_id}/verify'): {'message': 'aGk=',
                                           'signature': 'aGk='},
    ('POST', '/v1/keys/{key_id}/hmac'): {'data': 'aGk='},
    ('POST', '/v1/keys/{key_id}/hmac-verify'): {'data': 'aGk=',
                                                'mac': 'aGk='},
    ('POST', '/v1/keys/{key_id}/datakey'): {},
    ('POST', '/v1/hash'): {'algorithm': 'SM3', 'data': 'aGk='},
    ('POST', '/v1/random'): {'length': 4},
    ('POST', '/v1/batch'): {'items': [{'op': 'random', 'length': 1}]},
}

BAD_BASE64 = ('not base64!', 'aGk', 'aG k=', '\u00e9\u00e9\u00e9\u00e9',
              'aGk=aGk=')
BAD_CIPHERTEXTS = ('', 'RQBoaQ==', 'cc:v0:RQBoaQ==', 'cc:v01:RQBoaQ==',
                   'cc:v:RQBoaQ==', 'cc:vx:RQBoaQ==', 'cc:v1RQBoaQ==',
                   'cc:v1:', 'cc:v1:***', 'cc:v99999999999:RQBoaQ==',
                   'cc:v\u0661:RQBoaQ==', 'vault:v1:RQBoaQ==',
                   'cc:v-1:RQBoaQ==')


class TestBadInput(base.AppTestCase):

    def setUp(self):
        super().setUp()
        self.key_id = self.create_key()
        self.calls_before = len(self.client.calls)

    def path(self, template):
        return template.replace(KEY, self.key_id)

    def body_routes(self):
        routes = [(r.method, r.template) for r in app_mod.ROUTES
                  if r.body is not None]
        self.assertEqual(set(VALID_BODIES), set(routes))
        return routes

    def check(self, resp, code, what, contains=None):
        self.assertLess(resp.status, 500, what)
        self.assertEqual(code, resp.status, '%s: %r' % (what, resp))
        error = resp.json['error']
        self.assertEqual(code, error['code'], what)
        if contains is not None:
            self.assertIn(contains, error['message'], what)
        return error

    def assertNotSent(self):
        self.assertEqual(self.calls_before, len(self.client.calls),
                         self.client.calls[self.calls_before:])

    def test_valid_bodies_are_valid(self):
        for method, template in self.body_routes():
            resp = self.request(method, self.path(template),
                                VALID_BODIES[(method, template)])
            self.assertLess(resp.status, 500, (template, resp))
            self.assertNotEqual(400, resp.status, (template, resp))

    def test_malformed_json(self):
        for method, template in self.body_routes():
            for raw in ('{"a": ', '{bad}', '{"a": 1,}', "{'a': 1}",
                        '{"length": NaN}', '{"length": Infinity}',
                        '[' * 60000, '{"x": ' + '1' * 5000 + '}'):
                resp = self.request(method, self.path(template), raw)
                self.check(resp, 400, (template, raw[:20]))
            resp = self.request(method, self.path(template), '{"a": 1,\n}')
            self.check(resp, 400, template, contains='line 2')
            resp = self.request(method, self.path(template), b'{"a": "\xff"}')
            self.check(resp, 400, template, contains='UTF-8')
        self.assertNotSent()

    def test_body_not_an_object(self):
        for method, template in self.body_routes():
            for raw in ('[]', '"text"', '3', 'null', 'true'):
                resp = self.request(method, self.path(template), raw)
                self.check(resp, 400, (template, raw),
                           contains='the request body must be object')
        self.assertNotSent()

    def test_unknown_fields_are_named(self):
        for (method, template), body in VALID_BODIES.items():
            resp = self.request(method, self.path(template),
                                dict(body, bogus_field=1))
            self.check(resp, 400, template, contains='bogus_field')
        self.assertNotSent()

    def test_missing_fields_are_named(self):
        for (method, template), body in VALID_BODIES.items():
            route = [r for r in app_mod.ROUTES
                     if (r.method, r.template) == (method, template)][0]
            schema = route.body if route.body != 'batch' else {
                'required': ['items']}
            for name in schema.get('required', ()):
                partial = {k: v for k, v in body.items() if k != name}
                resp = self.request(method, self.path(template), partial)
                self.check(resp, 400, (template, name), contains=name)
        resp = self.request('PATCH', self.path('/v1/keys/{key_id}'), {})
        self.check(resp, 400, 'empty PATCH')
        self.assertNotSent()

    def test_wrong_types_are_named(self):
        for (method, template), body in VALID_BODIES.items():
            route = [r for r in app_mod.ROUTES
                     if (r.method, r.template) == (method, template)][0]
            props = ({'items': {}} if route.body == 'batch'
                     else route.body['properties'])
            for name in props:
                for value in ({'x': 1}, [1], 1.5, -1, 'x' * 2_000_000):
                    resp = self.request(method, self.path(template),
                                        dict(body, **{name: value}))
                    if resp.status == 413:
                        continue
                    self.check(resp, 400, (template, name, str(value)[:9]),
                               contains=name)
        self.assertNotSent()

    def test_bad_base64_is_named(self):
        for (method, template), body in VALID_BODIES.items():
            route = [r for r in app_mod.ROUTES
                     if (r.method, r.template) == (method, template)][0]
            if route.body == 'batch':
                continue
            for name, prop in route.body['properties'].items():
                if prop.get('format') != 'byte':
                    continue
                for value in BAD_BASE64:
                    resp = self.request(method, self.path(template),
                                        dict(body, **{name: value}))
                    self.check(resp, 400, (template, name, value),
                               contains=name)
        self.assertNotSent()

    def test_bad_ciphertext_strings(self):
        for op in ('decrypt', 'rewrap'):
            path = self.path('/v1/keys/{key_id}/' + op)
            for value in BAD_CIPHERTEXTS:
                resp = self.request('POST', path, {'ciphertext': value})
                self.check(resp, 400, (op, value), contains='ciphertext')
        self.assertNotSent()

    def test_sign_needs_exactly_one_of_message_and_digest(self):
        for op in ('sign', 'verify'):
            path = self.path('/v1/keys/{key_id}/' + op)
            extra = {'signature': 'aGk='} if op == 'verify' else {}
            for body in ({}, {'message': 'aGk=', 'digest': 'aGk='}):
                resp = self.request('POST', path, dict(body, **extra))
                self.check(resp, 400, (op, body), contains='exactly one')
        self.assertNotSent()

    def test_bounds(self):
        cases = [
            ('/v1/random', {'length': 0}), ('/v1/random', {'length': 1025}),
            ('/v1/random', {'length': True}),
            ('/v1/hash', {'algorithm': 'MD5', 'data': 'aGk='}),
            ('/v1/keys/{key_id}/schedule-deletion', {'pending_days': 6}),
            ('/v1/keys/{key_id}/schedule-deletion', {'pending_days': 31}),
            ('/v1/keys', {'algorithm': 'sm2 or something'}),
            ('/v1/keys', {'algorithm': 'SM4', 'name': ''}),
            ('/v1/keys', {'algorithm': 'SM4', 'name': 'n' * 256}),
            ('/v1/keys/{key_id}/encrypt',
             {'plaintext': 'aGk=', 'ciphertext_format': 'C3C2C1'}),
            ('/v1/keys/{key_id}/sign', {'message': 'aGk=', 'user_id': ''}),
            ('/v1/keys/{key_id}/verify', {'message': 'aGk=',
                                          'signature': 'aGk=',
                                          'key_version': 0}),
            ('/v1/keys/{key_id}/datakey', {'spec': 'DES'}),
        ]
        for template, body in cases:
            resp = self.request('POST', self.path(template), body)
            self.check(resp, 400, (template, body))
        resp = self.request('PATCH', self.path('/v1/keys/{key_id}'),
                            {'exportable': False})
        self.check(resp, 400, 'exportable false', contains='exportable')
        self.assertNotSent()

    def test_unsupported_media_type(self):
        for method, template in self.body_routes():
            for ctype in ('text/plain', 'application/x-www-form-urlencoded',
                          None, 'application/jsonx'):
                resp = self.request(method, self.path(template),
                                    VALID_BODIES[(method, template)],
                                    content_type=ctype)
                self.check(resp, 415, (template, ctype))
        self.assertNotSent()

    def test_oversize_body(self):
        big = json.dumps({'plaintext': 'A' * base.MAX_BODY})
        for method, template in self.body_routes():
            resp = self.request(method, self.path(template), big)
            self.check(resp, 413, template)
        # The length is checked before anything is read, on any route.
        env = self.environ('POST', '/nowhere', '{}')
        env['CONTENT_LENGTH'] = str(10 ** 12)
        self.check(self.call(env), 413, 'huge content-length')
        for bad in ('abc', '-1'):
            env = self.environ('POST', '/v1/random', '{}')
            env['CONTENT_LENGTH'] = bad
            self.check(self.call(env), 400, bad)
        env = self.environ('POST', '/v1/random', '{"length": 1}')
        env['CONTENT_LENGTH'] = '100'
        self.check(self.call(env), 400, 'short', contains='shorter')
        self.assertNotSent()

    def test_chunked_bodies(self):
        env = self.environ('POST', '/v1/random', '{"length": 2}')
        del env['CONTENT_LENGTH']
        env['HTTP_TRANSFER_ENCODING'] = 'chunked'
        self.assertEqual(200, self.call(env).status)
        env = self.environ('POST', '/v1/random',
                           ' ' * base.MAX_BODY + '{"length": 2}')
        del env['CONTENT_LENGTH']
        env['HTTP_TRANSFER_ENCODING'] = 'chunked'
        self.check(self.call(env), 413, 'chunked too large')

    def test_credentials_required(self):
        for route in app_mod.ROUTES:
            if not route.auth:
                continue
            body = VALID_BODIES.get((route.method, route.template))
            for token in (None, 'garbage', self.token + 'x',
                          'x' * 10000, '.'):
                resp = self.request(route.method, self.path(route.template),
                                    body, token=token)
                self.check(resp, 401, (route.template, token))
                self.assertIn('Bearer', resp.headers['WWW-Authenticate'])
            resp = self.request(route.method, self.path(route.template),
                                body, token=None,
                                headers={'HTTP_AUTHORIZATION':
                                         'Basic ' + self.token})
            self.check(resp, 401, (route.template, 'basic'))
        self.assertNotSent()

    def test_unknown_routes(self):
        for path in ('/v2', '/v1/keys/', '/v1/keys/%s/nope' % self.key_id,
                     '/v1/keys/%s/encrypt/x' % self.key_id, '/v1//keys',
                     '/v1/keys/not-a-uuid/encrypt', '/v1/keys/%00/rotate',
                     '/healthz/', '/v1/hash/'):
            resp = self.request('POST', path, {})
            self.check(resp, 404, path)
        resp = self.request('GET', '/v1/keys/%s/' % self.key_id)
        self.check(resp, 404, 'trailing slash')
        resp = self.request('GET', '/v1/keys/not-a-uuid')
        self.check(resp, 404, 'not a uuid')
        self.assertNotSent()

    def test_wrong_methods(self):
        seen = {}
        for route in app_mod.ROUTES:
            seen.setdefault(route.template, set()).add(route.method)
        for template, methods in seen.items():
            for method in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD',
                           'BREW'):
                if method in methods:
                    continue
                resp = self.request(method, self.path(template))
                self.check(resp, 405, (template, method))
                self.assertEqual(sorted(methods),
                                 resp.headers['Allow'].split(', '))
        self.assertNotSent()

    def test_bad_query_strings(self):
        cases = [
            ('/v1/keys', 'limit=0'), ('/v1/keys', 'limit=1001'),
            ('/v1/keys', 'limit=abc'), ('/v1/keys', 'limit=-1'),
            ('/v1/keys', 'limit=1&limit=2'), ('/v1/keys', 'marker=xyz'),
            ('/v1/keys', 'state=GONE'), ('/v1/keys', 'bogus=1'),
            ('/v1/keys', 'a&&&b=%%%'),
            ('/v1/keys/{key_id}/public-key', 'version=0'),
            ('/v1/keys/{key_id}/export', 'version=x'),
            ('/v1/keys/{key_id}/export', 'version=99999999999'),
            ('/v1/keys/{key_id}/export', 'versions=1'),
        ]
        for template, query in cases:
            resp = self.request('GET', self.path(template), query=query)
            self.check(resp, 400, (template, query))
        self.assertNotSent()
