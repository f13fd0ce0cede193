"""Both images built with the real Docker Engine and pushed to the registry.

Needs ``CRYPTOCLOUD_TEST_DOCKER_URL``, ``CRYPTOCLOUD_TEST_REGISTRY``,
``CRYPTOCLOUD_TEST_REGISTRY_USER`` and ``CRYPTOCLOUD_TEST_REGISTRY_PASSWORD``
(``tools/docker-env.sh`` exports them).  Without them the tests skip,
unless ``CRYPTOCLOUD_TEST_REQUIRE_DOCKER=1``, which makes that a failure.

Each run pushes to repositories of its own (``cctest-<random>/...``), so
runs in parallel do not meet; what it tagged locally and pushed is deleted
afterwards.  The base image is made unpullable so that the local Debian
base (``[images] offline_base_image``) is what the images are built FROM:
no public registry can be reached here.
"""

import io
import json
import os
import tarfile
import time
import uuid

import docker
import fixtures
import requests
import testtools
from docker import errors as docker_errors
from oslo_config import fixture as config_fixture
from testtools import content

from cryptocloud.common import exception
from cryptocloud.common import secretfile
from cryptocloud.common import workloads
from cryptocloud.conf import CONF
from cryptocloud.cryptoservice import auth
from cryptocloud.db import migration
from cryptocloud.images import build
from cryptocloud.images import registry

_REQUIRED = ('CRYPTOCLOUD_TEST_DOCKER_URL', 'CRYPTOCLOUD_TEST_REGISTRY',
             'CRYPTOCLOUD_TEST_REGISTRY_USER',
             'CRYPTOCLOUD_TEST_REGISTRY_PASSWORD')
# Port 9 (discard) refuses at once: the pull fails fast, offline.
UNPULLABLE_BASE = '127.0.0.1:9/cryptocloud-test/no-such-base:1'
WORKLOAD_UID = 10001
# Looks inside an image (as root) for what the build stage must not leave.
_LEFTOVERS = r'''
import json, os
found = []
for root, dirs, files in os.walk('/'):
    if root in ('/proc', '/sys', '/dev') or root.startswith(
            ('/proc/', '/sys/', '/usr/share/python-wheels')):
        dirs[:] = []
        continue
    for name in dirs:
        path = os.path.join(root, name)
        if name == 'wheels' or (name == 'pip' and root.endswith('/.cache')):
            found.append(path)
    found.extend(os.path.join(root, n) for n in files if n.endswith('.whl'))
for name in ('/opt/cryptocloud/bin/pip', '/opt/cryptocloud/bin/pip3'):
    if os.path.exists(name):
        found.append(name)
print(json.dumps(found))
'''
_SM2 = ('from cryptocloud.crypto import _libcrypto, sm2; '
        '_libcrypto.check_backend(); k = sm2.SM2PrivateKey.generate(); '
        's = k.sign(b"m"); '
        'print("sm2", k.verify(s, b"m"), k.verify(s, b"x"))')


class ImagesTestCase(testtools.TestCase):
    """Options for the test engine and registry, and cleanups."""

    def setUp(self):
        super().setUp()
        missing = [n for n in _REQUIRED if not os.environ.get(n)]
        if missing:
            why = ('image tests need a Docker Engine and a registry: %s '
                   'unset (source tools/setup-env.sh and '
                   'tools/docker-env.sh)' % ', '.join(missing))
            if os.environ.get('CRYPTOCLOUD_TEST_REQUIRE_DOCKER') == '1':
                self.fail(why)
            self.skipTest(why)
        env = os.environ
        self.docker_url = env['CRYPTOCLOUD_TEST_DOCKER_URL']
        self.address = env['CRYPTOCLOUD_TEST_REGISTRY']
        self.user = env['CRYPTOCLOUD_TEST_REGISTRY_USER']
        self.password = env['CRYPTOCLOUD_TEST_REGISTRY_PASSWORD']
        self.engine = docker.DockerClient(base_url=self.docker_url,
                                          timeout=120)
        self.addCleanup(self.engine.close)
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.prefix = 'cctest-%s' % uuid.uuid4().hex[:12]
        self.conf = self.useFixture(config_fixture.Config(CONF)).conf
        for name, value in (
                ('docker_url', self.docker_url),
                ('base_image', UNPULLABLE_BASE),
                ('offline_base', 'auto'),
                ('work_dir', os.environ.get(
                    'CRYPTOCLOUD_TEST_IMAGES_WORK_DIR',
                    os.path.join(self.tmp, 'work'))),
                ('vhsm_repository', self.prefix + '/vhsm'),
                ('cryptoservice_repository',
                 self.prefix + '/cryptoservice')):
            self.conf.set_override(name, value, group='images')
        for name, value in (('address', self.address),
                            ('username', self.user),
                            ('password', self.password)):
            self.conf.set_override(name, value, group='registry')
        self.registry = registry.RegistryClient(self.address, self.user,
                                                self.password)
        self.addCleanup(self.registry.close)

    def forget(self, *names: str) -> None:
        """Remove local tags (or images) at cleanup; missing ones are fine."""
        for name in names:
            self.addCleanup(self._remove_image, name)

    def _remove_image(self, name: str) -> None:
        try:
            self.engine.api.remove_image(name)
        except docker_errors.APIError:
            pass


