"""The recording driver: workloads that exist only in memory.

For the control-plane scale benchmark only, where 100 simulated compute
nodes run in one process: it records every spec it is given and reports
each workload as running and healthy without starting anything.  Never
use it on a real node.
"""

import threading

from cryptocloud.compute.drivers import base


class RecordingDriver(base.WorkloadDriver):
    """Records specs and reports them running (scale benchmark only)."""

    runs_programs = False

    def __init__(self, state_path: str) -> None:
        super().__init__(state_path)
        self.specs: dict[str, base.WorkloadSpec] = {}
        self.reloads: dict[str, int] = {}
        self._lock = threading.Lock()

    def _status(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        return base.WorkloadStatus(
            workload_id=spec.workload_id, kind=spec.kind,
            state=base.RUNNING, host=spec.host, port=spec.port,
            status_port=spec.status_port, healthy=True,
            workload_ref='recorded:%s' % spec.workload_id,
            metadata=dict(spec.metadata))

    def start(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Record ``spec``; the workload is running at once."""
        with self._lock:
            self.specs[spec.workload_id] = spec
            return self._status(spec)

    def update(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Record the new spec and count a reload."""
        with self._lock:
            self.specs[spec.workload_id] = spec
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
