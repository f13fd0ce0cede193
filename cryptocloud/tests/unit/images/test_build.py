"""The image builder's steps, with a stand-in for the Docker Engine.

The real engine and registry are exercised by
cryptocloud/tests/functional/test_images.py; here every branch (and
every error message) is reached quickly.
"""

import io
import os
import tarfile
from unittest import mock

import fixtures
import testtools
from docker import errors as docker_errors
from oslo_config import fixture as config_fixture

from cryptocloud.common import exception
from cryptocloud.conf import CONF
from cryptocloud.images import build
from cryptocloud.images import registry

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..', '..'))
ADDRESS = '127.0.0.1:5999'
DIGEST = 'sha256:' + '12' * 32
OTHER_DIGEST = 'sha256:' + '34' * 32
IMAGE_ID = 'sha256:' + 'ee' * 32


class FakeAPI:
    """The parts of docker.APIClient the builder uses."""

    def __init__(self):
        self.images = {}
        self.calls = []
        self.build_stream = [{'stream': 'Step 1/1 : FROM base\n'},
                             {'aux': {'ID': IMAGE_ID}},
                             {'stream': 'Successfully built eeeeeeeeeeee\n'}]
        self.push_stream = [
            {'status': 'The push refers to repository [x]'},
            {'status': 'Pushing', 'progressDetail': {'current': 1},
             'id': 'abc'},
            {'status': 'v: digest: %s size: 1234' % DIGEST},
            {'progressDetail': {}, 'aux': {'Tag': 'v', 'Digest': DIGEST,
                                           'Size': 1234}}]
        self.contexts = {}
        self.imported = None

    def inspect_image(self, name):
        self.calls.append(('inspect_image', name))
        if name in self.images:
            return self.images[name]
        raise docker_errors.ImageNotFound('No such image: %s' % name)

    def build(self, **kwargs):
        self.calls.append(('build', kwargs))
        path = kwargs['path']
        self.contexts[kwargs['tag']] = {
            'Dockerfile': open(os.path.join(path, 'Dockerfile')).read(),
            'wheels': sorted(os.listdir(os.path.join(path, 'wheels'))),
            'files': sorted(os.listdir(path))}
        self.images[IMAGE_ID] = {'Id': IMAGE_ID, 'Size': 400_000_000}
        return iter(self.build_stream)

    def tag(self, image, repository, tag=None, force=False):
        self.calls.append(('tag', image, repository, tag))
        return True

    def push(self, repository, tag=None, stream=False, decode=False,
             auth_config=None):
        self.calls.append(('push', repository, tag, auth_config))
        return iter(self.push_stream)

    def import_image(self, src=None, repository=None, tag=None,
                     changes=None, stream_src=False):
        data = b''.join(src)
        self.imported = {'repository': repository, 'tag': tag,
                         'changes': changes, 'data': data}
        self.images['%s:%s' % (repository, tag)] = {'Id': 'sha256:base'}
        return '{"status":"sha256:base"}'


class FakeImages:

    def __init__(self, api):
        self.api = api
        self.pull_error = None

    def pull(self, name, auth_config=None):
        self.api.calls.append(('pull', name))
        if self.pull_error:
            raise self.pull_error
        self.api.images[name] = {'Id': 'sha256:pulled'}


class FakeClient:

    def __init__(self):
        self.api = FakeAPI()
        self.images = FakeImages(self.api)


class BuilderTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.conf = self.useFixture(config_fixture.Config(CONF)).conf
        for name, value in (('work_dir', os.path.join(self.tmp, 'work')),
                            ('source_dir', TOP),
                            ('base_image', 'python:3.11-slim-bookworm'),
                            ('offline_base', 'auto'),
                            ('vhsm_repository', 'team/vhsm'),
                            ('cryptoservice_repository', 'team/service')):
            self.conf.set_override(name, value, group='images')
        self.conf.set_override('address', ADDRESS, group='registry')
        self.conf.set_override('username', 'builder', group='registry')
        self.conf.set_override('password', 'pw', group='registry')
        self.client = FakeClient()
        self.registry = registry.RegistryClient.from_conf(self.conf)
        self.digest = self.useFixture(fixtures.MockPatchObject(
            self.registry, 'manifest_digest', return_value=DIGEST)).mock
        self.ping = self.useFixture(fixtures.MockPatchObject(
            self.registry, 'ping')).mock
        self.pip_runs = []
        self.useFixture(fixtures.MockPatchObject(
            build.ImageBuilder, '_run', staticmethod(self.fake_run)))

    def fake_run(self, cmd, log_file, timeout, what, env=None):
        """Stands in for pip wheel: writes two wheels."""
        self.pip_runs.append(cmd)
        self.pip_env = env
        dest = cmd[cmd.index('--wheel-dir') + 1]
        for name in ('cryptocloud-1.2.3.dev4-py3-none-any.whl',
                     'oslo_config-10.0.0-py3-none-any.whl'):
            open(os.path.join(dest, name), 'wb').close()

    def builder(self) -> build.ImageBuilder:
        builder = build.ImageBuilder(self.conf, client=self.client,
                                     registry=self.registry)
        self.addCleanup(builder.close)
        return builder


class BaseImageTest(BuilderTestCase):

    def test_local_base(self):
        self.client.api.images['python:3.11-slim-bookworm'] = {}
        self.assertEqual('python:3.11-slim-bookworm',
                         self.builder().ensure_base())
        self.assertNotIn('pull', [c[0] for c in self.client.api.calls])

    def test_pulled_base(self):
        self.assertEqual('python:3.11-slim-bookworm',
                         self.builder().ensure_base())
        self.assertIn(('pull', 'python:3.11-slim-bookworm'),
                      self.client.api.calls)

    def test_unpullable_base_never(self):
        self.conf.set_override('offline_base', 'never', group='images')
        self.client.images.pull_error = docker_errors.APIError(
            'Get "https://registry-1.docker.io/v2/": dial tcp: lookup '
            'registry-1.docker.io: no such host')
        exc = self.assertRaises(exception.ImageError,
                                self.builder().ensure_base)
        self.assertIn('cannot pull the base image python:3.11-slim-bookworm'
                      ': ', str(exc))
        self.assertIn('no such host', str(exc))
        self.assertIn('set [images] offline_base = auto', str(exc))

    def test_unpullable_base_auto_uses_local_debian(self):
        self.client.images.pull_error = docker_errors.APIError('no network')
        self.client.api.images['cryptocloud-base:bookworm'] = {}
        self.assertEqual('cryptocloud-base:bookworm',
                         self.builder().ensure_base())

    def test_always_skips_the_pull(self):
        self.conf.set_override('offline_base', 'always', group='images')
        self.client.api.images['cryptocloud-base:bookworm'] = {}
        self.assertEqual('cryptocloud-base:bookworm',
                         self.builder().ensure_base())
        self.assertNotIn('pull', [c[0] for c in self.client.api.calls])

    def test_import_of_a_cached_root_file_system(self):
        self.conf.set_override('offline_base', 'always', group='images')
        self.conf.set_override('offline_base_image', 'my-base:12',
                               group='images')
        rootfs = os.path.join(self.tmp, 'work', 'rootfs-bookworm')
        for name in ('usr/bin', 'var/lib/apt/lists/partial',
                     'var/cache/apt/archives'):
            os.makedirs(os.path.join(rootfs, name))
        for name, text in (('usr/bin/python3', 'x'),
                           ('var/lib/apt/lists/deb_bookworm_Packages', 'x'),
                           ('var/cache/apt/archives/python3.deb', 'x'),
                           ('var/cache/apt/pkgcache.bin', 'x')):
            with open(os.path.join(rootfs, name), 'w') as f:
                f.write(text)
        open(rootfs + '.complete', 'w').close()
        self.assertEqual('my-base:12', self.builder().ensure_base())
        imported = self.client.api.imported
        self.assertEqual(('my-base', '12'),
                         (imported['repository'], imported['tag']))
        self.assertIn('CMD ["python3"]', imported['changes'])
        with tarfile.open(fileobj=io.BytesIO(imported['data'])) as tar:
            names = set(tar.getnames())
        self.assertIn('./usr/bin/python3', names)
        self.assertIn('./var/lib/apt/lists/partial', names)
        self.assertNotIn('./var/lib/apt/lists/deb_bookworm_Packages', names)
        self.assertNotIn('./var/cache/apt/archives/python3.deb', names)
        self.assertNotIn('./var/cache/apt/pkgcache.bin', names)

    def test_no_debootstrap(self):
        self.conf.set_override('offline_base', 'always', group='images')
        with mock.patch('shutil.which', return_value=None):
            exc = self.assertRaises(exception.ImageError,
                                    self.builder().ensure_base)
        self.assertIn('debootstrap, which makes a local one, is not '
                      'installed', str(exc))


