"""cryptocloud-api: the admin REST API, served by cheroot's threads."""

import signal
import sys
import threading

from oslo_log import log as logging

# First of ours: cryptocloud.api selects oslo.service's threading
# backend before oslo.messaging is imported.
from cryptocloud.api import app as app_mod
from cryptocloud.common import rpc
from cryptocloud.common import service
from cryptocloud.common import wsgi
from cryptocloud.conductor import rpcapi
from cryptocloud.db import api as db_api

CONF = service.CONF
LOG = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Serve the admin API until SIGTERM or SIGINT."""
    service.prepare_service(argv, prog='cryptocloud-api')
    rpc.init(CONF)
    connection = db_api.Connection(
        CONF.database.connection,
        max_pool_size=CONF.database.max_pool_size,
        pool_timeout=CONF.database.pool_timeout,
        connect_retries=CONF.database.connect_retries)
    connection.check_schema()
    application = app_mod.setup_app(CONF, connection, rpcapi.ConductorAPI())
    opts = CONF.api
    server = wsgi.serve(application, opts.host, opts.port, opts.threads)
    LOG.info('Admin API listening on http://%s:%d with %d threads '
             '(auth: %s).', server.host, server.port, opts.threads,
             opts.auth_strategy)

    stop = threading.Event()

    def on_stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    try:
        while not stop.is_set() and not server.wait(1.0):
            pass
    finally:
        LOG.info('Stopping the admin API.')
        # Requests in progress finish; then the pools and the bus close.
        server.stop()
        connection.close()
        rpc.cleanup()
        LOG.info('Admin API stopped.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
