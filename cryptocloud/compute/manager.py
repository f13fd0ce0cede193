"""Server side of the compute RPC API: the workloads of this node.

The conductor decides what runs where; this manager turns its calls into
workload specs (config text and the node-local secret files), hands them
to the driver and waits until the workload answers its health probe.
Nothing secret arrives over RPC: the vHSM group secret is derived here
from the node's seed file, and service credentials arrive as hashes.
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
        self.prober = probes.Prober()
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
        count = sum(1 for s in self.driver.list() if s.kind == kind)
        if count >= limit:
            raise exception.NoValidHost(
                reason='node %s already runs %d of %d %s workloads'
                       % (self.host, count, limit, kind))

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
        if not self.driver.runs_programs:
            return self.driver.status(spec.workload_id)
        deadline = time.monotonic() + self.conf.start_timeout
        last = 'did not listen on %s:%s' % (spec.host, spec.port)
        while True:
            status = self.driver.status(spec.workload_id)
            if status.state not in (base.RUNNING, base.STARTING):
                self._fail(spec, status.reason or 'it exited')
            if (status.state == base.RUNNING
                    and workloads.port_open(spec.host, spec.port)):
                code = self.prober.healthz(status)
                if code == 200 or (code is not None
                                   and spec.kind == base.CRYPTOSERVICE):
                    return self.prober.probe(status)
                last = ('its /healthz answered %s' % code if code
                        else 'its status endpoint did not answer')
            if time.monotonic() >= deadline:
                self._fail(spec, '%s within %.0f s'
                           % (last, self.conf.start_timeout))
            time.sleep(0.05)

    def _fail(self, spec: base.WorkloadSpec, why: str) -> None:
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

    def update_instance(self, context: cc_context.RequestContext,
                        instance_id: str, vhsm_endpoints: list[str],
                        credentials: list[dict]) -> dict:
        """Rewrite an instance's vHSMs and credentials; SIGHUP, no restart."""
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
