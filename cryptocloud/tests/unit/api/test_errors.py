"""Bad input is a 4xx naming what was wrong, never a 500."""

import io
import uuid

import testscenarios
import webob

from cryptocloud.tests.unit.api import base

load_tests = testscenarios.load_tests_apply_scenarios

GROUP = str(uuid.uuid4())
_SIZE = {'size': 2}


def _case(method, path, body=None, status=400, text=None, ctype=None):
    return {'method': method, 'path': path, 'body': body,
            'status': status, 'text': text, 'ctype': ctype}


class TestBadInput(base.APITestCase):

    scenarios = [
        ('malformed_json', _case('POST', '/v1/vhsm_groups', '{"size": ',
                                 text='malformed JSON')),
        ('nan', _case('POST', '/v1/vhsm_groups', '{"size": NaN}',
                      text='NaN')),
        ('not_utf8', _case('POST', '/v1/vhsm_groups', b'{"size": "\xff"}',
                           text='UTF-8')),
        ('deep', _case('POST', '/v1/vhsm_groups', '[' * 100000,
                       status=413)),
        ('not_object', _case('POST', '/v1/vhsm_groups', '[1]',
                             text='must be object')),
        ('unknown_field', _case('POST', '/v1/vhsm_groups',
                                {'size': 2, 'colour': 'red'},
                                text='must not contain')),
        ('missing_field', _case('POST', '/v1/vhsm_groups', {'name': 'x'},
                                text='size')),
        ('empty_body', _case('POST', '/v1/vhsm_groups', '', text='size')),
        ('wrong_type', _case('POST', '/v1/vhsm_groups', {'size': '2'},
                             text='size')),
        ('bool_is_not_int', _case('POST', '/v1/vhsm_groups', {'size': True},
                                  text='size')),
        ('size_zero', _case('POST', '/v1/vhsm_groups', {'size': 0},
                            text='size')),
        ('size_too_big', _case('POST', '/v1/vhsm_groups', {'size': 101},
                               text='size')),
        ('name_empty', _case('POST', '/v1/vhsm_groups',
                             {'size': 1, 'name': ''}, text='name')),
        ('text_plain', _case('POST', '/v1/vhsm_groups', '{"size": 1}',
                             status=415, ctype='text/plain')),
        ('too_large', _case('POST', '/v1/vhsm_groups',
                            '{"name": "%s"}' % ('x' * 5000), status=413)),
        ('instances_zero', _case('POST', '/v1/services', {
            'vhsm_group_id': GROUP, 'instances': 0}, text='instances')),
        ('instances_51', _case('POST', '/v1/services', {
            'vhsm_group_id': GROUP, 'instances': 51}, text='instances')),
        ('replicas_6', _case('POST', '/v1/services', {
            'vhsm_group_id': GROUP, 'instances': 1, 'replicas': 6},
            text='replicas')),
        ('bad_group_id', _case('POST', '/v1/services', {
            'vhsm_group_id': 'nope', 'instances': 1},
            text='vhsm_group_id')),
        ('bad_algorithm', _case('POST', '/v1/services', {
            'vhsm_group_id': GROUP, 'instances': 1,
            'algorithms': ['sm2; drop']}, text='algorithms')),
        ('dup_algorithm', _case('POST', '/v1/services', {
            'vhsm_group_id': GROUP, 'instances': 1,
            'algorithms': ['SM2', 'SM2']}, text='algorithms')),
        ('enabled_not_bool', _case('PATCH', '/v1/nodes/1',
                                   {'enabled': 'no'}, text='enabled')),
        ('credential_fields', _case(
            'POST', '/v1/services/%s/credentials' % GROUP, {'x': 1},
            text='must not contain')),
        ('limit_zero', _case('GET', '/v1/vhsm_groups?limit=0',
                             text='limit')),
        ('limit_text', _case('GET', '/v1/vhsm_groups?limit=x',
                             text='limit')),
        ('limit_negative', _case('GET', '/v1/vhsm_groups?limit=-1',
                                 text='limit')),
        ('limit_over_max', _case('GET', '/v1/vhsm_groups?limit=51',
                                 text='at most 50')),
        ('marker_format', _case('GET', '/v1/vhsm_groups?marker=x',
                                text='marker')),
        ('marker_unknown', _case('GET', '/v1/vhsm_groups?marker=' + GROUP,
                                 text='marker')),
        ('node_marker', _case('GET', '/v1/nodes?marker=abc',
                              text='marker')),
        ('sort_dir', _case('GET', '/v1/tasks?sort_dir=up',
                           text='sort_dir')),
        ('unknown_query', _case('GET', '/v1/tasks?colour=red',
                                text='colour')),
        ('twice', _case('GET', '/v1/tasks?state=PENDING&state=FAILED',
                        text='twice')),
        ('bad_enum', _case('GET', '/v1/tasks?state=DONE', text='state')),
        ('bad_bool', _case('GET', '/v1/nodes?enabled=maybe',
                           text='enabled')),
        ('bad_role', _case('GET', '/v1/nodes?role=boss', text='role')),
        ('malformed_query', _case('GET', '/v1/tasks?&&=', text='query')),
        ('unknown_group', _case('GET', '/v1/vhsm_groups/' + GROUP,
                                status=404)),
        ('group_not_uuid', _case('GET', '/v1/vhsm_groups/x', status=404)),
        ('group_ext', _case('GET', '/v1/vhsm_groups/%s.json' % GROUP,
                            status=404)),
        ('unknown_service', _case('DELETE', '/v1/services/' + GROUP,
                                  status=404)),
        ('unknown_task', _case('GET', '/v1/tasks/' + GROUP, status=404)),
        ('unknown_node', _case('GET', '/v1/nodes/99', status=404)),
        ('node_not_int', _case('GET', '/v1/nodes/x', status=404)),
        ('node_huge', _case('GET', '/v1/nodes/99999999999', status=404)),
        ('unknown_path', _case('GET', '/v2', status=404)),
        ('deeper_path', _case('GET', '/v1/tasks/%s/x' % GROUP,
                              status=404)),
        ('double_slash', _case('GET', '/v1//tasks', status=404)),
        ('python_attr', _case('GET', '/v1/__class__', status=404)),
        ('respond_attr', _case('GET', '/v1/nodes/respond', status=404)),
        ('method', _case('PUT', '/v1/vhsm_groups', {'size': 1},
                         status=405)),
        ('delete_collection', _case('DELETE', '/v1/services', status=405)),
    ]

    def test_bad_input(self):
        headers = {'Content-Type': self.ctype} if self.ctype else None
        resp = self.call(self.method, self.path, self.body, user='admin',
                         headers=headers)
        err = self.assertError(resp, self.status, text=self.text)
        if self.status == 405:
            self.assertIn('Allow', resp.headers)
        self.assertEqual(0, self.conn.count('tasks'), err)
        self.assertEqual([], self.conductor.casts)


