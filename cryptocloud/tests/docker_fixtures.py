"""The test Docker Engine, its registry and a stand-in workload image.

``tools/docker-env.sh`` starts a Docker Engine and a registry with
htpasswd auth and exports where they are (``CRYPTOCLOUD_TEST_DOCKER_URL``,
``CRYPTOCLOUD_TEST_REGISTRY`` and its ``_USER`` and ``_PASSWORD``).
Tests that need them skip without them, unless
``CRYPTOCLOUD_TEST_REQUIRE_DOCKER=1`` makes that a failure.

``StubImage`` builds a small image from the local Debian base with
stand-in ``cryptocloud-vhsm`` and ``cryptocloud-cryptoservice`` programs
(stdlib Python), pushes it under a repository of its own and gives its
digest-pinned reference, so that the docker driver can be tested before
(and independently of) the real images.
"""

import dataclasses
import io
import os
import tarfile
import uuid

import docker
import docker.errors
import requests

BASE_IMAGE = 'cryptocloud-base:bookworm'
WORKLOAD_UID = 10001
LABEL_HOST = 'io.cryptocloud.host'

# Reads --config-file, listens where it says (and on the vHSM status
# port), reads the secret files it names at start and on SIGHUP, and
# answers /healthz, /metrics and, for the tests, /state (what it read, as
# SHA-256 digests), /sick (healthz answers 503 from then on) and /oom.
# With --healthcheck it is the image's HEALTHCHECK.
STUB_PROGRAM = r'''#!/usr/bin/env python3
import configparser
import hashlib
import http.server
import json
import os
import signal
import sys
import threading
import urllib.request

FILE_OPTS = ('master_key_file', 'auth_secret_file', 'vhsm_secret_file',
             'credentials_file')
STATE = {'reloads': 0, 'healthy': True, 'requests': 0}


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def load(config_file):
    parser = configparser.ConfigParser(interpolation=None)
    with open(config_file, encoding='utf-8') as f:
        parser.read_file(f)
    section = 'vhsm' if parser.has_section('vhsm') else 'cryptoservice'
    opts = parser[section]
    files = {'config': digest(config_file)}
    for opt in FILE_OPTS:
        if opt in opts:
            files[opt] = digest(opts[opt])
    status_port = opts.get('status_port')
    return {'section': section, 'host': opts.get('host', '127.0.0.1'),
            'port': int(opts['port']),
            'status_port': int(status_port) if status_port else None,
            'files': files}


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body, ctype='text/plain'):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        STATE['requests'] += 1
        if self.path == '/healthz':
            self.reply(200 if STATE['healthy'] else 503, 'ok\n')
        elif self.path == '/metrics':
            self.reply(200, 'stub_requests_total %d\n' % STATE['requests'])
        elif self.path == '/state':
            body = dict(STATE['config'], reloads=STATE['reloads'],
                        uid=os.getuid(), gid=os.getgid(), pid=os.getpid(),
                        program=os.path.basename(sys.argv[0]))
            self.reply(200, json.dumps(body), 'application/json')
        elif self.path == '/sick':
            STATE['healthy'] = False
            self.reply(200, 'sick\n')
        elif self.path == '/oom':
            hog = []
            while True:
                hog.append(b'x' * (16 << 20))
        else:
            self.reply(404, 'no\n')

    def log_message(self, fmt, *args):
        sys.stdout.write('stub: %s\n' % (fmt % args))
        sys.stdout.flush()


class Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


def healthcheck():
    with open('/proc/1/cmdline', 'rb') as f:
        argv = f.read().decode().split('\0')
    config = load(argv[argv.index('--config-file') + 1])
    port = config['status_port'] or config['port']
    url = 'http://%s:%d/healthz' % (config['host'], port)
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 0 if resp.status == 200 else 1
    except Exception as exc:
        print(exc)
        return 1


def main():
    if '--healthcheck' in sys.argv:
        return healthcheck()
    config_file = sys.argv[sys.argv.index('--config-file') + 1]
    STATE['config'] = load(config_file)
    stop = threading.Event()

    def on_hup(signum, frame):
        STATE['config'] = load(config_file)
        STATE['reloads'] += 1
        print('stub: reloaded', flush=True)

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    config = STATE['config']
    servers = []
    for port in (config['port'], config['status_port']):
        if port:
            server = Server((config['host'], port), Handler)
            threading.Thread(target=server.serve_forever,
                             daemon=True).start()
            servers.append(server)
    print('stub: %s listening on %s:%s' % (
        config['section'], config['host'], config['port']), flush=True)
    while not stop.wait(0.2):
        pass
    for server in servers:
        server.shutdown()
    print('stub: stopped', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
'''

