"""The compute daemon: RPC server, registration and heartbeats.

At start-up the driver's ``list()`` is the truth: workloads found running
(left by an earlier daemon) are adopted and reported with the first
heartbeat.  Every ``[compute] heartbeat_interval`` seconds the daemon sends
the status of all its workloads and the node's load to the conductor; this
is also the periodic state sync from which the conductor notices exited or
unknown workloads.  Stopping the daemon leaves the workloads running.
"""

import threading

from oslo_log import log as logging

from cryptocloud.common import context as cc_context
from cryptocloud.common import rpc
from cryptocloud.compute import manager as manager_mod
from cryptocloud.compute import rpcapi
from cryptocloud.conductor import rpcapi as conductor_rpcapi

LOG = logging.getLogger(__name__)


class ComputeService:
    """One compute node: serves compute RPC and reports to the conductor."""

    def __init__(self, manager: manager_mod.ComputeManager | None = None,
                 conductor_api: conductor_rpcapi.ConductorAPI | None = None
                 ) -> None:
        self.manager = manager or manager_mod.ComputeManager()
        self.host = self.manager.host
        interval = self.manager.conf.heartbeat_interval
        # retry=1: the heartbeat loop retries on its own; a call that
        # waited for the broker would sleep out oslo.messaging's growing
        # back-off and be heard late after the broker restarts.
        self.conductor = conductor_api or conductor_rpcapi.ConductorAPI(
            timeout=max(5, 2 * interval), retry=1)
        self.registered = False
        self.heartbeats = 0
        # Orphans named by the previous heartbeat's answer.
        self._orphans: set[str] = set()
        self._stop = threading.Event()
        # Set to send the next heartbeat now (a workload died).
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._rpc_server = None

    def start(self) -> None:
        """Adopt running workloads, serve RPC, register, heartbeat."""
        adopted = self.manager.driver.list()
        for status in adopted:
            LOG.info('Adopted %s workload %s (%s, %s).', status.kind,
                     status.workload_id, status.state,
                     status.workload_ref or status.reason)
        self._rpc_server = rpc.get_server(
            rpc.COMPUTE_TOPIC, self.host, rpcapi.RPC_API_VERSION,
            [self.manager])
        self._rpc_server.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop,
                                        name='compute-heartbeat',
                                        daemon=True)
        self._thread.start()
        if self.manager.conf.watch_interval > 0:
            self._watcher = threading.Thread(target=self._watch,
                                             name='compute-watch',
                                             daemon=True)
            self._watcher.start()
        LOG.info('Compute node %s serving on topic %s with %d adopted '
                 'workloads.', self.host, rpc.COMPUTE_TOPIC, len(adopted))

    def register(self) -> dict:
        """Register this node with the conductor; return its node row."""
        conf = self.manager.conf
        node = self.conductor.register_node(
            cc_context.get_admin_context(), self.host, conf.address,
            list(conf.roles), conf.vhsm_capacity, conf.instance_capacity)
        self.registered = True
        LOG.info('Registered compute node %s (%s) with roles %s.',
                 self.host, conf.address, ','.join(conf.roles))
        return node

    def heartbeat(self) -> None:
        """Send every workload's status and the node's load once.

        Workloads the conductor calls orphans in two heartbeats running
        (no row describes them: deleted while this node was away) are
        removed; one answer alone could race a workload being recorded.
        """
        statuses = self.manager.workload_statuses()
        reply = self.conductor.heartbeat(
            cc_context.get_admin_context(), self.host,
            [s.to_dict() for s in statuses],
            self.manager.node_load(statuses))
        self.heartbeats += 1
        orphans = set()
        if isinstance(reply, dict):
            orphans = {o for o in reply.get('orphans') or ()
                       if isinstance(o, str)}
        for workload_id in sorted(orphans & self._orphans):
            LOG.warning('Removing workload %s: the control plane has no '
                        'record of it.', workload_id)
            try:
                self.manager.stop_workload(cc_context.get_admin_context(),
                                           workload_id)
            except Exception as exc:  # noqa: BLE001 - retried next time
                LOG.warning('Could not remove orphan %s: %s', workload_id,
                            exc)
        self._orphans = orphans - self._orphans

    def _watch(self) -> None:
        """Wake the heartbeat when a running workload stops running."""
        interval = self.manager.conf.watch_interval
        running: set[str] = set()
        while not self._stop.wait(interval):
            try:
                now = {s.workload_id for s in self.manager.driver.list()
                       if s.state == 'running'}
            except Exception as exc:  # noqa: BLE001 - the heartbeat says
                LOG.debug('Workload check failed: %s', exc)
                continue
            died = running - now
            running = now
            if died:
                LOG.info('Workload(s) %s stopped running; reporting now.',
                         ', '.join(sorted(died)))
                self._wake.set()

    def _loop(self) -> None:
        interval = self.manager.conf.heartbeat_interval
        wait = 0.0
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = interval
            try:
                if not self.registered:
                    self.register()
                self.heartbeat()
            except Exception as exc:
                # The conductor may be down or restarting: keep trying.
                LOG.warning('Heartbeat of %s failed (%s: %s); retrying in '
                            '%d s.', self.host, type(exc).__name__, exc,
                            interval)

    def stop(self) -> None:
        """Stop heartbeats and RPC; the workloads keep running."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.manager.conf.heartbeat_interval + 30)
            self._thread = None
        if self._watcher is not None:
            self._watcher.join(self.manager.conf.watch_interval + 30)
            self._watcher = None
        if self._rpc_server is not None:
            self._rpc_server.stop()
            self._rpc_server.wait()
            self._rpc_server = None
        self.manager.close()
        LOG.info('Compute node %s stopped; its workloads keep running.',
                 self.host)
