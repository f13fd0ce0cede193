"""The build_images workflow: what the conductor records of a build.

The builder itself runs against a real engine and registry in
tests/functional/test_images.py; here it is replaced so that the
workflow's own duties are checked: record pushed images, report them in
the task, fail the task with the builder's message.
"""

import uuid

import fixtures

from cryptocloud.common import exception
from cryptocloud.conductor.workflows import base as wf_base
from cryptocloud.conductor.workflows import build_images
from cryptocloud.images import build
from cryptocloud.tests.unit.conductor import base


class StandInBuilder:
    """Answers build_and_push like ImageBuilder, without an engine."""

    error: Exception | None = None
    calls: list = []

    def __init__(self, conf):
        self.conf = conf

    def build_and_push(self, kinds, push):
        type(self).calls.append((tuple(kinds), push))
        if self.error is not None:
            raise self.error
        results = []
        for kind in kinds:
            repository = '127.0.0.1:5000/cryptocloud/%s' % kind
            digest = 'sha256:' + uuid.uuid4().hex * 2
            results.append({
                'kind': kind, 'repository': repository, 'tag': '1.0',
                'version': '1.0', 'revision': 'abc', 'size': 1,
                'digest': digest if push else None,
                'reference': ('%s@%s' % (repository, digest) if push
                              else None),
                'build_seconds': 1.0, 'push_seconds': 0.5})
        return results


class TestBuildImages(base.ConductorTestCase):

    def setUp(self):
        super().setUp()
        StandInBuilder.calls = []
        StandInBuilder.error = None
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.images.build.ImageBuilder', StandInBuilder))
        self.assertIs(StandInBuilder, build.ImageBuilder)

    def _run(self, params: dict) -> dict:
        task = self.add_task('build_images', str(uuid.uuid4()),
                             params=params)
        build_images.run(self.workflow(task))
        return self.db.get('tasks', task['id'])

    def test_pushed_images_are_recorded_and_reported(self):
        task = self._run({'kinds': ['vhsm', 'cryptoservice'], 'push': True})
        rows = self.db.list('images')
        self.assertEqual({'vhsm', 'cryptoservice'},
                         {r['kind'] for r in rows})
        reported = {i['kind']: i for i in task['params']['images']}
        for row in rows:
            self.assertEqual(row['id'], reported[row['kind']]['image_id'])
            self.assertEqual(row['reference'],
                             reported[row['kind']]['reference'])

    def test_build_without_push_records_nothing(self):
        task = self._run({'kinds': ['vhsm'], 'push': False})
        self.assertEqual([(('vhsm',), False)], StandInBuilder.calls)
        self.assertEqual([], self.db.list('images'))
        self.assertNotIn('image_id', task['params']['images'][0])

    def test_builder_error_fails_the_task_with_its_reason(self):
        StandInBuilder.error = exception.RegistryError(
            address='127.0.0.1:5000', reason='bad credentials')
        task = self.add_task('build_images', str(uuid.uuid4()),
                             params={'kinds': ['vhsm']})
        exc = self.assertRaises(wf_base.WorkflowError, build_images.run,
                                self.workflow(task))
        self.assertIn('bad credentials', str(exc))
        self.assertEqual([], self.db.list('images'))
