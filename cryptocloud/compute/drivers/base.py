"""The workload driver interface of the compute daemon.

A driver runs vHSMs and crypto-service instances on this node: as local
processes (``process``), as containers (``docker``) or only in
memory (``recording``, for the control-plane scale benchmark).  Drivers are
loaded by name from the ``cryptocloud.compute.drivers`` entry points and
never import the db layer: they know workloads, not rows.

A workload is either started at once (``start``) or prepared first
(``prepare``: a cold standby, everything done but running it) and started
later with ``activate``, which then takes about as long as the program
needs to listen.
"""

import abc
import dataclasses
import os
import re

import stevedore

from cryptocloud.common import exception

NAMESPACE = 'cryptocloud.compute.drivers'

VHSM = 'vhsm'
CRYPTOSERVICE = 'cryptoservice'
KINDS = (VHSM, CRYPTOSERVICE)

# Workload states as the compute RPC API reports them.
RUNNING = 'running'
STARTING = 'starting'
EXITED = 'exited'
MISSING = 'missing'
# Ready to run but not running (a cold standby): files written, image
# pulled, container created; it holds its port until it is removed.
PREPARED = 'prepared'


_WORKLOAD_ID = re.compile(r'^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$')


def check_workload_id(workload_id: str) -> str:
    """Refuse ids that could name a path outside the state directory."""
    if not isinstance(workload_id, str) or not _WORKLOAD_ID.match(
            workload_id):
        raise exception.InvalidInput(
            reason='workload id must be 1 to 64 letters, digits, "_", '
                   '"-" or "." and not start with "."')
    return workload_id


def check_file_name(name: str) -> str:
    """Refuse workload file names that are not plain names."""
    if (not isinstance(name, str) or not name or os.path.basename(name) != name
            or name.startswith('.')):
        raise exception.InvalidInput(
            reason='workload file name %r is not a plain name' % name)
    return name


def empty_load() -> dict:
    """The load figures of a workload that has not been measured."""
    return {'requests_per_s': 0.0, 'in_flight': 0, 'p95_ms': 0.0,
            'cpu': 0.0}


@dataclasses.dataclass
class WorkloadSpec:
    """Everything a driver needs to start one workload."""

    workload_id: str
    kind: str
    port: int
    config_text: str = dataclasses.field(repr=False)
    workdir: str
    status_port: int | None = None
    host: str = '127.0.0.1'
    # Extra files (name -> text) written beside the config, mode 0600:
    # the group secret and the credentials file.  Never logged.
    files: dict[str, str] = dataclasses.field(default_factory=dict,
                                              repr=False)
    # Plain, non-secret facts kept with the workload so that a restarted
    # daemon knows what it adopted (group id, service id...).
    metadata: dict = dataclasses.field(default_factory=dict)
    # Files of this node the workload reads (name -> path here), such as
    # the operator master key.  They appear as ``<workdir>/<name>``: the
    # process driver links them, the docker driver copies them readable
    # by the container's user only.  Never logged.
    node_files: dict[str, str] = dataclasses.field(default_factory=dict,
                                                   repr=False)
    # Image to run, a registry reference pinned by digest
    # (``host:port/repo@sha256:...``).  Drivers that run no images
    # ignore it.
    image: str | None = None

    def __post_init__(self) -> None:
        check_workload_id(self.workload_id)
        if self.kind not in KINDS:
            raise exception.InvalidInput(
                reason='unknown workload kind %r' % self.kind)

    @property
    def probe_port(self) -> int | None:
        """Port that answers /healthz and /metrics."""
        return self.status_port if self.kind == VHSM else self.port


