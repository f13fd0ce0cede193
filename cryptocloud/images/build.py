"""Build the vHSM and crypto-service images and push them to the registry.

What :meth:`ImageBuilder.build_and_push` does, in order:

1. connect to the Docker Engine (``[images] docker_url``) and, when it
   pushes, check the registry and our credentials (``[registry]``);
2. find a base image (:meth:`ImageBuilder.ensure_base`): ``[images]
   base_image`` when it is there or can be pulled, else (``offline_base``)
   a Debian bookworm made with debootstrap and ``docker import``;
3. build the project's wheels once, with the running Python, from the
   source tree (``[images] source_dir``, or the tree this installation
   came from);
4. per kind, build ``images/<kind>/Dockerfile`` from a context of the
   Dockerfile and those wheels (nothing is downloaded during the build),
   tag it ``<registry>/<repository>:<version>`` and ``:latest``, push both
   tags and read back the manifest digest, which workloads pin.

Every step has a time limit; failures raise
:class:`~cryptocloud.common.exception.ImageError` (or ``RegistryError``)
with what went wrong and, for builds, the last lines of the build log.
"""

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import docker
import requests
from docker import errors as docker_errors
from oslo_log import log as logging

import cryptocloud
from cryptocloud.common import exception
from cryptocloud.images import KINDS
from cryptocloud.images import registry as registry_mod

LOG = logging.getLogger(__name__)

# Seconds one Docker API call may take; also the longest silence allowed
# in a pull or push stream.
API_TIMEOUT = 120
# Longest silence allowed in a build's output.
BUILD_TIMEOUT = 900
WHEEL_TIMEOUT = 1800
DEBOOTSTRAP_TIMEOUT = 1800
IMPORT_TIMEOUT = 600
LOG_TAIL_LINES = 25
UNKNOWN = 'unknown'
# 1980-01-01, the earliest date a zip file (a wheel) can hold.
ZIP_EPOCH = '315532800'

DEBIAN_SUITE = 'bookworm'
BASE_PACKAGES = ('python3', 'python3-venv')
# Left out of the imported base: apt's caches and package lists.
_ROOTFS_EXCLUDES = ('./var/cache/apt/archives/*.deb', './var/cache/apt/*.bin',
                    './var/lib/apt/lists/*_*')
# What "docker import" cannot know from a bare root file system.
_IMPORT_CHANGES = (
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'ENV LANG=C.UTF-8',
    'CMD ["python3"]',
)
_DIGEST_IN_STATUS = re.compile(r'digest: (sha256:[0-9a-f]{64})')
_BUILT = re.compile(r'^Successfully built ([0-9a-f]{12,64})\s*$', re.M)


def _short(exc: BaseException, limit: int = 400) -> str:
    # An APIError's explanation is the engine's own message, without the
    # HTTP wrapping of str().
    text = (getattr(exc, 'explanation', None) or str(exc)).strip()
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + '...'


def _tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return ''.join(collections.deque(f, maxlen=lines)).rstrip()
    except OSError:
        return ''


def find_source_dir(configured: str | None = None) -> str:
    """The cryptocloud source tree (with setup.cfg and images/) to build.

    :param configured: ``[images] source_dir``; when unset, the tree the
        imported ``cryptocloud`` package lives in (an editable install or
        a checkout on ``sys.path``).
    :raises ImageError: when there is no such tree.
    """
    if configured:
        candidate = os.path.abspath(configured)
        where = '[images] source_dir %s' % candidate
    else:
        package = os.path.dirname(os.path.abspath(cryptocloud.__file__))
        candidate = os.path.dirname(package)
        where = ('%s, where the cryptocloud package is installed; set '
                 '[images] source_dir to a source tree' % candidate)
    setup_cfg = os.path.join(candidate, 'setup.cfg')
    try:
        with open(setup_cfg, encoding='utf-8') as f:
            ours = re.search(r'^name\s*=\s*cryptocloud\s*$', f.read(), re.M)
    except OSError:
        ours = None
    if not ours or not os.path.isdir(os.path.join(candidate, 'images')):
        raise exception.ImageError(
            reason='no cryptocloud source tree (setup.cfg and images/) at '
                   '%s' % where)
    return candidate