class TestErrorShapes(base.APITestCase):

    def raw(self, body: bytes, **environ):
        """Call the app with a hand-made environ (no lint in between)."""
        req = webob.Request.blank('/v1/vhsm_groups', method='POST',
                                  headers=self.auth('alice'))
        req.content_type = 'application/json'
        req.body_file_raw = io.BytesIO(body)
        req.environ.pop('CONTENT_LENGTH', None)
        req.environ.update(environ)
        return req.get_response(self.app.app)

    def test_chunked_body_over_the_limit(self):
        resp = self.raw(b'{"name": "%s"}' % (b'x' * 5000),
                        HTTP_TRANSFER_ENCODING='chunked')
        self.assertError(resp, 413, 'PayloadTooLarge')

    def test_chunked_body_within_the_limit(self):
        resp = self.raw(b'{"size": 2}', HTTP_TRANSFER_ENCODING='chunked')
        self.assertEqual(202, resp.status_int, resp.body)

    def test_bad_content_length(self):
        for value in ('x', '-1'):
            resp = self.raw(b'{}', CONTENT_LENGTH=value)
            self.assertError(resp, 400, 'InvalidInput', 'Content-Length')

    def test_short_body(self):
        resp = self.raw(b'{}', CONTENT_LENGTH='100')
        self.assertError(resp, 400, 'InvalidInput', 'shorter')

    def test_deep_nesting_within_the_limit(self):
        resp = self.call('POST', '/v1/vhsm_groups', '[' * 4000)
        self.assertError(resp, 400, 'InvalidInput')

    def test_not_acceptable_is_json(self):
        resp = self.call('GET', '/v1/tasks',
                         headers={'Accept': 'application/xml'})
        self.assertLess(resp.status_int, 500)
        if resp.status_int >= 400:
            self.assertError(resp, resp.status_int)

    def test_unexpected_error_is_a_json_500_without_details(self):
        def boom(*args, **kwargs):
            raise RuntimeError('db password is hunter2')
        self.conn.list = boom
        resp = self.call('GET', '/v1/tasks')
        err = self.assertError(resp, 500)
        self.assertNotIn('hunter2', err['message'])
