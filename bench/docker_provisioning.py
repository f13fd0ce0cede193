"""Provisioning time with the Docker driver: POST /v1/services -> ACTIVE.

Starts the real control plane (cryptocloud-api, cryptocloud-conductor,
one device and one service compute daemon with the docker driver) over
RabbitMQ with MariaDB, the images already pushed to the registry, makes
a one-vHSM group, then creates and deletes a one-instance service several
times, timing each from the POST to the first GET that shows it ACTIVE
with an endpoint.  Baseline, in the same run: ``docker run`` of the same
crypto-service image with the same kind of config until it accepts
connections, which no provisioning through the control plane can beat.

Needs the environment the test command sets up (tools/docker-env.sh and
the pushed images)::

    source tools/setup-env.sh; source tools/docker-env.sh
    export CRYPTOCLOUD_TEST_VHSM_IMAGE=... \
        CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE=...
    python bench/docker_provisioning.py [--runs 5]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

from cryptocloud.common import secretfile
from cryptocloud.common import workloads
from cryptocloud.db import api as dbapi
from cryptocloud.images import catalog
from cryptocloud.tests import db as test_db
from cryptocloud.tests.functional import controlplane

GOAL_SECONDS = 5.0
USER = (10001, 10001)


def _env() -> dict:
    names = ('CRYPTOCLOUD_TEST_DOCKER_URL', 'CRYPTOCLOUD_TEST_REGISTRY',
             'CRYPTOCLOUD_TEST_VHSM_IMAGE',
             'CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE')
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        sys.exit('set %s (see the docstring)' % ', '.join(missing))
    return os.environ


def baseline(env, workdir: str, runs: int) -> list[float]:
    """Seconds from `docker run` of the service image to listening."""
    import docker

    client = docker.DockerClient(base_url=env['CRYPTOCLOUD_TEST_DOCKER_URL'])
    image = env['CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE']
    times = []
    try:
        for i in range(runs):
            run_dir = os.path.join(workdir, 'bare-%d' % i)
            os.makedirs(run_dir)
            secret = os.path.join(run_dir, 'group.secret')
            secretfile.create_secret_file(secret)
            creds = os.path.join(run_dir, 'credentials.json')
            with open(creds, 'w') as f:
                f.write('{"credentials": []}\n')
            port = workloads.free_port()
            conf = workloads.write_config(
                os.path.join(run_dir, 'cryptoservice.conf'),
                workloads.ServiceConfig(
                    port=port, vhsm_endpoints=['127.0.0.1:1'],
                    vhsm_secret_file=secret, credentials_file=creds,
                ).render())
            for path in (run_dir, secret, creds, conf):
                os.chown(path, *USER)
            start = time.monotonic()
            container = client.containers.run(
                image, ['cryptocloud-cryptoservice', '--config-file', conf],
                detach=True, network_mode='host', user='%d:%d' % USER,
                volumes={run_dir: {'bind': run_dir, 'mode': 'ro'}})
            try:
                deadline = start + 60
                while not workloads.port_open('127.0.0.1', port):
                    if time.monotonic() > deadline:
                        raise RuntimeError('bare container did not listen')
                    time.sleep(0.01)
                times.append(time.monotonic() - start)
            finally:
                container.remove(force=True)
    finally:
        client.close()
    return times


def _remove_containers(env, hosts: list[str]) -> None:
    """Remove what the bench's nodes left (after a failure)."""
    import docker

    client = docker.DockerClient(base_url=env['CRYPTOCLOUD_TEST_DOCKER_URL'])
    try:
        for host in hosts:
            for container in client.containers.list(
                    all=True, filters={'label': 'io.cryptocloud.host=%s'
                                       % host}):
                container.remove(force=True)
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=5)
    args = parser.parse_args()
    env = _env()
    workdir = tempfile.mkdtemp(prefix='cc-dprov-')
    suffix = uuid.uuid4().hex[:6]
    hosts = (('bench-dev-' + suffix, 'device'),
             ('bench-svc-' + suffix, 'service'))
    registry = {'address': env['CRYPTOCLOUD_TEST_REGISTRY']}
    if env.get('CRYPTOCLOUD_TEST_REGISTRY_USER'):
        registry.update(username=env['CRYPTOCLOUD_TEST_REGISTRY_USER'],
                        password=env['CRYPTOCLOUD_TEST_REGISTRY_PASSWORD'])
    fixtures_up = []
    times = []
    try:
        control_db = test_db.Database('mysql')
        keystore_db = test_db.Database('mysql')
        vhost = controlplane.RabbitVhost()
        for fixture in (control_db, keystore_db, vhost):
            fixture.setUp()
            fixtures_up.append(fixture)
        cp = controlplane.ControlPlane(
            control_db.url, keystore_db.url, vhost.url, computes=hosts,
            compute_driver='docker', port_base=26000, compute_groups={
                'docker': {'url': env['CRYPTOCLOUD_TEST_DOCKER_URL']},
                'registry': registry})
        cp.setUp()
        fixtures_up.append(cp)
        conn = dbapi.Connection(control_db.url)
        for kind, name in ((catalog.VHSM, 'CRYPTOCLOUD_TEST_VHSM_IMAGE'),
                           (catalog.CRYPTOSERVICE,
                            'CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE')):
            ref = env[name]
            catalog.record(conn, {'kind': kind, 'repository':
                                  ref.split('@')[0], 'tag': 'bench',
                                  'digest': ref.rpartition('@')[2],
                                  'reference': ref})
        conn.close()
        cp.wait_for('/v1/nodes', lambda b: len(
            [n for n in b['nodes'] if n['state'] == 'UP']) == 2)
        made = cp.ok('POST', '/v1/vhsm_groups', {'name': 'b', 'size': 1})
        group_id = made['vhsm_group']['id']
        task = cp.wait_task(made['task']['id'])
        if task['state'] != 'SUCCEEDED':
            raise RuntimeError('group failed: %s' % task.get('error'))
        for i in range(args.runs):
            start = time.monotonic()
            made = cp.ok('POST', '/v1/services', {
                'name': 'bench-%d' % i, 'vhsm_group_id': group_id,
                'instances': 1, 'replicas': 0})
            service_id = made['service']['id']
            while True:
                body = cp.ok('GET', '/v1/services/%s' % service_id)
                if body['state'] == 'ACTIVE' and body.get('endpoint'):
                    break
                if body['state'] == 'ERROR':
                    raise RuntimeError(body.get('status_reason'))
                time.sleep(0.02)
            times.append(time.monotonic() - start)
            task = cp.ok('DELETE', '/v1/services/%s' % service_id)['task']
            cp.wait_task(task['id'])
        task = cp.ok('DELETE', '/v1/vhsm_groups/%s' % group_id)['task']
        cp.wait_task(task['id'])
        floor = baseline(env, workdir, args.runs)
    finally:
        for fixture in reversed(fixtures_up):
            fixture.cleanUp()
        _remove_containers(env, [h for h, _ in hosts])
        shutil.rmtree(workdir, ignore_errors=True)

    print('%-44s %8s %8s %8s' % ('', 'p50 s', 'max s', 'goal s'))
    print('%-44s %8.2f %8.2f %8.2f' % (
        'POST service -> ACTIVE (docker driver)', statistics.median(times),
        max(times), GOAL_SECONDS))
    print('%-44s %8.2f %8.2f %8s' % (
        'baseline: docker run of the image to listen',
        statistics.median(floor), max(floor), '-'))
    return 0 if statistics.median(times) <= GOAL_SECONDS else 1


if __name__ == '__main__':
    sys.exit(main())