class TestBuildAndPush(ImagesTestCase):

    def setUp(self):
        super().setUp()
        # The first build on a machine may debootstrap a base (~2 min)
        # and fill pip's cache; later ones take well under a minute.
        self.useFixture(fixtures.Timeout(1500, gentle=True))

    def test_build_push_and_run(self):
        builder = build.ImageBuilder(self.conf)
        results = builder.build_and_push()
        self.addDetail('timings', content.text_content(
            json.dumps(builder.timings, indent=1, sort_keys=True)))
        self.addDetail('results', content.text_content(
            json.dumps(results, indent=1, sort_keys=True)))
        for result in results:
            name = result['repository']
            self.forget('%s:%s' % (name, result['tag']), name + ':latest',
                        result['reference'])
            if result['digest']:
                repo = name[len(self.address) + 1:]
                self.addCleanup(self._delete_manifest, repo,
                                result['digest'])
        self.assertEqual(['vhsm', 'cryptoservice'],
                         [r['kind'] for r in results])
        by_kind = {r['kind']: r for r in results}
        for kind, result in by_kind.items():
            self.check_result(kind, result)
            self.check_registry(kind, result)
            self.check_image(kind, result)
        self.check_pull_by_digest(by_kind['vhsm'])
        self.check_workloads(by_kind['vhsm']['reference'],
                             by_kind['cryptoservice']['reference'])

    def _delete_manifest(self, repository: str, digest: str) -> None:
        try:
            self.registry.delete_manifest(repository, digest)
        except exception.RegistryError:
            pass

    def check_result(self, kind: str, result: dict) -> None:
        repo = getattr(self.conf.images, '%s_repository' % kind)
        self.assertEqual('%s/%s' % (self.address, repo),
                         result['repository'])
        self.assertEqual(build.image_tag(result['version']), result['tag'])
        self.assertRegex(result['digest'], registry.DIGEST_RE)
        self.assertEqual('%s/%s@%s' % (self.address, repo, result['digest']),
                         result['reference'])
        self.assertRegex(result['image_id'], '^sha256:[0-9a-f]{64}$')
        self.assertGreater(result['size'], 50_000_000)
        self.assertGreater(result['build_seconds'], 0)
        self.assertGreater(result['push_seconds'], 0)
        revision = build.source_revision(build.find_source_dir())
        self.assertEqual(revision, result['revision'])

    def check_registry(self, kind: str, result: dict) -> None:
        """The registry serves the pushed digest under both tags."""
        repo = result['repository'][len(self.address) + 1:]
        fresh = registry.RegistryClient(self.address, self.user,
                                        self.password)
        self.addCleanup(fresh.close)
        self.assertEqual(result['digest'],
                         fresh.manifest_digest(repo, result['tag']))
        self.assertEqual(result['digest'],
                         fresh.manifest_digest(repo, 'latest'))

    def run_in(self, image: str, command, user: str | None = None) -> str:
        out = self.engine.containers.run(
            image, command, user=user, network_mode='host', remove=True,
            stdout=True, stderr=True)
        return out.decode('utf-8', 'replace')

    def check_image(self, kind: str, result: dict) -> None:
        image = result['image_id']
        attrs = self.engine.api.inspect_image(image)
        config = attrs['Config']
        self.assertEqual('%d:%d' % (WORKLOAD_UID, WORKLOAD_UID),
                         config['User'])
        self.assertFalse(config.get('Entrypoint'))
        self.assertEqual(['cryptocloud-%s' % kind, '--help'], config['Cmd'])
        self.assertEqual(['CMD', 'cryptocloud-healthcheck'],
                         config['Healthcheck']['Test'])
        labels = config['Labels']
        self.assertEqual(result['version'],
                         labels['org.opencontainers.image.version'])
        self.assertEqual(result['revision'],
                         labels['org.opencontainers.image.revision'])
        self.assertEqual('cryptocloud-%s' % kind,
                         labels['org.opencontainers.image.title'])
        self.assertEqual(kind, labels['io.cryptocloud.kind'])
        # No layer of the final image saw the wheels.
        for layer in self.engine.api.history(image):
            self.assertNotIn('wheels', layer.get('CreatedBy', ''))
        leftovers = json.loads(self.run_in(image, ['python3', '-c',
                                                   _LEFTOVERS], user='0'))
        self.assertEqual([], leftovers)
        ids = self.run_in(image, [
            'sh', '-c', 'id -u; id -g; for p in cryptocloud-vhsm '
            'cryptocloud-cryptoservice cryptocloud-healthcheck; do '
            'command -v $p; done'])
        self.assertEqual(
            ['%d' % WORKLOAD_UID, '%d' % WORKLOAD_UID,
             '/opt/cryptocloud/bin/cryptocloud-vhsm',
             '/opt/cryptocloud/bin/cryptocloud-cryptoservice',
             '/opt/cryptocloud/bin/cryptocloud-healthcheck'],
            ids.split())
        # The default command is the program's help.
        self.assertIn('usage: cryptocloud-%s' % kind,
                      self.run_in(image, None))
        self.assertIn('usage: cryptocloud-vhsm',
                      self.run_in(image, ['cryptocloud-vhsm', '--help']))
        self.assertEqual('sm2 True False',
                         self.run_in(image, ['python3', '-c', _SM2]).strip())
        # Without a workload it has nothing to probe, and says so.
        try:
            self.run_in(image, ['cryptocloud-healthcheck'])
        except docker_errors.ContainerError as exc:
            self.assertEqual(1, exc.exit_status)
        else:
            self.fail('cryptocloud-healthcheck succeeded with no workload')

    def check_pull_by_digest(self, result: dict) -> None:
        """Gone locally, the image comes back whole by its digest."""
        name = result['repository']
        for ref in ('%s:%s' % (name, result['tag']), name + ':latest',
                    result['reference']):
            self._remove_image(ref)
        self.assertRaises(docker_errors.ImageNotFound,
                          self.engine.api.inspect_image, result['image_id'])
        pulled = self.engine.images.pull(
            result['reference'], auth_config=self.registry.auth_config())
        self.assertEqual(result['image_id'], pulled.id)
        self.assertIn(result['reference'],
                      self.engine.api.inspect_image(pulled.id)['RepoDigests'])

    # -- the real programs in containers -----------------------------------

    def check_workloads(self, vhsm_ref: str, service_ref: str) -> None:
        """A vHSM and a service instance run from the pinned images."""
        files = os.path.join(self.tmp, 'workload')
        os.mkdir(files)
        master_key = os.path.join(files, 'master.key')
        secret = os.path.join(files, 'group.secret')
        for path in (master_key, secret):
            secretfile.create_secret_file(path)
        keystore = 'sqlite:///%s' % os.path.join(files, 'keystore.sqlite')
        migration.upgrade(keystore)
        credentials = os.path.join(files, 'credentials.json')
        token = auth.create_credential(credentials, 'project-a')
        vhsm_port = workloads.free_port()
        status_port = workloads.free_port()
        service_port = workloads.free_port()
        vhsm_conf = workloads.write_config(
            os.path.join(files, 'vhsm.conf'), workloads.VHSMConfig(
                group_id='group-1', port=vhsm_port, status_port=status_port,
                keystore_url=keystore, master_key_file=master_key,
                auth_secret_file=secret, member_id='vhsm-0').render())
        service_conf = workloads.write_config(
            os.path.join(files, 'service.conf'), workloads.ServiceConfig(
                port=service_port,
                vhsm_endpoints=['127.0.0.1:%d' % vhsm_port],
                vhsm_secret_file=secret,
                credentials_file=credentials).render())
        # The workloads run as the image's user and own their files.
        for root, dirs, names in os.walk(files):
            for name in [root] + [os.path.join(root, n)
                                  for n in dirs + names]:
                os.chown(name, WORKLOAD_UID, WORKLOAD_UID)

        vhsm = self.start(vhsm_ref, 'vhsm', vhsm_conf, files)
        self.wait_healthy(vhsm)
        service = self.start(service_ref, 'cryptoservice', service_conf,
                             files)
        self.wait_healthy(service)
        resp = requests.get('http://127.0.0.1:%d/v1/keys' % service_port,
                            headers={'Authorization': 'Bearer ' + token},
                            timeout=30)
        self.assertEqual(200, resp.status_code, resp.text)
        # Docker's own HEALTHCHECK (first run after its 10 s interval).
        self.wait_for(lambda: self.health_status(service) == 'healthy',
                      60, 'Docker to report the service healthy')
        # Without its vHSM the service is unhealthy, and says why.
        vhsm.stop(timeout=10)
        self.wait_for(lambda: self.exec_healthcheck(service)[0] == 1, 30,
                      'the service to become unhealthy')
        code, out = self.exec_healthcheck(service)
        self.assertEqual('unhealthy: GET http://127.0.0.1:%d/healthz '
                         'answered 503' % service_port, out.strip())

    def start(self, image: str, kind: str, config_file: str, files: str):
        container = self.engine.containers.run(
            image, ['cryptocloud-%s' % kind, '--config-file', config_file],
            name='%s-%s' % (self.prefix, kind), detach=True,
            network_mode='host',
            volumes={files: {'bind': files, 'mode': 'rw'}})
        self.addCleanup(container.remove, force=True)
        self.addOnException(lambda exc_info: self.addDetail(
            '%s-log' % kind, content.text_content(
                container.logs().decode('utf-8', 'replace')[-20000:])))
        return container

    def exec_healthcheck(self, container) -> tuple[int, str]:
        code, out = container.exec_run(['cryptocloud-healthcheck'])
        return code, out.decode('utf-8', 'replace')

    def health_status(self, container) -> str | None:
        container.reload()
        return container.attrs['State'].get('Health', {}).get('Status')

    def wait_healthy(self, container) -> None:
        def healthy():
            container.reload()
            if container.status == 'exited':
                self.fail('%s exited: %s' % (
                    container.name,
                    container.logs().decode('utf-8', 'replace')[-3000:]))
            return self.exec_healthcheck(container)[0] == 0

        self.wait_for(healthy, 60, '%s to answer /healthz' % container.name)

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail('timed out after %s s waiting for %s'
                          % (timeout, what))
            time.sleep(0.5)


