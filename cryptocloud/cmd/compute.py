"""cryptocloud-compute: the daemon that runs a node's workloads."""

# The compute package selects oslo.service's threading backend, which
# must happen before oslo.messaging is imported.
from cryptocloud.compute import service as compute_service  # noqa: I001

import signal
import sys
import threading

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import rpc
from cryptocloud.common import service
from cryptocloud.conf import CONF

LOG = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the compute daemon until SIGTERM or SIGINT."""
    service.prepare_service(argv, prog='cryptocloud-compute')
    rpc.init(CONF)
    try:
        daemon = compute_service.ComputeService()
        daemon.start()
    except exception.CryptoCloudException as exc:
        LOG.error('The compute daemon cannot start: %s', exc)
        print('cryptocloud-compute: %s' % exc, file=sys.stderr)
        rpc.cleanup()
        return 1

    stop = threading.Event()

    def _stop(signum, frame):
        LOG.info('Signal %d received; stopping.', signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop.wait(1.0):
        pass
    daemon.stop()
    rpc.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
