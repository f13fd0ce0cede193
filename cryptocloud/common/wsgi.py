"""A threaded WSGI server (cheroot) that runs in the background.

cheroot serves each connection from a pool of native threads, which is
what the request path needs: the vHSM call blocks in a socket read that
releases the GIL.  No eventlet, no monkey-patching.
"""

import threading

from cheroot import wsgi as cheroot_wsgi
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class Server:
    """A started WSGI server; ``port`` is the one actually bound."""

    def __init__(self, app, host: str, port: int, threads: int, *,
                 name: str = 'cryptocloud', timeout: float = 60.0):
        self._server = cheroot_wsgi.Server(
            (host, port), app, numthreads=threads, server_name=name,
            timeout=int(timeout))
        # Without this cheroot waits up to 5 s per thread at stop().
        self._server.shutdown_timeout = 1
        self._server.prepare()
        self.host, self.port = self._server.bind_addr[:2]
        self._thread = threading.Thread(target=self._server.serve,
                                        name='wsgi-%s' % name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish the requests in progress, join."""
        self._server.stop()
        self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


def serve(app, host: str, port: int, threads: int) -> Server:
    """Start serving ``app`` on host:port (0 picks a free port)."""
    server = Server(app, host, port, threads)
    LOG.debug('WSGI server bound to %s:%d with %d threads.', server.host,
              server.port, threads)
    return server