class TestErrors(ImagesTestCase):
    """Failures are quick and say what is wrong."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))

    def test_bad_registry_password_fails_before_building(self):
        self.conf.set_override('password', 'not-the-password',
                               group='registry')
        builder = build.ImageBuilder(self.conf)
        start = time.monotonic()
        exc = self.assertRaises(exception.RegistryError,
                                builder.build_and_push)
        self.assertLess(time.monotonic() - start, 30)
        self.assertIn('it rejected the credentials of user %s' % self.user,
                      str(exc))
        self.assertNotIn('not-the-password', str(exc))

    def test_unpullable_base_with_offline_base_never(self):
        self.conf.set_override('offline_base', 'never', group='images')
        exc = self.assertRaises(exception.ImageError,
                                build.ImageBuilder(self.conf).ensure_base)
        self.assertIn('cannot pull the base image %s' % UNPULLABLE_BASE,
                      str(exc))

    def test_push_refused(self):
        # A one-file image is enough to see the engine's refusal.
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode='w') as tar:
            info = tarfile.TarInfo('hello.txt')
            info.size = 6
            tar.addfile(info, io.BytesIO(b'hello\n'))
        name = '%s/%s/vhsm' % (self.address, self.prefix)
        self.engine.api.import_image_from_data(data.getvalue(),
                                               repository=name, tag='1')
        self.forget(name + ':1')
        self.conf.set_override('password', 'not-the-password',
                               group='registry')
        exc = self.assertRaises(exception.ImageError,
                                build.ImageBuilder(self.conf).push, 'vhsm',
                                ['1'])
        self.assertIn('pushing the vhsm image %s:1 failed: unauthorized'
                      % name, str(exc))
        self.assertIn('the registry refused the credentials', str(exc))

    def test_no_docker_engine(self):
        sock = os.path.join(self.tmp, 'docker.sock')
        self.conf.set_override('docker_url', 'unix://' + sock,
                               group='images')
        exc = self.assertRaises(exception.ImageError,
                                build.ImageBuilder(self.conf).build_and_push)
        self.assertIn('cannot reach the Docker Engine at unix://%s' % sock,
                      str(exc))