DOCKERFILE = '''FROM %(base)s
RUN groupadd -g %(uid)d cryptocloud \\
    && useradd -u %(uid)d -g %(uid)d -M -d /nonexistent \\
       -s /usr/sbin/nologin cryptocloud
COPY stub /usr/local/bin/cryptocloud-vhsm
COPY stub /usr/local/bin/cryptocloud-cryptoservice
USER %(uid)d:%(uid)d
HEALTHCHECK --interval=1s --timeout=3s --retries=1 \\
    CMD ["cryptocloud-vhsm", "--healthcheck"]
'''


@dataclasses.dataclass
class DockerSettings:
    """Where the test engine and registry are."""

    url: str
    registry: str
    username: str
    password: str


def docker_settings() -> DockerSettings | None:
    """The test engine and registry from the environment, or None."""
    env = os.environ
    url = env.get('CRYPTOCLOUD_TEST_DOCKER_URL')
    registry = env.get('CRYPTOCLOUD_TEST_REGISTRY')
    if not url or not registry:
        return None
    return DockerSettings(url, registry,
                          env.get('CRYPTOCLOUD_TEST_REGISTRY_USER', ''),
                          env.get('CRYPTOCLOUD_TEST_REGISTRY_PASSWORD', ''))


def require_docker(testcase) -> DockerSettings:
    """The settings; skip (or fail if required) when there are none."""
    settings = docker_settings()
    if settings is None:
        why = ('no test Docker Engine and registry: source '
               'tools/setup-env.sh and tools/docker-env.sh to set '
               'CRYPTOCLOUD_TEST_DOCKER_URL and CRYPTOCLOUD_TEST_REGISTRY')
        if os.environ.get('CRYPTOCLOUD_TEST_REQUIRE_DOCKER') == '1':
            testcase.fail(why)
        testcase.skipTest(why)
    return settings


def client(settings: DockerSettings) -> docker.DockerClient:
    """A client of the test engine."""
    return docker.DockerClient(base_url=settings.url, version='auto',
                               timeout=120)


def remove_host_containers(engine: docker.DockerClient, host: str) -> None:
    """Remove every container labelled with compute host ``host``."""
    for container in engine.containers.list(
            all=True, filters={'label': '%s=%s' % (LABEL_HOST, host)}):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass


def _tar_context(files: dict[str, tuple[bytes, int]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


class StubImage:
    """The stand-in workload image, in a registry repository of its own."""

    def __init__(self, settings: DockerSettings,
                 base: str = BASE_IMAGE) -> None:
        self.settings = settings
        self.base = base
        self.engine = client(settings)
        self.repository = '%s/cryptocloud-test/stub-%s' % (
            settings.registry, uuid.uuid4().hex[:12])
        self.tag = 'test'
        self.digest: str | None = None

    @property
    def auth(self) -> dict:
        return {'username': self.settings.username,
                'password': self.settings.password,
                'serveraddress': self.settings.registry}

    @property
    def reference(self) -> str:
        """``registry/repository@sha256:...``."""
        return '%s@%s' % (self.repository, self.digest)

    def build_and_push(self) -> str:
        """Build, push and return the digest-pinned reference."""
        context = _tar_context({
            'Dockerfile': ((DOCKERFILE % {'base': self.base,
                                          'uid': WORKLOAD_UID}).encode(),
                           0o644),
            'stub': (STUB_PROGRAM.encode(), 0o755)})
        name = '%s:%s' % (self.repository, self.tag)
        self.engine.images.build(fileobj=context, custom_context=True,
                                 tag=name, rm=True, forcerm=True,
                                 network_mode='none')
        for message in self.engine.api.push(
                self.repository, tag=self.tag, stream=True, decode=True,
                auth_config=self.auth):
            if message.get('error'):
                raise RuntimeError('push of %s failed: %s'
                                   % (name, message['error']))
            aux = message.get('aux') or {}
            if aux.get('Digest'):
                self.digest = aux['Digest']
        if not self.digest:
            raise RuntimeError('push of %s reported no digest' % name)
        return self.reference

    def forget_locally(self) -> None:
        """Drop this repository's local names: a start must pull."""
        for ref in ('%s:%s' % (self.repository, self.tag), self.reference):
            try:
                self.engine.images.remove(ref)
            except docker.errors.NotFound:
                pass

    def cleanup(self) -> None:
        """Remove the local names and the manifest in the registry."""
        if self.digest is None:
            return
        try:
            self.forget_locally()
        except docker.errors.APIError:
            pass
        url = 'http://%s/v2/%s/manifests/%s' % (
            self.settings.registry,
            self.repository.split('/', 1)[1], self.digest)
        try:
            requests.delete(url, auth=(self.settings.username,
                                       self.settings.password),
                            timeout=10)
        except requests.RequestException:
            pass
        self.engine.close()
