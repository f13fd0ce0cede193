"""The docker driver: workloads as containers of a Docker Engine.

Each workload runs the ``cryptocloud-vhsm`` or ``cryptocloud-cryptoservice``
program of an image pulled by digest from the image registry ([registry]).
Its files live in ``<state_path>/workloads/<workload_id>/`` as with the
process driver, but owned by the image's user ([docker] workload_user):

- ``<kind>.conf`` and the extra files of the spec, mode 0600;
- copies of the node files it reads (the master key), mode 0400;
- ``workload.json``: kind, ports and non-secret metadata, owned by the
  daemon (the workload does not read it).

The directory is bind-mounted read-only at the same path inside the
container, so the paths in the config text hold there too.  Config and
secrets reach the container only as these files: never as environment
variables, command-line values, labels or image layers.

The container is named ``cryptocloud-<host>-<workload_id>`` and labelled
(``io.cryptocloud.*``) with its compute host name, workload id, kind,
address, ports and metadata.  Those labels are the only state the driver
needs, so a restarted daemon adopts running containers through them, and
several compute daemons sharing one engine under distinct host names each
see and touch only their own containers.  A container whose directory is
gone is an orphan and is removed when the driver starts.

A prepared workload (a cold standby) has its files written, its image
pulled and its container created with every setting of a started one,
but not started; the label ``io.cryptocloud.prepared=1`` tells it from a
container whose start failed, and ``activate`` starts it.  ``deactivate``
replaces a workload's container by a prepared one built from its
``workload.json``, so that it can be activated again.

The program is the container's PID 1 (no init process): both programs
handle SIGTERM and SIGHUP, and the engine's ``State.Pid`` is then the
program itself, whose CPU time the compute probes read from /proc.
Containers run as the workload user with a read-only root file system
(a private tmpfs on /tmp), no capabilities, no new privileges, no swap
beyond their memory limit and no restart policy: the control plane
replaces a failed workload.

Engine errors become ``WorkloadDriverError`` (``WorkloadStartFailed`` from
``start``) with the engine's own message; an image pull runs in a thread
of its own and a start waits for it at most ``[docker] pull_timeout``
seconds, as the engine's pull call has no deadline.
"""

import collections
import configparser
import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from concurrent import futures

import docker
import docker.errors
import docker.types
import requests
import urllib3
from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.compute.drivers import base
from cryptocloud.conf import CONF

LOG = logging.getLogger(__name__)

PROGRAMS = {base.VHSM: 'cryptocloud-vhsm',
            base.CRYPTOSERVICE: 'cryptocloud-cryptoservice'}
META_FILE = 'workload.json'

LABEL_PREFIX = 'io.cryptocloud.'
LABEL_WORKLOAD_ID = LABEL_PREFIX + 'workload_id'
LABEL_KIND = LABEL_PREFIX + 'kind'
LABEL_HOST = LABEL_PREFIX + 'host'
LABEL_ADDRESS = LABEL_PREFIX + 'address'
LABEL_PORT = LABEL_PREFIX + 'port'
LABEL_STATUS_PORT = LABEL_PREFIX + 'status_port'
LABEL_METADATA = LABEL_PREFIX + 'metadata'
LABEL_WORKDIR = LABEL_PREFIX + 'workdir'
LABEL_PREPARED = LABEL_PREFIX + 'prepared'

_IMAGE_REF = re.compile(r'^[^@\s]+/[^@\s]+@sha256:[0-9a-f]{64}$')
_NAME_CHARS = re.compile(r'[^A-Za-z0-9_.-]')
_HEALTH_OUTPUT_CHARS = 200
# What a call to the engine raises when the engine refuses it or cannot
# be reached (docker.errors.NotFound is handled by the callers first).
_ENGINE_ERRORS = (docker.errors.DockerException,
                  requests.exceptions.RequestException,
                  urllib3.exceptions.HTTPError)


def container_name(host: str, workload_id: str) -> str:
    """The deterministic container name of a workload of ``host``."""
    base.check_workload_id(workload_id)
    return 'cryptocloud-%s-%s' % (_NAME_CHARS.sub('-', host), workload_id)


def _os_error(exc: BaseException) -> OSError | None:
    """The innermost OS error behind ``exc`` (refused, no such file...)."""
    todo = [exc]
    seen = set()
    while todo:
        err = todo.pop(0)
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno:
            return err
        nested = [getattr(err, 'reason', None), err.__cause__,
                  err.__context__, *getattr(err, 'args', ())]
        todo.extend(e for e in nested if isinstance(e, BaseException))
    return None


