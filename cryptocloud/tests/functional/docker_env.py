"""The Docker Engine, registry and images the container tests use.

``tools/run-tests.sh`` starts a Docker Engine and Debian's registry on
127.0.0.1 (``tools/docker-env.sh``), builds both images and pushes them,
and passes what it made in the environment:

- ``CRYPTOCLOUD_TEST_DOCKER_URL``: the engine's API socket;
- ``CRYPTOCLOUD_TEST_REGISTRY`` (host:port), ``..._USER``,
  ``..._PASSWORD``: the registry and its htpasswd account;
- ``CRYPTOCLOUD_TEST_VHSM_IMAGE``, ``CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE``:
  the pushed images, pinned by digest.

Without them the container tests skip, unless
``CRYPTOCLOUD_TEST_REQUIRE_DOCKER=1`` (set by the test command), which
makes a missing engine a failure instead of a silent skip.
"""

import dataclasses
import os

import testtools

from cryptocloud.compute.drivers import docker as docker_driver

# The labels the Docker driver puts on every container it makes.
HOST_LABEL = docker_driver.LABEL_PREFIX + 'host'
ID_LABEL = docker_driver.LABEL_PREFIX + 'workload_id'
PREPARED_LABEL = docker_driver.LABEL_PREFIX + 'prepared'

_REQUIRED = ('CRYPTOCLOUD_TEST_DOCKER_URL', 'CRYPTOCLOUD_TEST_REGISTRY',
             'CRYPTOCLOUD_TEST_VHSM_IMAGE',
             'CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE')


@dataclasses.dataclass(frozen=True)
class DockerEnv:
    """Where the engine and registry are, and the images to run."""

    docker_url: str
    registry: str
    registry_user: str | None
    registry_password: str | None
    vhsm_image: str
    cryptoservice_image: str

    def client(self):
        """A Docker SDK client of the test engine."""
        import docker

        return docker.DockerClient(base_url=self.docker_url, timeout=60)

    def compute_groups(self) -> dict:
        """Config groups a docker-driven compute daemon needs."""
        registry = {'address': self.registry}
        if self.registry_user:
            registry.update(username=self.registry_user,
                            password=self.registry_password)
        return {'docker': {'url': self.docker_url,
                           'vhsm_memory_mb': 256,
                           'instance_memory_mb': 256},
                'registry': registry}

    def node_containers(self, test: testtools.TestCase,
                        hosts: tuple) -> 'NodeContainers':
        """The containers of the compute nodes ``hosts`` (name, roles).

        Call it before starting the control plane: its cleanup, which
        removes every container of those nodes, then runs after the
        control plane's own (which kills the daemons, not what they
        started).
        """
        client = self.client()
        test.addCleanup(client.close)
        found = NodeContainers(client, tuple(host for host, _ in hosts))
        test.addCleanup(found.remove_all)
        return found

    def publish_images(self, database_url: str) -> None:
        """Record the pushed images as `images build --push` would."""
        from cryptocloud.db import api as dbapi
        from cryptocloud.images import catalog

        conn = dbapi.Connection(database_url)
        try:
            for kind, ref in ((catalog.VHSM, self.vhsm_image),
                              (catalog.CRYPTOSERVICE,
                               self.cryptoservice_image)):
                catalog.record(conn, {
                    'kind': kind, 'repository': ref.split('@')[0],
                    'tag': 'test', 'digest': ref.rpartition('@')[2],
                    'reference': ref})
        finally:
            conn.close()


def require(test: testtools.TestCase) -> DockerEnv:
    """The test environment, or skip (fail when Docker is required)."""
    missing = [name for name in _REQUIRED if not os.environ.get(name)]
    if missing:
        why = ('container tests need %s (tools/run-tests.sh sets them)'
               % ', '.join(missing))
        if os.environ.get('CRYPTOCLOUD_TEST_REQUIRE_DOCKER') == '1':
            test.fail(why)
        test.skipTest(why)
    env = os.environ
    return DockerEnv(
        docker_url=env['CRYPTOCLOUD_TEST_DOCKER_URL'],
        registry=env['CRYPTOCLOUD_TEST_REGISTRY'],
        registry_user=env.get('CRYPTOCLOUD_TEST_REGISTRY_USER'),
        registry_password=env.get('CRYPTOCLOUD_TEST_REGISTRY_PASSWORD'),
        vhsm_image=env['CRYPTOCLOUD_TEST_VHSM_IMAGE'],
        cryptoservice_image=env['CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE'])


class NodeContainers:
    """The containers some compute nodes made on the shared test engine.

    Node names are unique to a test, and every container carries its
    node's name as a label; other tests' containers are never seen.
    """

    def __init__(self, client, hosts: tuple[str, ...]):
        self.client = client
        self.hosts = hosts

    def list(self, all_states: bool = True) -> list:
        """Containers of the nodes; with ``all_states``, stopped ones too."""
        found = []
        for host in self.hosts:
            found += self.client.containers.list(
                all=all_states,
                filters={'label': '%s=%s' % (HOST_LABEL, host)})
        return found

    def by_workload(self) -> dict:
        """Container by workload id (vHSM or instance id)."""
        return {c.labels[ID_LABEL]: c for c in self.list()}

    def remove_all(self) -> None:
        import docker.errors

        for container in self.list():
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass  # removed meanwhile by its (dying) compute daemon
