"""Server side of the compute RPC API: the workloads of this node.

The conductor decides what runs where; this manager turns its calls into
workload specs (config text and the node-local secret files), hands them
to the driver and waits until the workload answers its health probe.
Nothing secret arrives over RPC: the vHSM group secret is derived here
from the node's seed file, and service credentials arrive as hashes.

Replicas (RPC 1.2): ``prepare_instance`` makes a service instance ready to
run without running it (a cold standby that keeps its capacity slot and
port), and ``activate_workload`` starts it and waits until it answers.  A
replica prepared on its primary's node with the primary's ``port`` takes
over the same host:port when activated: see ``activate_workload``.
"""

import base64
import collections
import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import socket
import threading
import time
from typing import NoReturn

import oslo_messaging as messaging
from oslo_log import log as logging

from cryptocloud.common import context as cc_context
from cryptocloud.common import exception
from cryptocloud.common import secretfile
from cryptocloud.common import workloads
from cryptocloud.compute import probes
from cryptocloud.compute.drivers import base
from cryptocloud.compute.rpcapi import RPC_API_VERSION
from cryptocloud.conf import CONF

LOG = logging.getLogger(__name__)

GROUP_SECRET_FILE = 'group.secret'  # noqa: S105 - a file name
MASTER_KEY_FILE = 'master.key'
CREDENTIALS_FILE = 'credentials.json'
_GROUP_ID = re.compile(r'^[A-Za-z0-9_.-]{1,64}$')
_SHA256_HEX = re.compile(r'^[0-9a-f]{64}$')
_LOG_TAIL_LINES = 15
_LOG_TAIL_CHARS = 2000
# What a program that found its port taken prints last (EADDRINUSE).
_PORT_BUSY = 'address already in use'
_PORT_BUSY_TAIL_LINES = 5


class _NotReady(Exception):
    """A workload did not come up; the message says why."""


def derive_group_secret(seed_file: str, group_id: str) -> bytes:
    """HMAC-SHA-256(seed, "vhsm-group|" + group_id): the group secret."""
    seed = secretfile.read_secret_file(seed_file)
    return hmac.new(seed, b'vhsm-group|' + group_id.encode('utf-8'),
                    hashlib.sha256).digest()


def _secret_file_text(secret: bytes) -> str:
    # The format of common/secretfile: base64 of the bytes on one line.
    return base64.b64encode(secret).decode('ascii') + '\n'


def _check_group_id(group_id) -> str:
    if not isinstance(group_id, str) or not _GROUP_ID.match(group_id):
        raise exception.InvalidInput(
            reason='group id must be 1 to 64 letters, digits, "_", "-" '
                   'or "."')
    return group_id


def _check_service_id(service_id) -> str:
    if not isinstance(service_id, str) or not _GROUP_ID.match(service_id):
        raise exception.InvalidInput(
            reason='service id must be 1 to 64 letters, digits, "_", "-" '
                   'or "."')
    return service_id


def _check_endpoints(endpoints) -> list[str]:
    if not isinstance(endpoints, list) or not endpoints:
        raise exception.InvalidInput(
            reason='vhsm_endpoints must be a non-empty list of host:port')
    for endpoint in endpoints:
        host, sep, port = str(endpoint).rpartition(':')
        if (not isinstance(endpoint, str) or not sep or not host
                or not port.isdigit() or not 0 < int(port) < 65536
                or ',' in endpoint):
            raise exception.InvalidInput(
                reason='%r is not a host:port vHSM endpoint'
                       % str(endpoint)[:100])
    return list(endpoints)


# registry[:port]/repository@sha256:<64 hex>
_IMAGE_REF = re.compile(
    r'^[A-Za-z0-9.-]+(:[0-9]{1,5})?/[a-z0-9]+([._/-][a-z0-9]+)*'
    r'@sha256:[0-9a-f]{64}$')


def _check_image(image) -> str | None:
    if image is None:
        return None
    if not isinstance(image, str) or not _IMAGE_REF.match(image):
        raise exception.InvalidInput(
            reason='image must be a registry reference pinned by digest '
                   '(host:port/repository@sha256:...), not %r'
                   % str(image)[:200])
    return image