class BuildTest(BuilderTestCase):

    def test_wheels(self):
        builder = self.builder()
        wheel_dir = builder.build_wheels()
        self.assertEqual(1, len(self.pip_runs))
        cmd = self.pip_runs[0]
        self.assertEqual(['-m', 'pip', 'wheel', '--wheel-dir', wheel_dir],
                         cmd[1:6])
        self.assertEqual(os.path.join(TOP, 'requirements.txt'),
                         cmd[cmd.index('--requirement') + 1])
        self.assertEqual(TOP, cmd[-1])
        # Reproducible wheels: dated to the commit (or 1980 without git).
        self.assertRegex(self.pip_env['SOURCE_DATE_EPOCH'], r'^\d+$')
        self.assertTrue(wheel_dir.startswith(os.path.join(self.tmp, 'work')))
        self.assertEqual('1.2.3.dev4', build.source_version(TOP, wheel_dir))
        builder.close()
        self.assertFalse(os.path.exists(wheel_dir))

    def test_build(self):
        self.client.api.images['python:3.11-slim-bookworm'] = {}
        result = self.builder().build('vhsm')
        name = '%s/team/vhsm' % ADDRESS
        self.assertEqual(
            {'kind': 'vhsm', 'repository': name, 'tag': '1.2.3.dev4',
             'version': '1.2.3.dev4',
             'revision': build.source_revision(TOP), 'image_id': IMAGE_ID,
             'digest': None, 'reference': None, 'size': 400_000_000,
             'push_seconds': None},
            {k: v for k, v in result.items() if k != 'build_seconds'})
        kwargs = [c[1] for c in self.client.api.calls if c[0] == 'build'][0]
        self.assertEqual(name + ':1.2.3.dev4', kwargs['tag'])
        self.assertEqual('host', kwargs['network_mode'])
        self.assertEqual(
            {'BASE_IMAGE': 'python:3.11-slim-bookworm',
             'VERSION': '1.2.3.dev4', 'REVISION': result['revision']},
            kwargs['buildargs'])
        context = self.client.api.contexts[kwargs['tag']]
        self.assertEqual(['Dockerfile', 'wheels'], context['files'])
        with open(os.path.join(TOP, 'images', 'vhsm', 'Dockerfile')) as f:
            self.assertEqual(f.read(), context['Dockerfile'])
        self.assertEqual(['cryptocloud-1.2.3.dev4-py3-none-any.whl',
                          'oslo_config-10.0.0-py3-none-any.whl'],
                         context['wheels'])
        self.assertIn(('tag', IMAGE_ID, name, 'latest'),
                      self.client.api.calls)

    def test_build_failure_shows_the_log(self):
        self.client.api.images['python:3.11-slim-bookworm'] = {}
        self.client.api.build_stream = [
            {'stream': 'Step 4/16 : RUN python3 -m venv /opt/cryptocloud\n'},
            {'stream': ' ---> Running in 0123456789ab\n'},
            {'stream': 'ERROR: No matching distribution found for oslo\n'},
            {'errorDetail': {'message': "The command '/bin/sh -c python3 "
                                        "-m venv' returned a non-zero "
                                        "code: 1"},
             'error': "The command '/bin/sh -c python3 -m venv' returned a "
                      "non-zero code: 1"}]
        exc = self.assertRaises(exception.ImageError,
                                self.builder().build, 'cryptoservice')
        message = str(exc)
        self.assertIn('building the cryptoservice image failed: The command',
                      message)
        self.assertIn('returned a non-zero code: 1; last lines of the build '
                      'log:\nStep 4/16', message)
        self.assertIn('No matching distribution found for oslo', message)

    def test_build_without_an_image(self):
        self.client.api.images['python:3.11-slim-bookworm'] = {}
        self.client.api.build_stream = [{'stream': 'Step 1/1 : FROM x\n'}]
        exc = self.assertRaises(exception.ImageError,
                                self.builder().build, 'vhsm')
        self.assertIn('the build ended without an image', str(exc))

    def test_unknown_kind(self):
        exc = self.assertRaises(exception.InvalidInput,
                                self.builder().build, 'mainframe')
        self.assertIn("unknown image kind 'mainframe'", str(exc))


