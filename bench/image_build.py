"""Image build and push times (claim 6), beside the engine's own floor.

Builds both images from this tree with cryptocloud's builder and pushes
them to new repositories of the test registry, twice: once from scratch
(no cached layer; the registry may already hold the base layer), then
again with the tree unchanged (what a repeated `cryptocloud-manage images
build --push` costs).  Baselines, in the same run: `docker build` of a
one-step image on the same base, and `docker push` to a new repository
of a layer of 100 MB of fresh random bytes (raw engine-to-registry
throughput: nothing of it is in the registry yet).

Needs the engine and registry of the test command::

    source tools/setup-env.sh; source tools/docker-env.sh
    python bench/image_build.py
"""

import io
import os
import sys
import tarfile
import time
import uuid

import docker

from cryptocloud.conf import CONF
from cryptocloud.images import build
from cryptocloud.images import registry as registry_mod

RANDOM_LAYER_BYTES = 100 * 1000 * 1000


def _configure(env, repo_prefix: str) -> None:
    CONF([], project='cryptocloud', default_config_files=[])
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name, value in (
            ('docker_url', env['CRYPTOCLOUD_TEST_DOCKER_URL']),
            ('source_dir', top),
            ('work_dir', os.path.join(
                env.get('CRYPTOCLOUD_DOCKER_STATE', '/var/lib/cryptocloud-ci'),
                'images')),
            ('vhsm_repository', repo_prefix + '/vhsm'),
            ('cryptoservice_repository', repo_prefix + '/cryptoservice')):
        CONF.set_override(name, value, group='images')
    CONF.set_override('address', env['CRYPTOCLOUD_TEST_REGISTRY'],
                      group='registry')
    if env.get('CRYPTOCLOUD_TEST_REGISTRY_USER'):
        CONF.set_override('username', env['CRYPTOCLOUD_TEST_REGISTRY_USER'],
                          group='registry')
        CONF.set_override('password',
                          env['CRYPTOCLOUD_TEST_REGISTRY_PASSWORD'],
                          group='registry')


def _timed_build_and_push(no_cache: bool) -> dict:
    with build.ImageBuilder(CONF, no_cache=no_cache) as builder:
        start = time.monotonic()
        results = builder.build_and_push()
        timings = dict(builder.timings)
    timings['total_seconds'] = time.monotonic() - start
    timings['results'] = results
    return timings


def _baselines(client, base: str, registry: str, auth: dict | None,
               repo_prefix: str) -> tuple[float, float, str]:
    dockerfile = ('FROM %s\nRUN python3 -c "print(1)"\n' % base).encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode='w') as tar:
        info = tarfile.TarInfo('Dockerfile')
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    name = '%s/%s/trivial:1' % (registry, repo_prefix)
    start = time.monotonic()
    for _ in client.api.build(fileobj=context, custom_context=True,
                              tag=name, nocache=True, network_mode='host',
                              rm=True, decode=True):
        pass
    build_seconds = time.monotonic() - start
    client.images.remove(name, force=True)
    # A layer of fresh random bytes: nothing of it is in the registry.
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode='w') as tar:
        info = tarfile.TarInfo('random.bin')
        info.size = RANDOM_LAYER_BYTES
        tar.addfile(info, io.BytesIO(os.urandom(RANDOM_LAYER_BYTES)))
    pushed = '%s/%s/random' % (registry, repo_prefix)
    client.api.import_image_from_data(payload.getvalue(),
                                      repository=pushed, tag='bench')
    start = time.monotonic()
    for chunk in client.images.push(pushed, 'bench', auth_config=auth,
                                    stream=True, decode=True):
        if 'error' in chunk:
            raise RuntimeError(chunk['error'])
    push_seconds = time.monotonic() - start
    client.images.remove(pushed + ':bench')
    return build_seconds, push_seconds, pushed


def main() -> int:
    env = os.environ
    for name in ('CRYPTOCLOUD_TEST_DOCKER_URL', 'CRYPTOCLOUD_TEST_REGISTRY'):
        if not env.get(name):
            sys.exit('set %s (source tools/docker-env.sh)' % name)
    prefix = 'bench-%s' % uuid.uuid4().hex[:8]
    _configure(env, prefix)
    cold = _timed_build_and_push(no_cache=True)
    warm = _timed_build_and_push(no_cache=False)
    client = docker.DockerClient(base_url=env['CRYPTOCLOUD_TEST_DOCKER_URL'],
                                 timeout=600)
    registry = registry_mod.RegistryClient.from_conf(CONF)
    try:
        base = build.ImageBuilder(CONF, client=client).ensure_base()
        size_mb = client.images.get(base).attrs['Size'] / 1e6
        floor_build, floor_push, _ = _baselines(
            client, base, env['CRYPTOCLOUD_TEST_REGISTRY'],
            registry.auth_config(), prefix)
        for result in cold['results']:
            client.images.remove('%s:%s' % (result['repository'],
                                            result['tag']), force=True)
    finally:
        client.close()

    print('%-46s %9s %9s' % ('', 'scratch s', 'again s'))
    for key, label in (('wheel_seconds', 'wheels of the tree (pip wheel)'),
                       ('vhsm_build_seconds', 'vHSM image build'),
                       ('cryptoservice_build_seconds',
                        'crypto-service image build'),
                       ('vhsm_push_seconds', 'vHSM image push'),
                       ('cryptoservice_push_seconds',
                        'crypto-service image push'),
                       ('total_seconds', 'images build --push, in all')):
        print('%-46s %9.1f %9.1f' % (label, cold.get(key, 0.0),
                                     warm.get(key, 0.0)))
    sizes = ', '.join('%s %.0f MB' % (r['kind'], (r.get('size') or 0) / 1e6)
                      for r in cold['results'])
    print('image sizes: %s' % sizes)
    print('baseline: docker build of a one-step image        %6.1f s'
          % floor_build)
    print('baseline: docker push of a new 100 MB layer        %6.1f s '
          '(%.0f MB/s); base image %.0f MB'
          % (floor_push, RANDOM_LAYER_BYTES / 1e6 / floor_push, size_mb))
    return 0


if __name__ == '__main__':
    sys.exit(main())
