"""/v1/images and the image each group and service pins."""

from cryptocloud.images import catalog
from cryptocloud.tests.unit.api import base

DIGEST_A = 'sha256:' + 'a' * 64
DIGEST_B = 'sha256:' + 'b' * 64


def _publish(conn, kind: str, digest: str) -> dict:
    repository = '127.0.0.1:5000/cryptocloud/%s' % kind
    return catalog.record(conn, {
        'kind': kind, 'repository': repository, 'tag': '1.0',
        'digest': digest, 'reference': '%s@%s' % (repository, digest),
        'version': '1.0', 'revision': 'abc', 'size': 1000})


class TestImages(base.APITestCase):

    def test_build_is_a_task_for_the_conductor(self):
        resp = self.call('POST', '/v1/images', {'kinds': ['vhsm']},
                         status=202)
        task = resp.json['task']
        self.assertEqual('build_images', task['action'])
        self.assertEqual({'kinds': ['vhsm'], 'push': True}, task['params'])
        self.assertEqual([task['id']],
                         [t for _, t, _ in self.conductor.casts])

    def test_build_without_body_builds_both(self):
        task = self.call('POST', '/v1/images', status=202).json['task']
        self.assertEqual(['vhsm', 'cryptoservice'], task['params']['kinds'])

    def test_bad_build_requests(self):
        for body, field in (({'kinds': ['kernel']}, 'kinds'),
                            ({'kinds': []}, 'kinds'),
                            ({'kinds': ['vhsm', 'vhsm']}, 'kinds'),
                            ({'push': 'yes'}, 'push'),
                            ({'tag': 'x'}, 'tag')):
            resp = self.call('POST', '/v1/images', body, status=400)
            self.assertIn(field, resp.json['error']['message'])
        self.assertEqual([], self.conductor.casts)

    def test_admin_only(self):
        self.call('POST', '/v1/images', {}, user='alice', status=403)
        self.call('GET', '/v1/images', user='alice', status=403)

    def test_list_show_and_filter(self):
        vhsm = _publish(self.conn, 'vhsm', DIGEST_A)
        _publish(self.conn, 'cryptoservice', DIGEST_B)
        listed = self.call('GET', '/v1/images', status=200).json['images']
        self.assertEqual(2, len(listed))
        only = self.call('GET', '/v1/images?kind=vhsm', status=200).json
        self.assertEqual([vhsm['id']], [i['id'] for i in only['images']])
        shown = self.call('GET', '/v1/images/%s' % vhsm['id'],
                          status=200).json
        self.assertEqual('127.0.0.1:5000/cryptocloud/vhsm@' + DIGEST_A,
                         shown['reference'])
        self.call('GET', '/v1/images/not-a-uuid', status=404)
        self.call('GET', '/v1/images?kind=kernel', status=400)

    def test_recording_twice_keeps_one_row(self):
        first = _publish(self.conn, 'vhsm', DIGEST_A)
        again = _publish(self.conn, 'vhsm', DIGEST_A)
        self.assertEqual(first['id'], again['id'])

    def test_groups_and_services_pin_the_newest_image(self):
        # Nothing published: the process driver needs no image.
        group = self.create_group()['vhsm_group']
        self.assertIsNone(group['image'])
        _publish(self.conn, 'vhsm', DIGEST_A)
        _publish(self.conn, 'cryptoservice', DIGEST_B)
        group = self.create_group(name='g2')['vhsm_group']
        self.assertTrue(group['image'].endswith(DIGEST_A))
        self.activate('vhsm_groups', group['id'])
        service = self.create_service(group['id'])['service']
        self.assertTrue(service['image'].endswith(DIGEST_B))
        # A newer image does not change what existing resources run.
        _publish(self.conn, 'vhsm', 'sha256:' + 'c' * 64)
        shown = self.call('GET', '/v1/vhsm_groups/%s' % group['id'],
                          user='alice', status=200).json
        self.assertTrue(shown['image'].endswith(DIGEST_A))
