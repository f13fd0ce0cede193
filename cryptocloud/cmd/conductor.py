"""cryptocloud-conductor: schedules workloads, runs tasks and the periodic
passes (node liveness, reconciliation, recovery of orphaned tasks)."""

import signal
import sys
import threading

from cryptocloud.common import rpc
from cryptocloud.common import service
from cryptocloud.conductor import service as conductor_service
from cryptocloud.db import api as db_api

CONF = service.CONF


def main(argv: list[str] | None = None) -> int:
    """Run the conductor until SIGTERM or SIGINT."""
    service.prepare_service(argv, prog='cryptocloud-conductor')
    rpc.init(CONF)
    db = db_api.Connection(
        CONF.database.connection,
        max_pool_size=CONF.database.max_pool_size,
        pool_timeout=CONF.database.pool_timeout,
        connect_retries=CONF.database.connect_retries)
    db.check_schema()
    conductor = conductor_service.ConductorService(CONF, db)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    conductor.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        conductor.stop()
        db.close()
        rpc.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