def _root_cause(exc: BaseException) -> str:
    err = _os_error(exc)
    if err is None:
        return str(exc)
    return err.strerror or str(err)


def _parse_user(user: str) -> tuple[int, int]:
    uid, _, gid = user.partition(':')
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        raise exception.ConfigurationError(
            reason='[docker] workload_user must be uid:gid, not %r'
                   % user) from None


class _PullError(Exception):
    """The engine reported an error in the middle of a pull."""


class DockerDriver(base.WorkloadDriver):
    """Runs workloads as containers of the Docker Engine of this node."""

    shares_node_filesystem = False

    def __init__(self, state_path: str, conf=None, *,
                 host: str | None = None) -> None:
        super().__init__(state_path)
        if conf is None:
            conf = CONF
        self.host = host or conf.compute.host or socket.gethostname()
        opts = conf.docker
        self.url = opts.url
        self.api_timeout = opts.api_timeout
        self.pull_timeout = opts.pull_timeout
        self.network_mode = opts.network_mode
        self.stop_timeout = opts.stop_timeout
        self.user = opts.workload_user
        self.uid, self.gid = _parse_user(opts.workload_user)
        self.limits = {
            base.VHSM: (opts.vhsm_cpus, opts.vhsm_memory_mb),
            base.CRYPTOSERVICE: (opts.instance_cpus,
                                 opts.instance_memory_mb),
        }
        self.registry_address = conf.registry.address
        self.registry_username = conf.registry.username
        self.registry_password = conf.registry.password
        self._client: docker.DockerClient | None = None
        # Guards the client, the pulls, the workload locks and the
        # workloads being started; never held across a call to the engine.
        self._lock = threading.Lock()
        # One lock per workload serializes start, update, stop of it (a
        # start may wait minutes for a pull); status() and list() only
        # read and take none of them.
        self._workload_locks: dict[str, threading.Lock] = (
            collections.defaultdict(threading.Lock))
        self._starting: dict[str, base.WorkloadSpec] = {}
        self._pulls: dict[str, futures.Future] = {}
        os.makedirs(self._root(), mode=0o700, exist_ok=True)
        try:
            self.remove_orphans()
        except exception.WorkloadDriverError as exc:
            # The engine may come up after the daemon; list() will say.
            LOG.warning('Could not look for orphan containers: %s', exc)

    # -- the engine -------------------------------------------------------

    def _docker(self) -> docker.DockerClient:
        client = self._client
        if client is not None:
            return client
        # Connecting asks the engine its API version: not under the lock,
        # which must never wait on the engine.
        try:
            client = docker.DockerClient(base_url=self.url, version='auto',
                                         timeout=self.api_timeout)
        except _ENGINE_ERRORS as exc:
            raise exception.WorkloadDriverError(
                reason=self._describe(exc, 'connecting')) from None
        with self._lock:
            if self._client is None:
                self._client = client
                return client
        client.close()
        return self._client

    @property
    def _api(self) -> docker.APIClient:
        return self._docker().api

    def _lock_for(self, workload_id: str) -> threading.Lock:
        with self._lock:
            return self._workload_locks[workload_id]

    def _describe(self, exc: BaseException, what: str) -> str:
        """A one-line account of an engine error for operators."""
        if isinstance(exc, docker.errors.APIError):
            detail = exc.explanation or str(exc)
            if isinstance(detail, bytes):
                detail = detail.decode('utf-8', 'replace')
            return ('the Docker Engine at %s refused %s: %s'
                    % (self.url, what, str(detail).strip()))
        if isinstance(exc, (requests.exceptions.Timeout,
                            urllib3.exceptions.TimeoutError)):
            return ('the Docker Engine at %s did not answer %s within '
                    '%d s ([docker] api_timeout)'
                    % (self.url, what, self.api_timeout))
        if isinstance(exc, (requests.exceptions.ConnectionError,
                            urllib3.exceptions.HTTPError)) or (
                _os_error(exc) is not None):
            return ('cannot reach the Docker Engine at %s (%s): %s'
                    % (self.url, what, _root_cause(exc)))
        if isinstance(exc, docker.errors.DockerException):
            return ('cannot use the Docker Engine at %s (%s): %s'
                    % (self.url, what, _root_cause(exc)))
        return '%s failed: %s' % (what, exc)

    @contextlib.contextmanager
    def _engine(self, what: str):
        """Turn engine errors into WorkloadDriverError (NotFound passes)."""
        try:
            yield
        except docker.errors.NotFound:
            raise
        except _ENGINE_ERRORS as exc:
            raise exception.WorkloadDriverError(
                reason=self._describe(exc, what)) from None

    # -- paths and files --------------------------------------------------

    def _root(self) -> str:
        return os.path.join(self.state_path, 'workloads')

    def _config_path(self, workload_id: str, kind: str) -> str:
        return os.path.join(self.workdir(workload_id), '%s.conf' % kind)

    def container_name(self, workload_id: str) -> str:
        """The name of the workload's container on this host."""
        return container_name(self.host, workload_id)

    def _chown(self, fd: int, what: str) -> None:
        if (self.uid, self.gid) == (os.geteuid(), os.getegid()):
            return
        try:
            os.fchown(fd, self.uid, self.gid)
        except PermissionError:
            raise exception.WorkloadDriverError(
                reason='cannot give %s to the workload user %s: the '
                       'compute daemon must run as root or as that user '
                       '([docker] workload_user)' % (what, self.user)
            ) from None

    def _write_owned(self, path: str, data: bytes, mode: int) -> None:
        """Replace ``path`` atomically, owned by the workload user."""
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path),
                                   prefix='.tmp-')
        try:
            with os.fdopen(fd, 'wb') as f:
                os.fchmod(f.fileno(), mode)
                self._chown(f.fileno(), os.path.basename(path))
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _write_meta(self, path: str, meta: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path),
                                   prefix='.tmp-')
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(json.dumps(meta, sort_keys=True) + '\n')
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _config_text(self, spec: base.WorkloadSpec) -> str:
        if self.network_mode != 'bridge':
            return spec.config_text
        # On the bridge the container has its own addresses: the program
        # listens on all of them and the engine publishes its ports on
        # the spec's address only.
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(spec.config_text)
        if parser.has_section(spec.kind):
            parser.set(spec.kind, 'host', '0.0.0.0')
        out = io.StringIO()
        parser.write(out)
        return out.getvalue()

    def _write_files(self, spec: base.WorkloadSpec) -> str:
        """Write config, files and node file copies; the config path."""
        workdir = self.workdir(spec.workload_id)
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        dir_fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fchmod(dir_fd, 0o700)
            self._chown(dir_fd, 'the workload directory')
        finally:
            os.close(dir_fd)
        for name, text in spec.files.items():
            base.check_file_name(name)
            self._write_owned(os.path.join(workdir, name),
                              text.encode('utf-8'), 0o600)
        for name, source in spec.node_files.items():
            base.check_file_name(name)
            # A copy: the container cannot follow a link out of its
            # mount, and only its user may read it.
            with open(source, 'rb') as f:
                data = f.read()
            self._write_owned(os.path.join(workdir, name), data, 0o400)
        config_file = self._config_path(spec.workload_id, spec.kind)
        self._write_owned(config_file, self._config_text(spec).encode(
            'utf-8'), 0o600)
        self._write_meta(os.path.join(workdir, META_FILE), {
            'workload_id': spec.workload_id, 'kind': spec.kind,
            'host': spec.host, 'port': spec.port,
            'status_port': spec.status_port,
            'metadata': self._metadata(spec),
            'config_file': config_file})
        return config_file

    def _read_meta(self, workload_id: str) -> dict | None:
        path = os.path.join(self.workdir(workload_id), META_FILE)
        try:
            with open(path, encoding='utf-8') as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            LOG.warning('Cannot read %s: %s', path, exc)
            return None

    @staticmethod
    def _metadata(spec: base.WorkloadSpec) -> dict:
        metadata = dict(spec.metadata)
        metadata['image'] = spec.image
        return metadata

    # -- images -----------------------------------------------------------

    @staticmethod
    def _check_image(spec: base.WorkloadSpec) -> str:
        if not spec.image:
            raise exception.ConfigurationError(
                reason='workload %s has no image: the docker driver runs '
                       'workloads from the %s image of the registry, and '
                       'none was published (run "cryptocloud-manage '
                       'images build --push")'
                       % (spec.workload_id, spec.kind))
        if not _IMAGE_REF.match(spec.image):
            raise exception.InvalidInput(
                reason='image %r is not a registry reference pinned by '
                       'digest (host:port/repository@sha256:...)'
                       % spec.image[:200])
        return spec.image

    def _auth_for(self, image: str) -> dict | None:
        # Credentials go to our own registry only.
        if (self.registry_username
                and image.split('/', 1)[0] == self.registry_address):
            return {'username': self.registry_username,
                    'password': self.registry_password or '',
                    'serveraddress': self.registry_address}
        return None

    def _pull(self, image: str, future: futures.Future) -> None:
        """Pull ``image`` (in its own thread); report through ``future``."""
        try:
            repository, digest = image.rsplit('@', 1)
            started = time.monotonic()
            LOG.info('Pulling image %s.', image)
            messages = self._api.pull(repository, tag=digest, stream=True,
                                      decode=True,
                                      auth_config=self._auth_for(image))
            for message in messages:
                if isinstance(message, dict) and message.get('error'):
                    raise _PullError(message['error'])
            self._api.inspect_image(image)
            LOG.info('Pulled image %s in %.1f s.', image,
                     time.monotonic() - started)
            future.set_result(None)
        except exception.WorkloadDriverError as exc:
            future.set_exception(exc)
        except _PullError as exc:
            future.set_exception(exception.WorkloadDriverError(
                reason='could not pull image %s: %s' % (image, exc)))
        except Exception as exc:
            future.set_exception(exception.WorkloadDriverError(
                reason='could not pull image %s: %s'
                       % (image, self._describe(exc, 'the pull'))))
        finally:
            with self._lock:
                if self._pulls.get(image) is future:
                    del self._pulls[image]

    def _ensure_image(self, image: str) -> None:
        """Pull ``image`` unless present; at most ``pull_timeout`` s."""
        try:
            with self._engine('inspecting image %s' % image):
                self._api.inspect_image(image)
            return
        except docker.errors.NotFound:
            pass
        with self._lock:
            future = self._pulls.get(image)
            if future is None:
                # One pull per image, however many workloads wait on it.
                future = futures.Future()
                self._pulls[image] = future
                threading.Thread(target=self._pull, args=(image, future),
                                 name='docker-pull', daemon=True).start()
        try:
            future.result(timeout=self.pull_timeout)
        except futures.TimeoutError:
            with self._lock:
                # The engine's pull has no deadline of its own: let the
                # next start try afresh instead of waiting on this one.
                if self._pulls.get(image) is future:
                    del self._pulls[image]
            raise exception.WorkloadDriverError(
                reason='pulling image %s took longer than %d s ([docker] '
                       'pull_timeout)' % (image, self.pull_timeout)
            ) from None

    # -- containers -------------------------------------------------------

    def container_config(self, spec: base.WorkloadSpec, config_file: str,
                         prepared: bool = False) -> dict:
        """Keyword arguments of ``containers.create`` for ``spec``."""
        workdir = self.workdir(spec.workload_id)
        cpus, memory_mb = self.limits[spec.kind]
        labels = {
            LABEL_WORKLOAD_ID: spec.workload_id,
            LABEL_KIND: spec.kind,
            LABEL_HOST: self.host,
            LABEL_ADDRESS: spec.host,
            LABEL_PORT: str(spec.port),
            LABEL_STATUS_PORT: ('' if spec.status_port is None
                                else str(spec.status_port)),
            LABEL_METADATA: json.dumps(self._metadata(spec),
                                       sort_keys=True),
            LABEL_WORKDIR: workdir,
        }
        if prepared:
            labels[LABEL_PREPARED] = '1'
        kwargs = {
            'image': spec.image,
            'command': [PROGRAMS[spec.kind], '--config-file', config_file],
            'name': self.container_name(spec.workload_id),
            'labels': labels,
            'user': self.user,
            'mounts': [docker.types.Mount(target=workdir, source=workdir,
                                          type='bind', read_only=True)],
            'read_only': True,
            # The container's own /tmp, not the node's.
            'tmpfs': {'/tmp': 'rw,nosuid,nodev,noexec,size=64m'},  # noqa: S108
            'cap_drop': ['ALL'],
            'security_opt': ['no-new-privileges'],
            'restart_policy': {'Name': 'no'},
            'stop_signal': 'SIGTERM',
            'network_mode': self.network_mode,
        }
        if self.network_mode == 'bridge':
            ports = [spec.port]
            if spec.status_port:
                ports.append(spec.status_port)
            kwargs['ports'] = {'%d/tcp' % p: (spec.host, p) for p in ports}
        if cpus:
            kwargs['nano_cpus'] = int(cpus * 1e9)
        if memory_mb:
            # As much swap as memory, i.e. none: keys stay off the disk.
            kwargs['mem_limit'] = '%dm' % memory_mb
            kwargs['memswap_limit'] = '%dm' % memory_mb
        return kwargs

    def _find_container(self, workload_id: str) -> dict | None:
        """The inspected container of the workload on this host, or None."""
        name = self.container_name(workload_id)
        try:
            with self._engine('inspecting container %s' % name):
                attrs = self._api.inspect_container(name)
        except docker.errors.NotFound:
            return None
        labels = (attrs.get('Config') or {}).get('Labels') or {}
        if (labels.get(LABEL_HOST) != self.host
                or labels.get(LABEL_WORKLOAD_ID) != workload_id):
            # Another host whose name sanitizes alike, or not ours.
            return None
        return attrs

    def _our_containers(self) -> list[dict]:
        """Every container labelled with this host, inspected."""
        filters = {'label': ['%s=%s' % (LABEL_HOST, self.host),
                             LABEL_WORKLOAD_ID]}
        with self._engine('listing containers'):
            found = self._api.containers(all=True, filters=filters)
        result = []
        for entry in found:
            try:
                with self._engine('inspecting container %s'
                                  % entry['Id'][:12]):
                    attrs = self._api.inspect_container(entry['Id'])
            except docker.errors.NotFound:
                continue  # removed meanwhile
            labels = (attrs.get('Config') or {}).get('Labels') or {}
            try:
                base.check_workload_id(labels.get(LABEL_WORKLOAD_ID))
            except exception.InvalidInput:
                continue
            result.append(attrs)
        return result

    def _remove_container(self, container_id: str, *,
                          timeout: int | None = None) -> None:
        """Stop (``timeout`` s after SIGTERM) and remove; gone is fine."""
        with self._engine('stopping container %s' % container_id[:12]):
            if timeout is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    self._api.stop(container_id, timeout=timeout)
            try:
                self._api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                # Another caller removes it already.
                if 'already in progress' not in str(exc.explanation):
                    raise

    # -- status -----------------------------------------------------------

    def _status_from(self, attrs: dict) -> base.WorkloadStatus:
        labels = attrs['Config'].get('Labels') or {}
        workload_id = labels[LABEL_WORKLOAD_ID]
        kind = labels.get(LABEL_KIND, base.VHSM)
        try:
            metadata = json.loads(labels.get(LABEL_METADATA) or '{}')
        except ValueError:
            metadata = {}
        metadata['config_file'] = self._config_path(workload_id, kind)

        def port(label):
            value = labels.get(label)
            return int(value) if value and value.isdigit() else None

        short_id = attrs['Id'][:12]
        status = base.WorkloadStatus(
            workload_id=workload_id, kind=kind, state=base.EXITED,
            host=labels.get(LABEL_ADDRESS, '127.0.0.1'),
            port=port(LABEL_PORT), status_port=port(LABEL_STATUS_PORT),
            workload_ref='docker:%s' % short_id, metadata=metadata)
        state = attrs.get('State') or {}
        engine_state = state.get('Status')
        if engine_state in ('running', 'paused'):
            status.state = base.RUNNING
            status.pid = state.get('Pid') or None
            health = state.get('Health') or {}
            if engine_state == 'paused':
                status.reason = 'container %s is paused' % short_id
            elif health.get('Status') == 'unhealthy':
                log = health.get('Log') or [{}]
                output = ' '.join(str(log[-1].get('Output') or '').split())
                status.reason = ('container healthcheck: unhealthy (%s)'
                                 % output[:_HEALTH_OUTPUT_CHARS])
        elif engine_state == 'restarting' or (
                engine_state == 'created' and workload_id in self._starting):
            status.state = base.STARTING
            status.reason = 'container %s is %s' % (short_id, engine_state)
        elif engine_state == 'created' and labels.get(LABEL_PREPARED) == '1':
            status.state = base.PREPARED
            status.reason = ('prepared: container %s is created, ready to '
                             'be activated%s'
                             % (short_id, '' if not state.get('Error')
                                else '; engine error: %s' % state['Error']))
        elif engine_state == 'created':
            status.reason = ('container %s was created but never started%s'
                             % (short_id, '' if not state.get('Error')
                                else ': %s' % state['Error']))
        else:
            reason = ('container %s exited with status %s'
                      % (short_id, state.get('ExitCode')))
            if state.get('OOMKilled'):
                memory = (attrs.get('HostConfig') or {}).get('Memory')
                reason += (' (OOMKilled: out of memory%s)'
                           % (', limit %d MiB' % (memory // 2 ** 20)
                              if memory else ''))
            if state.get('Error'):
                reason += '; engine error: %s' % state['Error']
            if engine_state not in ('exited', None):
                reason += ' (%s)' % engine_state
            status.reason = reason
        return status

    def _status_without_container(self, workload_id: str,
                                  starting: bool) -> base.WorkloadStatus:
        spec = self._starting.get(workload_id)
        meta = self._read_meta(workload_id)
        if spec is not None:
            meta = {'kind': spec.kind, 'host': spec.host,
                    'port': spec.port, 'status_port': spec.status_port,
                    'metadata': self._metadata(spec)}
            starting = True
        if meta is None:
            return base.WorkloadStatus(workload_id=workload_id,
                                       kind=base.VHSM, state=base.MISSING,
                                       reason='no such workload')
        kind = meta.get('kind', base.VHSM)
        metadata = dict(meta.get('metadata') or {})
        metadata['config_file'] = self._config_path(workload_id, kind)
        status = base.WorkloadStatus(
            workload_id=workload_id, kind=kind, state=base.EXITED,
            host=meta.get('host', '127.0.0.1'), port=meta.get('port'),
            status_port=meta.get('status_port'), metadata=metadata)
        if starting:
            status.state = base.STARTING
            status.reason = 'pulling its image or creating its container'
        else:
            status.reason = ('its container %s is gone'
                             % self.container_name(workload_id))
        return status

    def _status(self, workload_id: str) -> base.WorkloadStatus:
        starting = workload_id in self._starting
        attrs = self._find_container(workload_id)
        if attrs is not None:
            return self._status_from(attrs)
        return self._status_without_container(workload_id, starting)

    def status(self, workload_id: str) -> base.WorkloadStatus:
        """The workload's state from its container (labels, State)."""
        base.check_workload_id(workload_id)
        return self._status(workload_id)

    # -- workloads --------------------------------------------------------

    def start(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Pull the image if needed, write the files, run the container."""
        return self._provision(spec, run=True)

    def prepare(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Pull the image, write the files, create the container only."""
        return self._provision(spec, run=False)

    def _provision(self, spec: base.WorkloadSpec,
                   run: bool) -> base.WorkloadStatus:
        failure = (exception.WorkloadStartFailed if run
                   else exception.WorkloadPrepareFailed)
        image = self._check_image(spec)
        workload_id = spec.workload_id
        with self._lock_for(workload_id):
            try:
                attrs = self._find_container(workload_id)
            except exception.WorkloadDriverError as exc:
                raise failure(workload_id=workload_id,
                              reason=exc.kwargs['reason']) from None
            if attrs is not None:
                current = self._status_from(attrs)
                if current.state == base.RUNNING:
                    raise exception.Conflict(
                        reason='workload %s is already running'
                               % workload_id)
            with self._lock:
                self._starting[workload_id] = spec
            try:
                if attrs is not None:
                    LOG.info('Removing the earlier container %s of '
                             'workload %s.', attrs['Id'][:12], workload_id)
                    self._remove_container(attrs['Id'])
                self._ensure_image(image)
                config_file = self._write_files(spec)
                self._run(spec, config_file, start=run)
            except (exception.WorkloadDriverError, OSError) as exc:
                reason = (exc.kwargs['reason']
                          if isinstance(exc, exception.WorkloadDriverError)
                          else '%s: %s' % (type(exc).__name__, exc))
                self._clean_failed_start(workload_id)
                LOG.error('Workload %s (%s) could not be %s: %s',
                          workload_id, spec.kind,
                          'started' if run else 'prepared', reason)
                raise failure(workload_id=workload_id,
                              reason=reason) from None
            except BaseException:
                self._clean_failed_start(workload_id)
                raise
            finally:
                with self._lock:
                    self._starting.pop(workload_id, None)
            status = self._status(workload_id)
            LOG.info('%s %s workload %s (%s, image %s, port %s).',
                     'Started' if run else 'Prepared', spec.kind,
                     workload_id, status.workload_ref, image, spec.port)
            return status

    def _run(self, spec: base.WorkloadSpec, config_file: str,
             start: bool = True) -> None:
        kwargs = self.container_config(spec, config_file,
                                       prepared=not start)
        name = kwargs['name']
        try:
            with self._engine('creating container %s' % name):
                container = self._docker().containers.create(**kwargs)
            if start:
                with self._engine('starting container %s' % name):
                    container.start()
        except docker.errors.NotFound as exc:
            # The image (or the container) vanished meanwhile.
            raise exception.WorkloadDriverError(
                reason=self._describe(exc, 'running %s' % name)) from None

    def activate(self, workload_id: str) -> base.WorkloadStatus:
        """Start the created container of a prepared workload."""
        base.check_workload_id(workload_id)
        with self._lock_for(workload_id):
            try:
                attrs = self._find_container(workload_id)
            except exception.WorkloadDriverError as exc:
                raise exception.WorkloadStartFailed(
                    workload_id=workload_id, reason=exc.kwargs['reason']
                ) from None
            current = (self._status_from(attrs) if attrs is not None
                       else self._status_without_container(workload_id,
                                                           False))
            if current.state == base.RUNNING:
                return current
            if current.state != base.PREPARED:
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=current.state, action='activate')
            name = self.container_name(workload_id)
            try:
                with self._engine('starting container %s' % name):
                    self._api.start(attrs['Id'])
            except docker.errors.NotFound as exc:
                raise exception.WorkloadStartFailed(
                    workload_id=workload_id,
                    reason=self._describe(exc, 'starting %s' % name)
                ) from None
            except exception.WorkloadDriverError as exc:
                raise exception.WorkloadStartFailed(
                    workload_id=workload_id, reason=exc.kwargs['reason']
                ) from None
            status = self._status(workload_id)
            LOG.info('Activated %s workload %s (%s, port %s).',
                     current.kind, workload_id, status.workload_ref,
                     current.port)
            return status

    def _spec_from_meta(self, workload_id: str) -> base.WorkloadSpec | None:
        """The spec of a workload whose files are written, from its
        ``workload.json`` (no config text: the files are there)."""
        meta = self._read_meta(workload_id)
        if meta is None:
            return None
        metadata = dict(meta.get('metadata') or {})
        image = metadata.pop('image', None)
        return base.WorkloadSpec(
            workload_id=workload_id, kind=meta.get('kind', base.VHSM),
            port=meta.get('port'), config_text='',
            workdir=self.workdir(workload_id),
            status_port=meta.get('status_port'),
            host=meta.get('host', '127.0.0.1'), metadata=metadata,
            image=image)

    def deactivate(self, workload_id: str) -> base.WorkloadStatus:
        """Replace the container by a prepared (created) one."""
        base.check_workload_id(workload_id)
        with self._lock_for(workload_id):
            attrs = self._find_container(workload_id)
            spec = self._spec_from_meta(workload_id)
            if spec is None or not spec.image:
                current = (self._status_from(attrs) if attrs is not None
                           else self._status_without_container(
                               workload_id, False))
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=current.state, action='deactivate')
            if attrs is not None:
                if self._status_from(attrs).state == base.PREPARED:
                    return self._status_from(attrs)
                self._remove_container(attrs['Id'],
                                       timeout=self.stop_timeout)
            # The image normally is still here; a prune may have taken it.
            self._ensure_image(spec.image)
            self._run(spec, self._config_path(workload_id, spec.kind),
                      start=False)
            LOG.info('Deactivated workload %s: prepared again.',
                     workload_id)
            return self._status(workload_id)

    def _clean_failed_start(self, workload_id: str) -> None:
        """Remove what a failed start left (the caller will not)."""
        try:
            attrs = self._find_container(workload_id)
            if attrs is not None:
                self._remove_container(attrs['Id'])
        except exception.WorkloadDriverError as exc:
            LOG.warning('Could not remove the container of the failed '
                        'workload %s: %s', workload_id, exc)
        shutil.rmtree(self.workdir(workload_id), ignore_errors=True)

    def update(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Rewrite the files of a running workload and send SIGHUP.

        A prepared workload only gets its files rewritten: its container
        reads them when it starts.
        """
        workload_id = spec.workload_id
        with self._lock_for(workload_id):
            current = self._status(workload_id)
            if current.state not in (base.RUNNING, base.PREPARED):
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=current.state, action='update')
            running_image = current.metadata.get('image')
            if spec.image and spec.image != running_image:
                LOG.warning('Workload %s runs image %s; an update does not '
                            'change it to %s.', workload_id, running_image,
                            spec.image)
            # The labels keep the image the container runs.
            self._write_files(dataclasses.replace(spec,
                                                  image=running_image))
            if current.state == base.RUNNING:
                self._hup(workload_id)
            return self._status(workload_id)

    def reload(self, workload_id: str) -> None:
        """Send SIGHUP: the program re-reads its config in place."""
        base.check_workload_id(workload_id)
        with self._lock_for(workload_id):
            current = self._status(workload_id)
            if current.state != base.RUNNING:
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=current.state, action='reload')
            self._hup(workload_id)

    def _hup(self, workload_id: str) -> None:
        name = self.container_name(workload_id)
        try:
            with self._engine('signalling container %s' % name):
                self._api.kill(name, signal='SIGHUP')
        except docker.errors.NotFound:
            pass

    def stop(self, workload_id: str) -> None:
        """Stop and remove the container, then its files; gone is fine."""
        base.check_workload_id(workload_id)
        workdir = self.workdir(workload_id)
        with self._lock_for(workload_id):
            attrs = self._find_container(workload_id)
            if attrs is not None:
                self._remove_container(attrs['Id'],
                                       timeout=self.stop_timeout)
            had_files = os.path.isdir(workdir)
            if had_files:
                shutil.rmtree(workdir, ignore_errors=True)
            if attrs is not None or had_files:
                LOG.info('Stopped and removed workload %s.', workload_id)

    def remove_orphans(self) -> list[str]:
        """Remove this host's containers whose directory is gone."""
        removed = []
        for attrs in self._our_containers():
            labels = attrs['Config'].get('Labels') or {}
            workload_id = labels[LABEL_WORKLOAD_ID]
            workdir = labels.get(LABEL_WORKDIR) or self.workdir(workload_id)
            with self._lock_for(workload_id):
                if workload_id in self._starting or os.path.isdir(workdir):
                    continue
                LOG.warning('Removing orphan container %s (%s) of workload '
                            '%s: its directory %s is gone.',
                            attrs['Name'].lstrip('/'), attrs['Id'][:12],
                            workload_id, workdir)
                self._remove_container(attrs['Id'],
                                       timeout=self.stop_timeout)
            removed.append(workload_id)
        return removed

    def log_tail(self, workload_id: str, lines: int = 20) -> str:
        """The last ``lines`` lines the container wrote."""
        try:
            attrs = self._find_container(workload_id)
            if attrs is None:
                return ''
            with self._engine('reading logs'):
                data = self._api.logs(attrs['Id'], stdout=True, stderr=True,
                                     tail=lines)
        except (exception.WorkloadDriverError,
                docker.errors.NotFound) as exc:
            LOG.debug('No log of workload %s: %s', workload_id, exc)
            return ''
        return data.decode('utf-8', 'replace').rstrip('\n')

    def stats(self, workload_id: str) -> dict | None:
        """Memory and CPU figures of the container (``docker stats``)."""
        attrs = self._find_container(workload_id)
        if attrs is None:
            return None
        try:
            with self._engine('reading container stats'):
                raw = self._api.stats(attrs['Id'], stream=False)
        except docker.errors.NotFound:
            return None
        memory = raw.get('memory_stats') or {}
        detail = memory.get('stats') or {}
        # What `docker stats` shows: the page cache that can be dropped
        # does not count.
        inactive = detail.get('total_inactive_file',
                              detail.get('inactive_file', 0))
        usage = max(0, memory.get('usage', 0) - inactive)
        cpu = raw.get('cpu_stats') or {}
        pre = raw.get('precpu_stats') or {}
        total = (cpu.get('cpu_usage') or {}).get('total_usage', 0)
        pre_total = (pre.get('cpu_usage') or {}).get('total_usage', 0)
        system = cpu.get('system_cpu_usage') or 0
        pre_system = pre.get('system_cpu_usage') or 0
        online = cpu.get('online_cpus') or len(
            (cpu.get('cpu_usage') or {}).get('percpu_usage') or [1])
        share = 0.0
        if system > pre_system and total >= pre_total and pre_system:
            share = (total - pre_total) / (system - pre_system) * online
        return {'memory_bytes': usage,
                'memory_limit_bytes': memory.get('limit', 0),
                'cpu_seconds': total / 1e9,
                'cpu': round(share, 4),
                'pids': (raw.get('pids_stats') or {}).get('current', 0)}

    def list(self) -> list[base.WorkloadStatus]:
        """Every container of this host, and directories without one."""
        with self._lock:
            starting = set(self._starting)
        found = {}
        for attrs in self._our_containers():
            status = self._status_from(attrs)
            found[status.workload_id] = status
        with self._lock:
            # A start that began meanwhile may have files but no
            # container yet: it is starting, not exited.
            starting.update(self._starting)
        try:
            names = sorted(os.listdir(self._root()))
        except FileNotFoundError:
            names = []
        for name in names:
            if name in found:
                continue
            try:
                base.check_workload_id(name)
            except exception.InvalidInput:
                continue
            status = self._status_without_container(name,
                                                    name in starting)
            if status.state != base.MISSING:
                found[name] = status
        return [found[k] for k in sorted(found)]
