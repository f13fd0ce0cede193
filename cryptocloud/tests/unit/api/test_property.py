"""Property test: whatever a client sends, the admin API never answers 5xx."""

import json

import hypothesis
from hypothesis import strategies as st

from cryptocloud.api import routes
from cryptocloud.tests.unit.api import base

UUID = '11111111-2222-4333-8444-555555555555'

_scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
            | st.floats(allow_nan=False) | st.text(max_size=20)
            | st.sampled_from([UUID, 'SM2', '', 'ACTIVE', 'x' * 300]))
_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
_FIELDS = sorted({name for r in routes.ROUTES if r.body
                  for name in r.body.get('properties', {})})
_shaped = st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=4)
_bodies = (_shaped.map(json.dumps) | _json.map(json.dumps)
           | st.binary(max_size=64) | st.text(max_size=64))
_IDS = {'{node_id}': ['1', '0', '-1', 'x', '99999999999'],
        '{association_id}': ['1', 'x'],
        '{credential_id}': ['a' * 32, 'x']}


def _concrete(template: str) -> list[str]:
    paths = [template]
    for name, values in _IDS.items():
        paths = [p.replace(name, v) for p in paths for v in values]
    out = []
    for p in paths:
        while '{' in p:
            p = p[:p.index('{')] + UUID + p[p.index('}') + 1:]
        out.append(p)
    return out


_paths = st.sampled_from(sorted(
    {p for r in routes.ROUTES for p in _concrete(r.template)}
    | {'/v1/x', '/v1/services/%s/x' % UUID, '/v1/nodes/1/x', '//',
       '/v1/%2e%2e/'}))
_methods = st.sampled_from(['GET', 'POST', 'PATCH', 'PUT', 'DELETE'])
_queries = st.sampled_from(['', 'limit=2', 'limit=x', 'limit=0',
                            'marker=' + UUID, 'marker=1', 'sort_dir=desc',
                            'state=ACTIVE', 'enabled=true', 'role=device',
                            '&&=', 'limit=1&limit=2', 'limit=%ff',
                            'service_id=' + UUID, 'node_id=x'])


class TestNo5xx(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.add_node()
        group = self.create_group()['vhsm_group']
        self.create_service(group['id'])

    @hypothesis.settings(max_examples=400, deadline=None,
                         suppress_health_check=list(
                             hypothesis.HealthCheck))
    @hypothesis.given(method=_methods, path=_paths, body=_bodies,
                      query=_queries,
                      user=st.sampled_from(['admin', 'alice', 'bob', None]),
                      ctype=st.sampled_from(['application/json',
                                             'text/plain']))
    def test_no_5xx(self, method, path, body, query, user, ctype):
        url = path + ('?' + query if query else '')
        headers = dict(self.auth(user) if user else {})
        headers['Content-Type'] = ctype
        if isinstance(body, str):
            body = body.encode('utf-8')
        resp = self.app.request(url, method=method, body=body,
                                headers=headers, expect_errors=True)
        self.assertLess(resp.status_int, 500, (method, url, body, resp))
        self.assertEqual('application/json', resp.content_type)
        if resp.status_int >= 400:
            self.assertEqual({'code', 'type', 'message'},
                             set(resp.json['error']))
