"""A test double for the compute RPC client: records calls, answers with
workload status dicts, and fails on the hosts a test names."""

import itertools
import threading

import oslo_messaging as messaging

from cryptocloud.common import exception


class FakeComputeAPI:
    """Stands in for ComputeAPI; no bus, no daemons."""

    def __init__(self, *, healthy: bool = True) -> None:
        self.calls: list[tuple] = []
        self.healthy = healthy
        self.failing_hosts: set[str] = set()
        # Workload ids whose activation fails (WorkloadStartFailed, the
        # workload left prepared, as the compute node does).
        self.failing_activations: set[str] = set()
        self.workloads: dict[str, dict] = {}
        self._ports = itertools.count(20000)
        self._lock = threading.Lock()

    def _record(self, method: str, host: str, **kwargs) -> None:
        with self._lock:
            self.calls.append((method, host, kwargs))
        if host in self.failing_hosts:
            raise messaging.MessagingTimeout('no answer from %s' % host)

    def methods(self, name: str) -> list[tuple]:
        """The recorded calls of method ``name``."""
        return [c for c in self.calls if c[0] == name]

    def _status(self, workload_id: str, kind: str, host: str,
                state: str = 'running', port: int | None = None) -> dict:
        running = state == 'running'
        status = {'workload_id': workload_id, 'kind': kind,
                  'state': state, 'healthy': self.healthy and running,
                  'host': '127.0.0.1',
                  'port': port if port is not None else next(self._ports),
                  'workload_ref': 'ref-%s' % workload_id,
                  'reason': None if running else
                  'prepared: ready to be activated',
                  'load': {}}
        if kind == 'vhsm':
            status['status_port'] = next(self._ports)
        self.workloads[workload_id] = dict(status, node=host)
        return status

    def start_vhsm(self, ctxt, host, vhsm_id, group_id, image=None):
        """Pretend to start a vHSM."""
        self._record('start_vhsm', host, vhsm_id=vhsm_id, group_id=group_id,
                     image=image)
        return self._status(vhsm_id, 'vhsm', host)

    def start_instance(self, ctxt, host, instance_id, service_id, group_id,
                       vhsm_endpoints, credentials, image=None):
        """Pretend to start a service instance."""
        self._record('start_instance', host, instance_id=instance_id,
                     service_id=service_id, group_id=group_id,
                     vhsm_endpoints=list(vhsm_endpoints),
                     credentials=list(credentials), image=image)
        return self._status(instance_id, 'cryptoservice', host)

    def prepare_instance(self, ctxt, host, instance_id, service_id, group_id,
                         vhsm_endpoints, credentials, image=None, port=None):
        """Pretend to prepare a replica: "prepared", not healthy."""
        self._record('prepare_instance', host, instance_id=instance_id,
                     service_id=service_id, group_id=group_id,
                     vhsm_endpoints=list(vhsm_endpoints),
                     credentials=list(credentials), image=image, port=port)
        current = self.workloads.get(instance_id)
        if current is not None and current['state'] == 'running':
            raise exception.Conflict(
                reason='workload %s is running: only a workload that does '
                       'not run can be prepared' % instance_id)
        if port is None and current is not None:
            port = current['port']  # prepared again: keeps its port
        return self._status(instance_id, 'cryptoservice', host,
                            state='prepared', port=port)

    def activate_workload(self, ctxt, host, workload_id):
        """Pretend to start a prepared workload (running, healthy)."""
        self._record('activate_workload', host, workload_id=workload_id)
        current = self.workloads.get(workload_id)
        if current is None or current['node'] != host:
            raise exception.ResourceNotFound(kind='Workload',
                                             id=workload_id)
        if workload_id in self.failing_activations:
            raise exception.WorkloadStartFailed(
                workload_id=workload_id,
                reason='it did not answer (a test said so); it is left '
                       'prepared')
        if current['state'] == 'prepared':
            current.update(state='running', healthy=self.healthy,
                           reason=None)
        return {k: v for k, v in current.items() if k != 'node'}

    def update_instance(self, ctxt, host, instance_id, vhsm_endpoints,
                        credentials):
        """Pretend to reconfigure an instance."""
        self._record('update_instance', host, instance_id=instance_id,
                     vhsm_endpoints=list(vhsm_endpoints),
                     credentials=list(credentials))
        return {k: v for k, v in self.workloads[instance_id].items()
                if k != 'node'}

    def stop_workload(self, ctxt, host, workload_id):
        """Pretend to stop a workload."""
        self._record('stop_workload', host, workload_id=workload_id)
        self.workloads.pop(workload_id, None)
        return {}

    def list_workloads(self, ctxt, host):
        """The workloads started on ``host``."""
        self._record('list_workloads', host)
        return [{k: v for k, v in w.items() if k != 'node'}
                for w in self.workloads.values() if w['node'] == host]
