"""The conductor as an object: RPC server, task runner, periodic passes.

``cryptocloud-conductor`` runs one; ``cryptocloud-all-in-one`` embeds one
beside the API and compute nodes in a single process.
"""

import socket

from oslo_log import log as logging

from cryptocloud.common import context as cc_context
from cryptocloud.common import rpc
from cryptocloud.compute import rpcapi as compute_rpcapi
from cryptocloud.conductor import balancer as balancer_mod
from cryptocloud.conductor import manager as manager_mod
from cryptocloud.conductor import nodes
from cryptocloud.conductor import periodic as periodic_mod
from cryptocloud.conductor import proxy as proxy_mod
from cryptocloud.conductor import rpcapi as conductor_rpcapi
from cryptocloud.conductor import task_runner
from cryptocloud.conductor.scheduler import scheduler as scheduler_mod
from cryptocloud.db import api as db_api

LOG = logging.getLogger(__name__)


class ConductorService:
    """One conductor over a control database connection."""

    def __init__(self, conf, db: db_api.Connection):
        opts = conf.conductor
        self.host = opts.host or socket.gethostname()
        self.db = db
        self.interval = opts.periodic_interval
        self.workers = opts.workers
        hearing = nodes.Hearing(opts.heartbeat_timeout)
        scheduler = scheduler_mod.Scheduler(
            db, heartbeat_timeout=opts.heartbeat_timeout, hearing=hearing)
        self.runner = task_runner.TaskRunner(
            db, compute_rpcapi.ComputeAPI(timeout=opts.rpc_timeout),
            scheduler, owner=self.host, workers=opts.workers,
            lease_seconds=opts.task_lease,
            provision_timeout=opts.provision_timeout)
        self.periodic = periodic_mod.PeriodicTasks(
            db, self.runner, interval=opts.periodic_interval,
            heartbeat_timeout=opts.heartbeat_timeout,
            balancer=balancer_mod.Balancer(db, scheduler, owner=self.host),
            balancer_interval=opts.balancer_interval,
            bus_check=self.ping_self,
            hearing=hearing)
        # Bounded well under the heartbeat timeout: the liveness pass
        # waits for the answer.
        self._ping_timeout = max(1, min(opts.periodic_interval,
                                        opts.heartbeat_timeout // 3))
        self._self_api = conductor_rpcapi.ConductorAPI()
        self.server = rpc.get_server(
            rpc.CONDUCTOR_TOPIC, self.host, manager_mod.RPC_API_VERSION,
            [manager_mod.ConductorManager(db, self.runner, hearing)])
        self.proxy = (proxy_mod.ProxySync(db, conf)
                      if proxy_mod.enabled(conf) else None)

    def ping_self(self) -> dict:
        """An RPC call to this conductor over the bus; raises when the bus
        does not carry it (the broker is down or restarting)."""
        return self._self_api.ping(cc_context.get_admin_context(),
                                   self.host, self._ping_timeout)

    def start(self) -> None:
        """Recover orphaned tasks, then serve RPC and run the passes."""
        self.runner.start()
        # Tasks left behind by a conductor that died (this one, perhaps).
        self.periodic.recover_tasks(at_start=True)
        self.server.start()
        self.periodic.start()
        if self.proxy is not None:
            self.proxy.start()
        LOG.info('Conductor %s running (%d workers, periodic every %d s).',
                 self.host, self.workers, self.interval)

    def stop(self) -> None:
        """Stop taking work; running tasks finish, unstarted ones stay."""
        LOG.info('Stopping conductor %s.', self.host)
        self.server.stop()
        self.server.wait()
        self.periodic.stop()
        self.runner.stop(wait=True)
        if self.proxy is not None:
            # HAProxy keeps serving the endpoints while the conductor is
            # away (a restart, an upgrade).
            self.proxy.stop()
        LOG.info('Conductor %s stopped.', self.host)
