"""The recording driver: workloads that exist only in memory.

For the control-plane scale benchmark only, where 100 simulated compute
nodes run in one process: it records every spec it is given and reports
each workload as running and healthy without starting anything (or as
prepared, until it is activated).  Never use it on a real node.
"""

import threading

from cryptocloud.common import exception
from cryptocloud.compute.drivers import base


class RecordingDriver(base.WorkloadDriver):
    """Records specs and reports them running (scale benchmark only)."""

    runs_programs = False

    def __init__(self, state_path: str) -> None:
        super().__init__(state_path)
        self.specs: dict[str, base.WorkloadSpec] = {}
        self.reloads: dict[str, int] = {}
        # Workloads prepared and not activated since.
        self.prepared: set[str] = set()
        self._lock = threading.Lock()

    def _status(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        prepared = spec.workload_id in self.prepared
        return base.WorkloadStatus(
            workload_id=spec.workload_id, kind=spec.kind,
            state=base.PREPARED if prepared else base.RUNNING,
            host=spec.host, port=spec.port, status_port=spec.status_port,
            healthy=not prepared,
            workload_ref='recorded:%s' % spec.workload_id,
            reason='prepared: ready to be activated' if prepared else None,
            metadata=dict(spec.metadata))

    def _refuse_running(self, workload_id: str) -> None:
        if (workload_id in self.specs
                and workload_id not in self.prepared):
            raise exception.Conflict(
                reason='workload %s is already running' % workload_id)

    def start(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Record ``spec``; the workload is running at once."""
        with self._lock:
            self.specs[spec.workload_id] = spec
            self.prepared.discard(spec.workload_id)
            return self._status(spec)

    def prepare(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Record ``spec``; the workload is prepared, not running."""
        with self._lock:
            self._refuse_running(spec.workload_id)
            self.specs[spec.workload_id] = spec
            self.prepared.add(spec.workload_id)
            return self._status(spec)

    def activate(self, workload_id: str) -> base.WorkloadStatus:
        """A prepared workload is running (and healthy) at once."""
        with self._lock:
            spec = self.specs.get(workload_id)
            if spec is None:
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=base.MISSING, action='activate')
            self.prepared.discard(workload_id)
            return self._status(spec)

    def deactivate(self, workload_id: str) -> base.WorkloadStatus:
        """The workload is prepared again."""
        with self._lock:
            spec = self.specs.get(workload_id)
            if spec is None:
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=base.MISSING, action='deactivate')
            self.prepared.add(workload_id)
            return self._status(spec)

    def update(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Record the new spec and count a reload (if it runs)."""
        with self._lock:
            self.specs[spec.workload_id] = spec
            if spec.workload_id not in self.prepared:
                self.reloads[spec.workload_id] = (
                    self.reloads.get(spec.workload_id, 0) + 1)
            return self._status(spec)

    def reload(self, workload_id: str) -> None:
        """Count a reload."""
        with self._lock:
            self.reloads[workload_id] = self.reloads.get(workload_id, 0) + 1

    def stop(self, workload_id: str) -> None:
        """Forget the workload."""
        with self._lock:
            self.specs.pop(workload_id, None)
            self.reloads.pop(workload_id, None)
            self.prepared.discard(workload_id)

    def status(self, workload_id: str) -> base.WorkloadStatus:
        """Running and healthy if recorded, else missing."""
        with self._lock:
            spec = self.specs.get(workload_id)
            if spec is None:
                return base.WorkloadStatus(
                    workload_id=workload_id, kind=base.VHSM,
                    state=base.MISSING, reason='no such workload')
            return self._status(spec)

    def list(self) -> list[base.WorkloadStatus]:
        """Every recorded workload."""
        with self._lock:
            return [self._status(s) for s in self.specs.values()]
