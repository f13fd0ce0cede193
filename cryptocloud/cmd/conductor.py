"""cryptocloud-conductor: schedules workloads, runs tasks and the periodic
passes (node liveness, reconciliation, recovery of orphaned tasks)."""

import signal
import socket
import sys
import threading

from oslo_log import log as logging

# First of ours: the conductor package selects oslo.service's threading
# backend before oslo.messaging is imported.
from cryptocloud import conductor  # noqa: F401
from cryptocloud.common import rpc
from cryptocloud.common import service
from cryptocloud.compute import rpcapi as compute_rpcapi
from cryptocloud.conductor import manager as manager_mod
from cryptocloud.conductor import periodic as periodic_mod
from cryptocloud.conductor import task_runner
from cryptocloud.conductor.scheduler import scheduler as scheduler_mod
from cryptocloud.db import api as db_api

CONF = service.CONF
LOG = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the conductor until SIGTERM or SIGINT."""
    service.prepare_service(argv, prog='cryptocloud-conductor')
    opts = CONF.conductor
    host = opts.host or socket.gethostname()
    rpc.init(CONF)
    db = db_api.Connection(
        CONF.database.connection,
        max_pool_size=CONF.database.max_pool_size,
        pool_timeout=CONF.database.pool_timeout,
        connect_retries=CONF.database.connect_retries)
    db.check_schema()
    scheduler = scheduler_mod.Scheduler(
        db, heartbeat_timeout=opts.heartbeat_timeout)
    runner = task_runner.TaskRunner(
        db, compute_rpcapi.ComputeAPI(timeout=opts.rpc_timeout), scheduler,
        owner=host, workers=opts.workers, lease_seconds=opts.task_lease,
        provision_timeout=opts.provision_timeout)
    periodic = periodic_mod.PeriodicTasks(
        db, runner, interval=opts.periodic_interval,
        heartbeat_timeout=opts.heartbeat_timeout)
    manager = manager_mod.ConductorManager(db, runner)
    server = rpc.get_server(rpc.CONDUCTOR_TOPIC, host,
                            manager_mod.RPC_API_VERSION, [manager])

    stop = threading.Event()

    def on_stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)

    runner.start()
    # Tasks left behind by a conductor that died (this one, perhaps).
    periodic.recover_tasks()
    server.start()
    periodic.start()
    LOG.info('Conductor %s running (%d workers, periodic every %d s).',
             host, opts.workers, opts.periodic_interval)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        LOG.info('Stopping conductor %s.', host)
        server.stop()
        server.wait()
        periodic.stop()
        # Running tasks finish; unstarted ones stay for another conductor.
        runner.stop(wait=True)
        db.close()
        rpc.cleanup()
        LOG.info('Conductor %s stopped.', host)
    return 0


if __name__ == '__main__':
    sys.exit(main())