def _git(source_dir: str, *args: str) -> str | None:
    try:
        result = subprocess.run(['git', '-C', source_dir, *args],
                                capture_output=True, text=True, timeout=30,
                                check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def source_revision(source_dir: str) -> str:
    """The git commit of ``source_dir``, 'unknown' outside a git tree."""
    return _git(source_dir, 'rev-parse', 'HEAD') or UNKNOWN


def source_version(source_dir: str, wheel_dir: str | None = None) -> str:
    """The version being built.

    That of the cryptocloud wheel in ``wheel_dir`` (pbr's version of the
    tree), else ``git describe``, else 'unknown'.
    """
    if wheel_dir:
        for name in sorted(os.listdir(wheel_dir)):
            parts = name.split('-')
            if parts[0] == 'cryptocloud' and name.endswith('.whl'):
                return parts[1]
    return _git(source_dir, 'describe', '--tags', '--always') or UNKNOWN


def image_tag(version: str) -> str:
    """``version`` made a valid image tag ('+' and such become '-')."""
    tag = re.sub(r'[^A-Za-z0-9_.-]', '-', version)[:128]
    if not tag or tag[0] in '.-':
        tag = ('v' + tag)[:128]
    return tag


def _push_error(kind: str, name: str, message: str) -> exception.ImageError:
    lower = message.lower()
    if 'http response to https client' in lower:
        hint = ('the Docker Engine talks HTTPS to the registry: give it '
                'TLS ([registry] tls) or list it in the engine\'s '
                'insecure-registries')
    elif 'no basic auth credentials' in lower:
        hint = ('the registry wants credentials: set [registry] username '
                'and password')
    elif 'unauthorized' in lower or 'authentication required' in lower:
        hint = ('the registry refused the credentials ([registry] '
                'username and password)')
    elif 'denied' in lower:
        hint = 'the registry denied access to this repository'
    elif 'connection refused' in lower or 'no such host' in lower:
        hint = 'the Docker Engine cannot reach the registry'
    else:
        hint = None
    reason = 'pushing the %s image %s failed: %s' % (kind, name,
                                                    message.strip())
    if hint:
        reason += ' (%s)' % hint
    return exception.ImageError(reason=reason)


class ImageBuilder:
    """Builds and pushes the workload images as ``conf`` says.

    :param conf: an oslo.config ``ConfigOpts`` with the ``[images]`` and
        ``[registry]`` options.
    :param client: a ``docker.DockerClient``; by default one for
        ``[images] docker_url``, made when first needed.
    :param registry: a :class:`~cryptocloud.images.registry.RegistryClient`;
        by default one for ``[registry]``.
    :param no_cache: build every step again instead of reusing the
        engine's cached layers (for a from-scratch figure).

    Scratch files (wheels, build contexts) live in a directory of its own
    under ``[images] work_dir``, removed by :meth:`close`; the debootstrap
    root file system of the offline base stays there for the next build.
    """

    def __init__(self, conf, client: docker.DockerClient | None = None,
                 registry: registry_mod.RegistryClient | None = None,
                 *, no_cache: bool = False) -> None:
        self.conf = conf
        self.no_cache = no_cache
        self._client = client
        self._own_registry = registry is None
        self.registry = (registry
                         or registry_mod.RegistryClient.from_conf(conf))
        self.work_dir = os.path.abspath(conf.images.work_dir)
        self._workspace: str | None = None
        self._wheel_dir: str | None = None
        self._base: str | None = None
        # Seconds per step of the last build_and_push, for logs and reports.
        self.timings: dict[str, float] = {}

    def __enter__(self) -> 'ImageBuilder':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Remove the scratch directory (wheels and build contexts).

        The builder stays usable: a later build makes a new one.
        """
        if self._workspace:
            shutil.rmtree(self._workspace, ignore_errors=True)
        self._workspace = None
        self._wheel_dir = None
        if self._own_registry:
            # Idle HTTP connections only; a new request opens another.
            self.registry.close()

    # -- Docker Engine ------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        """The Docker client, connected (and checked) on first use."""
        if self._client is None:
            self._client = self._connect(self.conf.images.docker_url)
        return self._client

    @staticmethod
    def _connect(url: str) -> docker.DockerClient:
        try:
            client = docker.DockerClient(base_url=url, timeout=API_TIMEOUT)
            client.ping()
        except (docker_errors.DockerException,
                requests.RequestException) as exc:
            raise exception.ImageError(
                reason='cannot reach the Docker Engine at %s ([images] '
                       'docker_url): %s' % (url, _short(exc))) from None
        return client

    def _have_image(self, name: str) -> bool:
        try:
            self.client.api.inspect_image(name)
        except docker_errors.ImageNotFound:
            return False
        except docker_errors.APIError as exc:
            if exc.status_code in (400, 404):
                return False
            raise exception.ImageError(
                reason='cannot inspect image %s: %s'
                       % (name, _short(exc))) from None
        except (docker_errors.DockerException,
                requests.RequestException) as exc:
            raise exception.ImageError(
                reason='cannot inspect image %s: %s'
                       % (name, _short(exc))) from None
        return True

    def repository(self, kind: str) -> str:
        """The registry repository of ``kind`` (without the address)."""
        if kind not in KINDS:
            raise exception.InvalidInput(
                reason='unknown image kind %r; one of %s'
                       % (kind, ', '.join(KINDS)))
        name = getattr(self.conf.images, '%s_repository' % kind)
        return registry_mod.check_repository(name)

    # -- base image ---------------------------------------------------------

    def ensure_base(self) -> str:
        """The name of a local base image to build FROM.

        ``[images] base_image`` when it is local or can be pulled; else,
        unless ``offline_base = never``, the local Debian base.

        :raises ImageError: when neither can be had.
        """
        images = self.conf.images
        if images.offline_base != 'always':
            base = images.base_image
            if self._have_image(base):
                self._base = base
                return base
            LOG.info('Pulling the base image %s', base)
            try:
                auth = None
                if base.startswith(self.registry.address + '/'):
                    auth = self.registry.auth_config()
                self.client.images.pull(base, auth_config=auth)
                self._base = base
                return base
            except (docker_errors.DockerException,
                    requests.RequestException) as exc:
                if images.offline_base == 'never':
                    raise exception.ImageError(
                        reason='cannot pull the base image %s: %s (set '
                               '[images] offline_base = auto to build a '
                               'local Debian base instead)'
                               % (base, _short(exc))) from None
                LOG.warning('Cannot pull the base image %s (%s); using '
                            'the local Debian base %s', base, _short(exc),
                            images.offline_base_image)
        self._base = self.offline_base()
        return self._base

    def offline_base(self) -> str:
        """The local Debian base, made when there is no image of its name.

        :raises ImageError: when debootstrap or the import fails.
        """
        name = self.conf.images.offline_base_image
        if self._have_image(name):
            LOG.info('Using the local base image %s', name)
            return name
        rootfs = self._debootstrap()
        start = time.monotonic()
        self._import_rootfs(rootfs, name)
        LOG.info('Imported %s as %s in %.1f s', rootfs, name,
                 time.monotonic() - start)
        return name

    def _debootstrap(self) -> str:
        """A Debian root file system under work_dir (kept between builds)."""
        rootfs = os.path.join(self.work_dir, 'rootfs-%s' % DEBIAN_SUITE)
        done = rootfs + '.complete'
        if os.path.isdir(rootfs) and os.path.exists(done):
            return rootfs
        if shutil.which('debootstrap') is None:
            raise exception.ImageError(
                reason='no base image could be pulled and debootstrap, '
                       'which makes a local one, is not installed '
                       '(apt-get install debootstrap)')
        if os.geteuid() != 0:
            raise exception.ImageError(
                reason='no base image could be pulled and debootstrap, '
                       'which makes a local one, must run as root')
        os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
        partial = rootfs + '.partial'
        log_file = os.path.join(self.work_dir, 'debootstrap.log')
        shutil.rmtree(partial, ignore_errors=True)
        cmd = ['debootstrap', '--variant=minbase',
               '--include=' + ','.join(BASE_PACKAGES), DEBIAN_SUITE,
               partial, self.conf.images.debian_mirror]
        LOG.info('Making a Debian %s root file system in %s from %s '
                 '(a few minutes)', DEBIAN_SUITE, partial,
                 self.conf.images.debian_mirror)
        start = time.monotonic()
        self._run(cmd, log_file, DEBOOTSTRAP_TIMEOUT, 'debootstrap')
        shutil.rmtree(rootfs, ignore_errors=True)
        os.rename(partial, rootfs)
        with open(done, 'w', encoding='ascii') as f:
            f.write('%s\n' % time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                           time.gmtime()))
        LOG.info('debootstrap took %.1f s', time.monotonic() - start)
        return rootfs

    def _import_rootfs(self, rootfs: str, name: str) -> None:
        repository, _, tag = name.rpartition(':')
        if not repository or '/' in tag:
            repository, tag = name, 'latest'
        cmd = ['tar', '-C', rootfs, '--numeric-owner']
        cmd += ['--exclude=%s' % p for p in _ROOTFS_EXCLUDES]
        cmd += ['-c', '.']
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                    stderr=errors)
            chunks = iter(lambda: proc.stdout.read(1 << 20), b'')
            try:
                self.client.api.import_image(
                    src=chunks, repository=repository, tag=tag,
                    changes=list(_IMPORT_CHANGES), stream_src=True)
            except (docker_errors.DockerException,
                    requests.RequestException) as exc:
                proc.kill()
                raise exception.ImageError(
                    reason='importing %s as %s failed: %s'
                           % (rootfs, name, _short(exc))) from None
            finally:
                proc.stdout.close()
                try:
                    proc.wait(timeout=IMPORT_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.returncode != 0:
                errors.seek(0)
                raise exception.ImageError(
                    reason='tar of %s failed: %s' % (
                        rootfs, errors.read()[-2000:].decode(
                            'utf-8', 'replace').strip()))

    # -- wheels -------------------------------------------------------------

    def source_dir(self) -> str:
        """The source tree to build (see :func:`find_source_dir`)."""
        return find_source_dir(self.conf.images.source_dir)

    def _scratch(self) -> str:
        if self._workspace is None:
            os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
            self._workspace = tempfile.mkdtemp(prefix='build-',
                                               dir=self.work_dir)
        return self._workspace

    @staticmethod
    def _run(cmd: list[str], log_file: str, timeout: float, what: str,
             env: dict | None = None) -> None:
        """Run ``cmd`` with its output in ``log_file``; raise on failure."""
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1',
                   PIP_NO_INPUT='1', DEBIAN_FRONTEND='noninteractive',
                   **(env or {}))
        with open(log_file, 'wb') as log:
            try:
                result = subprocess.run(cmd, stdout=log,
                                        stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env,
                                        timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise exception.ImageError(
                    reason='%s did not finish within %s s; last lines of '
                           '%s:\n%s' % (what, timeout, log_file,
                                        _tail(log_file))) from None
            except OSError as exc:
                raise exception.ImageError(
                    reason='cannot run %s: %s' % (what, exc)) from None
        if result.returncode != 0:
            raise exception.ImageError(
                reason='%s failed (exit status %d); last lines of %s:\n%s'
                       % (what, result.returncode, log_file,
                          _tail(log_file)))

    def build_wheels(self, dest: str | None = None) -> str:
        """Build the wheels of the project and its requirements.

        Runs ``pip wheel`` with the running interpreter, so the wheels
        match the Python the images get (3.11).  pip's own cache is used,
        so a second build takes seconds.

        :param dest: directory for the wheels; by default one in this
            builder's scratch space, which later builds use.
        :returns: the wheel directory.
        :raises ImageError: when pip fails (with the end of its output).
        """
        source = self.source_dir()
        if dest is None:
            dest = os.path.join(self._scratch(), 'wheels')
        os.makedirs(dest, exist_ok=True)
        cmd = [sys.executable, '-m', 'pip', 'wheel', '--wheel-dir', dest,
               '--progress-bar', 'off']
        requirements = os.path.join(source, 'requirements.txt')
        if os.path.exists(requirements):
            cmd += ['--requirement', requirements]
        cmd.append(source)
        log_file = os.path.join(os.path.dirname(os.path.abspath(dest)),
                                'pip-wheel.log')
        # The same tree gives the same wheel bytes (zip entries dated to
        # the commit, not to now), so Docker's COPY cache hits and an
        # unchanged tree rebuilds in seconds.
        epoch = _git(source, 'log', '-1', '--format=%ct') or ZIP_EPOCH
        LOG.info('Building wheels of %s into %s', source, dest)
        start = time.monotonic()
        self._run(cmd, log_file, WHEEL_TIMEOUT, 'pip wheel',
                  env={'SOURCE_DATE_EPOCH': epoch})
        count = len([n for n in os.listdir(dest) if n.endswith('.whl')])
        LOG.info('Built %d wheels in %.1f s', count,
                 time.monotonic() - start)
        self._wheel_dir = dest
        return dest

    # -- build and push ---------------------------------------------------

    def _context(self, kind: str, source: str, wheel_dir: str) -> str:
        """A build context: the kind's Dockerfile and the wheels."""
        dockerfile = os.path.join(source, 'images', kind, 'Dockerfile')
        if not os.path.isfile(dockerfile):
            raise exception.ImageError(reason='%s is missing' % dockerfile)
        context = os.path.join(self._scratch(), 'context-%s' % kind)
        shutil.rmtree(context, ignore_errors=True)
        wheels = os.path.join(context, 'wheels')
        os.makedirs(wheels)
        shutil.copyfile(dockerfile, os.path.join(context, 'Dockerfile'))
        for name in os.listdir(wheel_dir):
            src = os.path.join(wheel_dir, name)
            dst = os.path.join(wheels, name)
            try:
                # Both contexts share the files of one wheel build.
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        return context

    def build(self, kind: str, base_image: str | None = None) -> dict:
        """Build and tag the image of ``kind`` ('vhsm' or 'cryptoservice').

        Builds the wheels and finds the base first unless already done.

        :returns: a dict with kind, repository (``<address>/<repo>``),
            tag, version, revision, image_id, size, build_seconds, and
            digest, reference and push_seconds set to None.
        :raises ImageError: when the build fails, with the last lines of
            its log.
        """
        repository = self.repository(kind)
        source = self.source_dir()
        wheel_dir = self._wheel_dir or self.build_wheels()
        base = base_image or self._base or self.ensure_base()
        version = source_version(source, wheel_dir)
        revision = source_revision(source)
        tag = image_tag(version)
        name = self.registry.name(repository)
        context = self._context(kind, source, wheel_dir)
        buildargs = {'BASE_IMAGE': base, 'VERSION': version,
                     'REVISION': revision}
        LOG.info('Building the %s image %s:%s from %s', kind, name, tag,
                 base)
        start = time.monotonic()
        image_id = self._run_build(kind, context, '%s:%s' % (name, tag),
                                   buildargs)
        try:
            self.client.api.tag(image_id, name, 'latest', force=True)
            size = self.client.api.inspect_image(image_id).get('Size')
        except (docker_errors.DockerException,
                requests.RequestException) as exc:
            raise exception.ImageError(
                reason='cannot tag the %s image %s: %s'
                       % (kind, image_id, _short(exc))) from None
        finally:
            shutil.rmtree(context, ignore_errors=True)
        seconds = time.monotonic() - start
        LOG.info('Built the %s image %s:%s (%s, %.0f MB) in %.1f s', kind,
                 name, tag, image_id, (size or 0) / 1e6, seconds)
        return {'kind': kind, 'repository': name, 'tag': tag,
                'version': version, 'revision': revision,
                'image_id': image_id, 'digest': None, 'reference': None,
                'size': size, 'build_seconds': round(seconds, 3),
                'push_seconds': None}

    def _run_build(self, kind: str, context: str, name: str,
                   buildargs: dict) -> str:
        tail: collections.deque = collections.deque(maxlen=LOG_TAIL_LINES)
        image_id = None

        def failed(message: str) -> exception.ImageError:
            return exception.ImageError(
                reason='building the %s image failed: %s; last lines of '
                       'the build log:\n%s'
                       % (kind, message.strip(), '\n'.join(tail)))

        try:
            stream = self.client.api.build(
                path=context, tag=name, buildargs=buildargs,
                network_mode='host', rm=True, forcerm=True, pull=False,
                nocache=self.no_cache, decode=True, timeout=BUILD_TIMEOUT)
            for chunk in stream:
                if 'error' in chunk or 'errorDetail' in chunk:
                    detail = chunk.get('errorDetail') or {}
                    raise failed(chunk.get('error')
                                 or detail.get('message') or str(chunk))
                text = chunk.get('stream') or ''
                for line in text.splitlines():
                    if not line.strip():
                        continue
                    tail.append(line.rstrip())
                    if line.startswith('Step '):
                        LOG.info('%s image: %s', kind, line.strip()[:200])
                    else:
                        LOG.debug('%s image: %s', kind, line.rstrip())
                built = _BUILT.search(text)
                if built and image_id is None:
                    image_id = built.group(1)
                aux = chunk.get('aux') or {}
                if aux.get('ID'):
                    image_id = aux['ID']
        except (docker_errors.DockerException,
                requests.RequestException) as exc:
            raise failed(_short(exc)) from None
        if image_id is None:
            raise failed('the build ended without an image')
        return image_id

    def _push_tag(self, kind: str, name: str, tag: str) -> str | None:
        digest = None
        try:
            stream = self.client.api.push(
                name, tag=tag, stream=True, decode=True,
                auth_config=self.registry.auth_config())
            for chunk in stream:
                if 'error' in chunk or 'errorDetail' in chunk:
                    detail = chunk.get('errorDetail') or {}
                    raise _push_error(kind, '%s:%s' % (name, tag),
                                      chunk.get('error')
                                      or detail.get('message')
                                      or str(chunk))
                aux = chunk.get('aux') or {}
                if aux.get('Digest'):
                    digest = aux['Digest']
                status = chunk.get('status') or ''
                found = _DIGEST_IN_STATUS.search(status)
                if found and digest is None:
                    digest = found.group(1)
                if status and 'progressDetail' not in chunk:
                    LOG.debug('%s push: %s', kind, status)
        except (docker_errors.DockerException,
                requests.RequestException) as exc:
            raise _push_error(kind, '%s:%s' % (name, tag),
                              _short(exc)) from None
        return digest

    def push(self, kind: str, tags: list[str] | tuple[str, ...]) -> str:
        """Push the local tags of ``kind``'s image; the manifest digest.

        The digest is the one the engine reports for ``tags[0]``, checked
        against what the registry now serves for that tag.

        :raises ImageError: when a push fails or the digests differ.
        """
        if not tags:
            raise exception.InvalidInput(reason='no tag to push')
        repository = self.repository(kind)
        name = self.registry.name(repository)
        digest = None
        for tag in tags:
            LOG.info('Pushing %s:%s', name, tag)
            pushed = self._push_tag(kind, name, tag)
            digest = digest or pushed
        served = self.registry.manifest_digest(repository, tags[0])
        if digest is None:
            LOG.warning('The push of %s:%s reported no digest; using the '
                        'registry\'s %s', name, tags[0], served)
            return served
        if served != digest:
            raise exception.ImageError(
                reason='pushed %s:%s as %s but the registry serves %s'
                       % (name, tags[0], digest, served))
        return digest

    def build_and_push(self, kinds: tuple[str, ...] | list[str] = KINDS,
                       push: bool = True) -> list[dict]:
        """Build (and push) the images of ``kinds``; one dict per kind.

        Each dict has kind, repository (``<address>/<repo>``), tag,
        version, revision, image_id, digest and reference (the pinned
        ``<address>/<repo>@sha256:...``; None when not pushed), size (bytes),
        build_seconds and push_seconds (None when not pushed).  The
        wheels are built once for all kinds.  :attr:`timings` gets the
        seconds of each step.

        :raises ImageError: when any step fails (RegistryError when the
            registry cannot be used).
        """
        kinds = tuple(kinds)
        for kind in kinds:
            self.repository(kind)
        self.timings = {}
        results = []
        try:
            self.client  # noqa: B018 - fail early when there is no engine
            if push:
                self.registry.ping()
            start = time.monotonic()
            self.ensure_base()
            self.timings['base_seconds'] = time.monotonic() - start
            start = time.monotonic()
            self.build_wheels()
            self.timings['wheel_seconds'] = time.monotonic() - start
            for kind in kinds:
                result = self.build(kind)
                self.timings['%s_build_seconds' % kind] = (
                    result['build_seconds'])
                if push:
                    start = time.monotonic()
                    digest = self.push(kind, [result['tag'], 'latest'])
                    seconds = time.monotonic() - start
                    result.update(
                        digest=digest,
                        reference=self.registry.reference(
                            self.repository(kind), digest),
                        push_seconds=round(seconds, 3))
                    self.timings['%s_push_seconds' % kind] = seconds
                    LOG.info('Pushed the %s image as %s in %.1f s', kind,
                             result['reference'], seconds)
                results.append(result)
        finally:
            self.close()
        return results