class PushTest(BuilderTestCase):

    def test_push(self):
        digest = self.builder().push('vhsm', ['1.2.3', 'latest'])
        self.assertEqual(DIGEST, digest)
        name = '%s/team/vhsm' % ADDRESS
        auth = {'username': 'builder', 'password': 'pw',
                'serveraddress': ADDRESS}
        self.assertEqual(
            [('push', name, '1.2.3', auth), ('push', name, 'latest', auth)],
            [c for c in self.client.api.calls if c[0] == 'push'])
        self.digest.assert_called_once_with('team/vhsm', '1.2.3')

    def test_digest_from_status_line(self):
        self.client.api.push_stream = self.client.api.push_stream[:-1]
        self.assertEqual(DIGEST, self.builder().push('vhsm', ['1']))

    def test_digest_mismatch(self):
        self.digest.return_value = OTHER_DIGEST
        exc = self.assertRaises(exception.ImageError, self.builder().push,
                                'vhsm', ['1'])
        self.assertIn('pushed %s/team/vhsm:1 as %s but the registry serves '
                      '%s' % (ADDRESS, DIGEST, OTHER_DIGEST), str(exc))

    def _push_error(self, message: str) -> str:
        self.client.api.push_stream = [
            {'status': 'The push refers to repository [x]'},
            {'errorDetail': {'message': message}, 'error': message}]
        return str(self.assertRaises(exception.ImageError,
                                     self.builder().push, 'cryptoservice',
                                     ['1']))

    def test_push_errors(self):
        for message, hint in (
                ('denied: requested access to the resource is denied',
                 'the registry denied access to this repository'),
                ('unauthorized: authentication required',
                 'the registry refused the credentials'),
                ('no basic auth credentials',
                 'set [registry] username and password'),
                ('Get "https://10.0.0.1:5000/v2/": http: server gave HTTP '
                 'response to HTTPS client', 'insecure-registries'),
                ('Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: '
                 'connect: connection refused',
                 'the Docker Engine cannot reach the registry')):
            text = self._push_error(message)
            self.assertIn('pushing the cryptoservice image %s/team/service:1 '
                          'failed: %s' % (ADDRESS, message), text)
            self.assertIn(hint, text)
        self.assertNotIn('(', self._push_error('something odd'))


class BuildAndPushTest(BuilderTestCase):

    def test_both_kinds(self):
        self.client.api.images['python:3.11-slim-bookworm'] = {}
        builder = self.builder()
        results = builder.build_and_push()
        # One wheel build for both images.
        self.assertEqual(1, len(self.pip_runs))
        self.assertEqual(['vhsm', 'cryptoservice'],
                         [r['kind'] for r in results])
        for result, repo in zip(results, ('team/vhsm', 'team/service'),
                                strict=True):
            self.assertEqual(DIGEST, result['digest'])
            self.assertEqual('%s/%s@%s' % (ADDRESS, repo, DIGEST),
                             result['reference'])
            self.assertIsInstance(result['push_seconds'], float)
            self.assertIsInstance(result['build_seconds'], float)
        self.assertEqual(4, len([c for c in self.client.api.calls
                                 if c[0] == 'push']))
        self.assertIn('wheel_seconds', builder.timings)
        # The scratch space is gone.
        self.assertEqual([], [n for n in os.listdir(builder.work_dir)
                              if n.startswith('build-')])

    def test_without_push(self):
        self.client.api.images['python:3.11-slim-bookworm'] = {}
        results = self.builder().build_and_push(kinds=['cryptoservice'],
                                                push=False)
        self.assertEqual(1, len(results))
        self.assertIsNone(results[0]['digest'])
        self.assertIsNone(results[0]['reference'])
        self.ping.assert_not_called()
        self.assertNotIn('push', [c[0] for c in self.client.api.calls])

    def test_registry_checked_before_building(self):
        self.ping.side_effect = exception.RegistryError(
            address=ADDRESS, reason='cannot connect')
        self.assertRaises(exception.RegistryError,
                          self.builder().build_and_push)
        self.assertEqual([], self.pip_runs)
        self.assertNotIn('build', [c[0] for c in self.client.api.calls])

    def test_no_docker_engine(self):
        sock = os.path.join(self.tmp, 'no-docker.sock')
        self.conf.set_override('docker_url', 'unix://' + sock,
                               group='images')
        builder = build.ImageBuilder(self.conf, registry=self.registry)
        exc = self.assertRaises(exception.ImageError,
                                builder.build_and_push)
        self.assertIn('cannot reach the Docker Engine at unix://%s '
                      '([images] docker_url)' % sock, str(exc))
        self.assertEqual([], self.pip_runs)


class HelpersTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def test_find_source_dir(self):
        self.assertEqual(TOP, build.find_source_dir())
        self.assertEqual(TOP, build.find_source_dir(TOP))
        exc = self.assertRaises(exception.ImageError,
                                build.find_source_dir, self.tmp)
        self.assertIn('no cryptocloud source tree (setup.cfg and images/) '
                      'at [images] source_dir %s' % self.tmp, str(exc))
        os.mkdir(os.path.join(self.tmp, 'images'))
        with open(os.path.join(self.tmp, 'setup.cfg'), 'w') as f:
            f.write('[metadata]\nname = cryptocloudish\n')
        self.assertRaises(exception.ImageError, build.find_source_dir,
                          self.tmp)

    def test_installed_without_a_source_tree(self):
        site = os.path.join(self.tmp, 'site-packages', 'cryptocloud')
        os.makedirs(site)
        with mock.patch('cryptocloud.__file__',
                        os.path.join(site, '__init__.py')):
            exc = self.assertRaises(exception.ImageError,
                                    build.find_source_dir)
        self.assertIn('where the cryptocloud package is installed; set '
                      '[images] source_dir', str(exc))

    def test_versions(self):
        self.assertEqual(build.UNKNOWN, build.source_revision(self.tmp))
        self.assertEqual(build.UNKNOWN, build.source_version(self.tmp))
        self.assertEqual(build.UNKNOWN, build.source_version(self.tmp,
                                                             self.tmp))
        if build.source_revision(TOP) == build.UNKNOWN:
            self.skipTest('the source tree is not a git checkout')
        self.assertRegex(build.source_revision(TOP), '^[0-9a-f]{40}$')
        self.assertNotEqual(build.UNKNOWN, build.source_version(TOP))

    def test_image_tag(self):
        for version, tag in (('1.2.3', '1.2.3'),
                             ('0.0.1.dev81', '0.0.1.dev81'),
                             ('1.0+g1234', '1.0-g1234'),
                             ('.hidden', 'v.hidden'),
                             ('', 'v'),
                             ('9' * 200, '9' * 128)):
            self.assertEqual(tag, build.image_tag(version))
            self.assertRegex(build.image_tag(version), registry.TAG_RE)

    def test_run_failure_shows_the_end_of_the_output(self):
        log = os.path.join(self.tmp, 'out.log')
        exc = self.assertRaises(
            exception.ImageError, build.ImageBuilder._run,
            ['sh', '-c', 'for i in $(seq 1 40); do echo line $i; done; '
             'exit 3'], log, 30, 'pip wheel')
        message = str(exc)
        self.assertIn('pip wheel failed (exit status 3); last lines of %s'
                      % log, message)
        self.assertIn('line 40', message)
        self.assertNotIn('line 1\n', message)

    def test_run_timeout(self):
        exc = self.assertRaises(
            exception.ImageError, build.ImageBuilder._run,
            ['sh', '-c', 'echo started; exec sleep 30'],
            os.path.join(self.tmp, 'out.log'), 0.5, 'debootstrap')
        self.assertIn('debootstrap did not finish within 0.5 s', str(exc))
        self.assertIn('started', str(exc))

    def test_run_missing_program(self):
        exc = self.assertRaises(
            exception.ImageError, build.ImageBuilder._run,
            ['/no/such/program'], os.path.join(self.tmp, 'out.log'), 5,
            'debootstrap')
        self.assertIn('cannot run debootstrap', str(exc))