def credentials_file_text(credentials) -> str:
    """The credentials file (cryptoservice/auth.py format) from hashes."""
    if not isinstance(credentials, list):
        raise exception.InvalidInput(reason='credentials must be a list')
    entries = []
    for cred in credentials:
        if not isinstance(cred, dict):
            raise exception.InvalidInput(
                reason='each credential must be a map')
        cred_id = cred.get('id')
        project_id = cred.get('project_id')
        digest = cred.get('secret_sha256')
        if (not isinstance(cred_id, str) or not cred_id
                or not isinstance(project_id, str) or not project_id
                or not isinstance(digest, str)
                or not _SHA256_HEX.match(digest)):
            raise exception.InvalidInput(
                reason='a credential needs id, project_id and a '
                       'secret_sha256 of 64 lower-case hex digits')
        entry = {'id': cred_id, 'project_id': project_id,
                 'secret_sha256': digest}
        if cred.get('created_at'):
            entry['created_at'] = str(cred['created_at'])
        entries.append(entry)
    return json.dumps({'credentials': entries}, indent=2,
                      sort_keys=True) + '\n'


class ComputeManager:
    """Starts, updates, stops, probes and lists this node's workloads."""

    target = messaging.Target(version=RPC_API_VERSION)

    def __init__(self, driver: base.WorkloadDriver | None = None, *,
                 host: str | None = None, conf=None) -> None:
        conf = conf or CONF
        self.conf = conf.compute
        self.host = host or self.conf.host or socket.gethostname()
        self.address = self.conf.address
        self.driver = driver or base.load_driver(self.conf.driver,
                                                 self.conf.state_path)
        if (not getattr(self.driver, 'shares_node_filesystem', True)
                and 'device' in self.conf.roles
                and self.conf.keystore_connection.startswith('sqlite')):
            raise exception.ConfigurationError(
                reason='the %s driver runs vHSMs in containers, which '
                       'cannot share a SQLite keystore file: set [compute] '
                       'keystore_connection to a MariaDB or PostgreSQL URL'
                       % self.conf.driver)
        self.prober = probes.Prober(
            unhealthy_threshold=self.conf.unhealthy_threshold)
        self._lock = threading.Lock()
        self._reserved: set[int] = set()
        self._workload_locks: dict[str, threading.Lock] = (
            collections.defaultdict(threading.Lock))
        self._probe_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix='compute-probe')

    def close(self) -> None:
        """Release the probe threads (the workloads keep running)."""
        self._probe_pool.shutdown(wait=True)

    # -- ports ------------------------------------------------------------

    def _ports_in_use(self) -> set[int]:
        used = set(self._reserved)
        for status in self.driver.list():
            used.update(p for p in (status.port, status.status_port) if p)
        return used

    def _bindable(self, port: int) -> bool:
        if not self.driver.runs_programs:
            return True
        with socket.socket(socket.AF_INET6 if ':' in self.address
                           else socket.AF_INET, socket.SOCK_STREAM) as s:
            # The workloads set SO_REUSEADDR too, so a port whose last
            # connections sit in TIME_WAIT is fine for them.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.address, port))
            except OSError:
                return False
        return True

    def allocate_ports(self, count: int) -> list[int]:
        """Reserve ``count`` free ports from the configured range."""
        with self._lock:
            used = self._ports_in_use()
            chosen = []
            for port in range(self.conf.port_range_start,
                              self.conf.port_range_end + 1):
                if port in used or not self._bindable(port):
                    continue
                chosen.append(port)
                if len(chosen) == count:
                    self._reserved.update(chosen)
                    return chosen
        raise exception.NoValidHost(
            reason='no free port left in %d-%d on %s'
                   % (self.conf.port_range_start, self.conf.port_range_end,
                      self.host))

    def release_ports(self, ports: list[int]) -> None:
        """Forget a reservation (the workload now holds the ports)."""
        with self._lock:
            self._reserved.difference_update(ports)

    def _check_port(self, port) -> int | None:
        """A port asked for by the caller: None, or one of the range."""
        if port is None:
            return None
        start, end = self.conf.port_range_start, self.conf.port_range_end
        if (isinstance(port, bool) or not isinstance(port, int)
                or not start <= port <= end):
            raise exception.InvalidInput(
                reason='port must be one of node %s\'s ports %d-%d, not %r'
                       % (self.host, start, end, str(port)[:20]))
        return port

    def _claim_port(self, port: int, workload_id: str,
                    service_id: str) -> list[int]:
        """Take ``port`` for a replica of ``service_id``; what to release.

        The port may be held by another instance of the same service (the
        primary whose host:port the replica takes over when activated),
        so it is not probed then; a port of a vHSM or of another service
        is refused, and so is one some other program of the node holds.
        """
        with self._lock:
            if port in self._reserved:
                raise exception.Conflict(
                    reason='port %d of node %s is being given to another '
                           'workload' % (port, self.host))
            shared = False
            for status in self.driver.list():
                if (status.workload_id == workload_id
                        or port not in (status.port, status.status_port)):
                    continue
                if (status.kind != base.CRYPTOSERVICE
                        or status.metadata.get('service_id') != service_id):
                    raise exception.Conflict(
                        reason='port %d of node %s belongs to %s workload '
                               '%s, not to an instance of service %s'
                               % (port, self.host, status.kind,
                                  status.workload_id, service_id))
                shared = True
            if shared:
                return []
            if not self._bindable(port):
                raise exception.Conflict(
                    reason='port %d of node %s is in use by a program that '
                           'is none of its workloads' % (port, self.host))
            self._reserved.add(port)
            return [port]

    # -- specs ------------------------------------------------------------

    def _group_files(self, group_id: str) -> dict[str, str]:
        secret = derive_group_secret(self.conf.group_secret_seed_file,
                                     group_id)
        return {GROUP_SECRET_FILE: _secret_file_text(secret)}

    def _vhsm_spec(self, vhsm_id: str, group_id: str, port: int,
                   status_port: int,
                   image: str | None = None) -> base.WorkloadSpec:
        workdir = self.driver.workdir(vhsm_id)
        config = workloads.VHSMConfig(
            group_id=group_id, port=port, host=self.address,
            status_port=status_port, member_id=vhsm_id,
            keystore_url=self.conf.keystore_connection,
            master_key_file=os.path.join(workdir, MASTER_KEY_FILE),
            auth_secret_file=os.path.join(workdir, GROUP_SECRET_FILE))
        return base.WorkloadSpec(
            workload_id=vhsm_id, kind=base.VHSM, port=port,
            status_port=status_port, config_text=config.render(),
            workdir=workdir, host=self.address,
            files=self._group_files(group_id),
            node_files={MASTER_KEY_FILE: self.conf.master_key_file},
            metadata={'group_id': group_id}, image=image)

    def _instance_spec(self, instance_id: str, service_id: str,
                       group_id: str, port: int, vhsm_endpoints: list[str],
                       credentials: list[dict],
                       image: str | None = None) -> base.WorkloadSpec:
        workdir = self.driver.workdir(instance_id)
        config = workloads.ServiceConfig(
            port=port, host=self.address, vhsm_endpoints=vhsm_endpoints,
            vhsm_secret_file=os.path.join(workdir, GROUP_SECRET_FILE),
            credentials_file=os.path.join(workdir, CREDENTIALS_FILE))
        files = self._group_files(group_id)
        files[CREDENTIALS_FILE] = credentials_file_text(credentials)
        return base.WorkloadSpec(
            workload_id=instance_id, kind=base.CRYPTOSERVICE, port=port,
            config_text=config.render(), workdir=workdir, host=self.address,
            files=files, image=image,
            metadata={'group_id': group_id, 'service_id': service_id})

    # -- starting ---------------------------------------------------------

    def _check_role(self, role: str) -> None:
        if role not in self.conf.roles:
            raise exception.Conflict(
                reason='node %s does not have the %s role'
                       % (self.host, role))

    def _check_capacity(self, kind: str) -> None:
        limit = (self.conf.vhsm_capacity if kind == base.VHSM
                 else self.conf.instance_capacity)
        # A prepared standby holds its slot as a running workload does.
        same = [s for s in self.driver.list() if s.kind == kind]
        if len(same) >= limit:
            prepared = sum(1 for s in same if s.state == base.PREPARED)
            raise exception.NoValidHost(
                reason='node %s already has %d of %d %s workloads (%d of '
                       'them prepared standbys)'
                       % (self.host, len(same), limit, kind, prepared))

    def _start(self, workload_id: str, kind: str, nports: int,
               make_spec) -> dict:
        base.check_workload_id(workload_id)
        with self._workload_locks[workload_id]:
            current = self.driver.status(workload_id)
            if current.state == base.RUNNING:
                if current.kind != kind:
                    raise exception.Conflict(
                        reason='workload %s is a running %s'
                               % (workload_id, current.kind))
                # A repeated call (the conductor retrying after a
                # timeout) gets the workload that already runs.
                return self.prober.probe(current).to_dict()
            if current.state != base.MISSING:
                LOG.info('Removing the %s remains of workload %s before '
                         'starting it again.', current.state, workload_id)
                self.driver.stop(workload_id)
            self._check_capacity(kind)
            ports = self.allocate_ports(nports)
            try:
                spec = make_spec(ports)
                self.driver.start(spec)
                status = self._wait_ready(spec)
            except exception.WorkloadStartFailed:
                raise
            except exception.CryptoCloudException:
                self._discard(workload_id)
                raise
            except OSError as exc:
                self._discard(workload_id)
                raise exception.WorkloadStartFailed(
                    workload_id=workload_id,
                    reason='%s (%s)' % (type(exc).__name__,
                                        exc.strerror or exc)) from None
            finally:
                self.release_ports(ports)
            LOG.info('%s workload %s is up on %s:%s.', kind, workload_id,
                     spec.host, spec.port)
            return status.to_dict()

    def _discard(self, workload_id: str) -> None:
        try:
            self.driver.stop(workload_id)
        except Exception:
            LOG.exception('Could not remove workload %s after a failed '
                          'start.', workload_id)

    def _wait_ready(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Wait until the workload listens and its /healthz answers.

        A vHSM must answer 200; a service instance may answer 503 (its
        vHSMs may not be up yet), which still shows that it serves.
        """
        deadline = time.monotonic() + self.conf.start_timeout
        try:
            return self._poll_ready(spec.workload_id, spec.kind, spec.host,
                                    spec.port, deadline)
        except _NotReady as exc:
            self._fail(spec, str(exc))

    def _poll_ready(self, workload_id: str, kind: str, host: str,
                    port: int, deadline: float,
                    on_exit=None) -> base.WorkloadStatus:
        """``_wait_ready`` until ``deadline``; _NotReady says why not.

        ``on_exit(status, deadline)`` may bring back a workload that
        exited (True: keep waiting).
        """
        if not self.driver.runs_programs:
            return self.driver.status(workload_id)
        last = 'did not listen on %s:%s' % (host, port)
        while True:
            status = self.driver.status(workload_id)
            if status.state not in (base.RUNNING, base.STARTING):
                if on_exit is None or not on_exit(status, deadline):
                    raise _NotReady(status.reason or 'it exited')
                continue
            if (status.state == base.RUNNING
                    and workloads.port_open(host, port)):
                code = self.prober.healthz(status)
                if code == 200 or (code is not None
                                   and kind == base.CRYPTOSERVICE):
                    return self.prober.probe(status)
                last = ('its /healthz answered %s' % code if code
                        else 'its status endpoint did not answer')
            if time.monotonic() >= deadline:
                raise _NotReady('%s within %.0f s'
                                % (last, self.conf.start_timeout))
            time.sleep(0.05)

    def _fail(self, spec: base.WorkloadSpec, why: str) -> NoReturn:
        tail = self.driver.log_tail(spec.workload_id, _LOG_TAIL_LINES)
        tail = tail[-_LOG_TAIL_CHARS:]
        self._discard(spec.workload_id)
        reason = why
        if tail:
            reason += '; last lines of its log:\n' + tail
        LOG.error('Workload %s (%s) did not start: %s', spec.workload_id,
                  spec.kind, why)
        raise exception.WorkloadStartFailed(workload_id=spec.workload_id,
                                            reason=reason)

    # -- replicas ---------------------------------------------------------

    def _prepare(self, workload_id: str, kind: str, service_id: str,
                 port: int | None, make_spec) -> dict:
        base.check_workload_id(workload_id)
        with self._workload_locks[workload_id]:
            current = self.driver.status(workload_id)
            if current.state != base.MISSING and current.kind != kind:
                raise exception.Conflict(
                    reason='workload %s is a %s %s'
                           % (workload_id, current.state, current.kind))
            if current.state in (base.RUNNING, base.STARTING):
                raise exception.Conflict(
                    reason='workload %s is %s: only a workload that does '
                           'not run can be prepared'
                           % (workload_id, current.state))
            if current.state == base.PREPARED:
                # Prepared again (new vHSMs or credentials): it keeps its
                # slot, and its port unless it is given another.
                if port is None:
                    port = current.port
            elif current.state != base.MISSING:
                LOG.info('Removing the %s remains of workload %s before '
                         'preparing it.', current.state, workload_id)
                self.driver.stop(workload_id)
            if current.state != base.PREPARED:
                self._check_capacity(kind)
            if port is None:
                reserved = self.allocate_ports(1)
                port = reserved[0]
            else:
                reserved = self._claim_port(port, workload_id, service_id)
            try:
                status = self.driver.prepare(make_spec(port))
            except exception.WorkloadPrepareFailed:
                raise  # the driver cleaned up
            except exception.CryptoCloudException:
                self._discard(workload_id)
                raise
            except OSError as exc:
                self._discard(workload_id)
                raise exception.WorkloadPrepareFailed(
                    workload_id=workload_id,
                    reason='%s (%s)' % (type(exc).__name__,
                                        exc.strerror or exc)) from None
            finally:
                self.release_ports(reserved)
            LOG.info('%s workload %s is prepared for %s:%s.', kind,
                     workload_id, status.host, status.port)
            return status.to_dict()

    def _wait_ports_free(self, ports: list[int], deadline: float) -> None:
        """Wait until nothing listens on ``ports`` (a dying primary)."""
        if not self.driver.runs_programs:
            return
        while True:
            busy = [p for p in ports if not self._bindable(p)]
            if not busy:
                return
            if time.monotonic() >= deadline:
                raise _NotReady(
                    'port %s of %s is still in use after %.0f s'
                    % (', '.join(map(str, busy)), self.address,
                       self.conf.start_timeout))
            time.sleep(0.05)

    def _demote_port_holders(self, replica: base.WorkloadStatus) -> None:
        """Stop the running instances of the replica's service that hold
        its port: on one host:port only one of them can serve."""
        service_id = replica.metadata.get('service_id')
        if replica.kind != base.CRYPTOSERVICE or not service_id:
            return
        for status in self.driver.list():
            if (status.workload_id == replica.workload_id
                    or status.kind != base.CRYPTOSERVICE
                    or status.port != replica.port
                    or status.metadata.get('service_id') != service_id
                    or status.state not in (base.RUNNING, base.STARTING)):
                continue
            LOG.warning('Stopping instance %s of service %s: replica %s '
                        'takes over %s:%s.', status.workload_id, service_id,
                        replica.workload_id, status.host, status.port)
            with self._workload_locks[status.workload_id]:
                self.driver.stop(status.workload_id)
                self.prober.forget(status.workload_id)

    def _activate_once_free(self, status: base.WorkloadStatus,
                            deadline: float) -> None:
        """Activate when the workload's ports are free; retry while the
        driver itself finds them taken (an engine publishing them)."""
        ports = [p for p in (status.port, status.status_port) if p]
        while True:
            self._wait_ports_free(ports, deadline)
            try:
                self.driver.activate(status.workload_id)
                return
            except exception.WorkloadStartFailed as exc:
                reason = exc.kwargs.get('reason') or str(exc)
                if (_PORT_BUSY not in reason.lower()
                        or time.monotonic() >= deadline):
                    raise _NotReady(reason) from None
            time.sleep(0.05)

    def _reactivate_if_port_was_busy(self, status: base.WorkloadStatus,
                                     deadline: float) -> bool:
        """Start again an activated workload that exited because its port
        was still held (a primary that had not quite let go of it)."""
        if time.monotonic() >= deadline:
            return False
        tail = self.driver.log_tail(status.workload_id,
                                    _PORT_BUSY_TAIL_LINES)
        if _PORT_BUSY not in tail.lower():
            return False
        LOG.info('Workload %s found port %s still in use; activating it '
                 'again once the port is free.', status.workload_id,
                 status.port)
        prepared = self.driver.deactivate(status.workload_id)
        self._activate_once_free(prepared, deadline)
        return True

    def _fail_activation(self, current: base.WorkloadStatus,
                         why: str) -> NoReturn:
        """Raise WorkloadStartFailed; the workload is left prepared (or,
        when that cannot be done, removed)."""
        workload_id = current.workload_id
        try:
            # Still prepared: it did not run in this call, and the log
            # (if any) is an earlier call's.
            ran = self.driver.status(workload_id).state != base.PREPARED
        except exception.CryptoCloudException:
            ran = True
        tail = ''
        if ran:
            tail = self.driver.log_tail(workload_id, _LOG_TAIL_LINES)
            tail = tail[-_LOG_TAIL_CHARS:]
        try:
            self.driver.deactivate(workload_id)
            outcome = 'it is left prepared'
        except Exception as exc:  # noqa: BLE001 - reported below
            LOG.warning('Could not return workload %s to prepared (%s); '
                        'removing it.', workload_id, exc)
            try:
                self.driver.stop(workload_id)
                outcome = ('it could not be returned to prepared (%s) and '
                           'was removed' % exc)
            except Exception as stop_exc:  # noqa: BLE001 - reported below
                outcome = ('it could not be returned to prepared (%s) nor '
                           'removed (%s)' % (exc, stop_exc))
        reason = '%s; %s' % (why, outcome)
        if tail:
            reason += '; last lines of its log:\n' + tail
        LOG.error('Workload %s (%s) did not come up when activated: %s; '
                  '%s', workload_id, current.kind, why, outcome)
        raise exception.WorkloadStartFailed(workload_id=workload_id,
                                            reason=reason)

    # -- RPC endpoints ----------------------------------------------------

    def start_vhsm(self, context: cc_context.RequestContext, vhsm_id: str,
                   group_id: str, image: str | None = None) -> dict:
        """Start vHSM ``vhsm_id`` of ``group_id``; its workload status.

        ``image`` (RPC 1.1) is the digest-pinned vHSM image reference.
        """
        self._check_role('device')
        _check_group_id(group_id)
        image = _check_image(image)
        return self._start(
            vhsm_id, base.VHSM, 2,
            lambda ports: self._vhsm_spec(vhsm_id, group_id, *ports,
                                          image=image))

    def start_instance(self, context: cc_context.RequestContext,
                       instance_id: str, service_id: str, group_id: str,
                       vhsm_endpoints: list[str],
                       credentials: list[dict],
                       image: str | None = None) -> dict:
        """Start a crypto-service instance; its workload status.

        ``image`` (RPC 1.1) is the digest-pinned service image reference.
        """
        self._check_role('service')
        _check_group_id(group_id)
        endpoints = _check_endpoints(vhsm_endpoints)
        credentials_file_text(credentials)
        image = _check_image(image)
        return self._start(
            instance_id, base.CRYPTOSERVICE, 1,
            lambda ports: self._instance_spec(
                instance_id, service_id, group_id, ports[0], endpoints,
                credentials, image))

    def prepare_instance(self, context: cc_context.RequestContext,
                         instance_id: str, service_id: str, group_id: str,
                         vhsm_endpoints: list[str],
                         credentials: list[dict], image: str | None = None,
                         port: int | None = None) -> dict:
        """Make a service instance ready to run, not running (RPC 1.2).

        Everything ``start_instance`` does but run it: its status is
        "prepared" and it holds one instance slot and its port until it
        is activated or stopped.  ``port`` (one of the node's range) lets
        a replica on its primary's node share the primary's port, to take
        over that host:port when activated; without it a free port is
        allocated.  Preparing a prepared instance again rewrites it
        (keeping its port unless given one); a running one is a Conflict.
        """
        self._check_role('service')
        _check_service_id(service_id)
        _check_group_id(group_id)
        endpoints = _check_endpoints(vhsm_endpoints)
        credentials_file_text(credentials)
        image = _check_image(image)
        port = self._check_port(port)
        return self._prepare(
            instance_id, base.CRYPTOSERVICE, service_id, port,
            lambda chosen: self._instance_spec(
                instance_id, service_id, group_id, chosen, endpoints,
                credentials, image))

    def activate_workload(self, context: cc_context.RequestContext,
                          workload_id: str) -> dict:
        """Start a prepared workload and wait until it answers (RPC 1.2).

        Returns its status once it listens and its /healthz answers, as
        ``start_instance`` does; a running workload is returned as it is.
        Taking over a port (a replica prepared with its primary's port):
        running instances of the same service on that port are stopped
        first, and the activation waits (up to ``[compute]
        start_timeout``) until the port is free; a program that still
        found it taken and exited is started again once it is free.  On
        failure it raises WorkloadStartFailed with the end of the log, and
        the workload is left prepared (removed only if it cannot be).
        """
        base.check_workload_id(workload_id)
        with self._workload_locks[workload_id]:
            current = self.driver.status(workload_id)
            if current.state == base.MISSING:
                raise exception.ResourceNotFound(kind='Workload',
                                                 id=workload_id)
            if current.state == base.RUNNING:
                return self.prober.probe(current).to_dict()
            if current.state != base.PREPARED:
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=current.state, action='activate')
            began = time.monotonic()
            deadline = began + self.conf.start_timeout
            try:
                self._demote_port_holders(current)
                self._activate_once_free(current, deadline)
                status = self._poll_ready(
                    workload_id, current.kind, current.host, current.port,
                    deadline, on_exit=self._reactivate_if_port_was_busy)
            except _NotReady as exc:
                self._fail_activation(current, str(exc))
            except exception.CryptoCloudException as exc:
                self._fail_activation(current, exc.message)
            except OSError as exc:
                self._fail_activation(current, '%s (%s)' % (
                    type(exc).__name__, exc.strerror or exc))
            LOG.info('%s workload %s was activated and is up on %s:%s in '
                     '%.2f s.', current.kind, workload_id, status.host,
                     status.port, time.monotonic() - began)
            return status.to_dict()

    def update_instance(self, context: cc_context.RequestContext,
                        instance_id: str, vhsm_endpoints: list[str],
                        credentials: list[dict]) -> dict:
        """Rewrite an instance's vHSMs and credentials; SIGHUP, no restart.

        A prepared instance gets its files rewritten and stays prepared.
        """
        base.check_workload_id(instance_id)
        endpoints = _check_endpoints(vhsm_endpoints)
        credentials_file_text(credentials)
        with self._workload_locks[instance_id]:
            current = self.driver.status(instance_id)
            if current.state == base.MISSING:
                raise exception.ResourceNotFound(kind='Workload',
                                                 id=instance_id)
            if current.kind != base.CRYPTOSERVICE:
                raise exception.InvalidInput(
                    reason='workload %s is not a service instance'
                           % instance_id)
            spec = self._instance_spec(
                instance_id, current.metadata.get('service_id', ''),
                current.metadata.get('group_id', ''), current.port,
                endpoints, credentials, current.metadata.get('image'))
            status = self.driver.update(spec)
            LOG.info('Updated service instance %s: %d vHSMs, %d '
                     'credentials.', instance_id, len(endpoints),
                     len(credentials))
            return self.prober.probe(status).to_dict()

    def stop_workload(self, context: cc_context.RequestContext,
                      workload_id: str) -> dict:
        """Stop and remove a workload; ``{}`` also when it is gone."""
        base.check_workload_id(workload_id)
        with self._workload_locks[workload_id]:
            self.driver.stop(workload_id)
            self.prober.forget(workload_id)
        return {}

    def list_workloads(self, context: cc_context.RequestContext
                       ) -> list[dict]:
        """The probed status of every workload on this node."""
        return [s.to_dict() for s in self.workload_statuses()]

    # -- used by the daemon -------------------------------------------------

    def workload_statuses(self) -> list[base.WorkloadStatus]:
        """Every workload with health and load figures, probed at once."""
        statuses = self.driver.list()
        if not self.driver.runs_programs:
            return statuses
        return list(self._probe_pool.map(self.prober.probe, statuses))

    def node_load(self, statuses: list[base.WorkloadStatus]) -> dict:
        """Node-wide figures for the heartbeat."""
        running = [s for s in statuses if s.state == base.RUNNING]
        try:
            loadavg = os.getloadavg()[0]
        except OSError:
            loadavg = 0.0
        return {
            'vhsms': sum(1 for s in running if s.kind == base.VHSM),
            'instances': sum(1 for s in running
                             if s.kind == base.CRYPTOSERVICE),
            'requests_per_s': round(sum(s.load.get('requests_per_s', 0.0)
                                        for s in running), 3),
            'cpu': round(sum(s.load.get('cpu', 0.0) for s in running), 4),
            'loadavg': loadavg,
        }