@dataclasses.dataclass
class WorkloadStatus:
    """What a driver (and the manager's probes) know of one workload."""

    workload_id: str
    kind: str
    state: str
    host: str = '127.0.0.1'
    port: int | None = None
    status_port: int | None = None
    healthy: bool = False
    workload_ref: str | None = None
    reason: str | None = None
    # Running, but failed the node's threshold of health probes in a row
    # after having been healthy: hung, to be replaced.
    failing: bool = False
    load: dict = dataclasses.field(default_factory=empty_load)
    metadata: dict = dataclasses.field(default_factory=dict)
    # In-process only: the OS process id, for CPU figures.
    pid: int | None = None

    @property
    def probe_port(self) -> int | None:
        """Port that answers /healthz and /metrics."""
        return self.status_port if self.kind == VHSM else self.port

    def to_dict(self) -> dict:
        """The workload status of the compute RPC API (plain JSON)."""
        return {'workload_id': self.workload_id, 'kind': self.kind,
                'state': self.state, 'healthy': bool(self.healthy),
                'host': self.host, 'port': self.port,
                'status_port': self.status_port,
                'workload_ref': self.workload_ref, 'reason': self.reason,
                'failing': bool(self.failing), 'load': dict(self.load)}


class WorkloadDriver(abc.ABC):
    """Runs workloads on this node; one instance per daemon."""

    #: Whether workloads are real programs that listen and can be probed
    #: over HTTP.  The recording driver only pretends.
    runs_programs: bool = True
    #: Whether workloads see this node's file system (a SQLite keystore
    #: file, say).  Containers see only what is mounted into them.
    shares_node_filesystem: bool = True

    def __init__(self, state_path: str) -> None:
        self.state_path = state_path

    @abc.abstractmethod
    def start(self, spec: WorkloadSpec) -> WorkloadStatus:
        """Write the workload's files and start it; return at once."""

    @abc.abstractmethod
    def prepare(self, spec: WorkloadSpec) -> WorkloadStatus:
        """Make the workload ready to run without running it.

        Everything ``start`` does but run the program: the files are
        written, the image pulled, the container created; the workload is
        then PREPARED and keeps its ports until ``stop``.  A workload that
        runs raises Conflict; preparing a PREPARED workload again rewrites
        it, and the remains of an exited one are replaced.
        """

    @abc.abstractmethod
    def activate(self, workload_id: str) -> WorkloadStatus:
        """Start a PREPARED workload; return at once, like ``start``.

        A workload that runs already is returned as it is; any other
        state raises InvalidState.
        """

    @abc.abstractmethod
    def deactivate(self, workload_id: str) -> WorkloadStatus:
        """Stop the program but keep the workload: it is PREPARED again.

        Its files (and image) stay, so that ``activate`` can run it once
        more; a PREPARED workload is returned as it is and an unknown one
        raises InvalidState.
        """

    @abc.abstractmethod
    def update(self, spec: WorkloadSpec) -> WorkloadStatus:
        """Rewrite a running workload's files, then reload it.

        A PREPARED workload gets its files rewritten and stays PREPARED.
        """

    @abc.abstractmethod
    def reload(self, workload_id: str) -> None:
        """Make the workload re-read its config (no restart)."""

    @abc.abstractmethod
    def stop(self, workload_id: str) -> None:
        """Stop the workload and remove its files (and container), also
        a PREPARED one; no error if gone."""

    @abc.abstractmethod
    def status(self, workload_id: str) -> WorkloadStatus:
        """The workload's state ("missing" when unknown)."""

    @abc.abstractmethod
    def list(self) -> list[WorkloadStatus]:
        """Every workload of this node, PREPARED ones included, also
        those of an earlier daemon."""

    def workdir(self, workload_id: str) -> str:
        """Directory that holds the workload's files."""
        check_workload_id(workload_id)
        return '%s/workloads/%s' % (self.state_path.rstrip('/'),
                                    workload_id)

    def log_tail(self, workload_id: str, lines: int = 20) -> str:
        """The last lines the workload logged, for error messages."""
        return ''


def load_driver(name: str, state_path: str) -> WorkloadDriver:
    """Load the driver named ``name`` from the entry points."""
    try:
        mgr = stevedore.DriverManager(NAMESPACE, name, invoke_on_load=True,
                                      invoke_args=(state_path,))
    except (stevedore.exception.NoMatches, RuntimeError) as exc:
        raise exception.ConfigurationError(
            reason='unknown workload driver %r (%s)' % (name, exc)) from None
    return mgr.driver
