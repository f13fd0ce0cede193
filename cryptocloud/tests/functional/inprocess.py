"""The control plane in one process, for the in-process functional runs.

``InProcessControlPlane`` runs ``cryptocloud-all-in-one`` with named
compute nodes (``--node``), SQLite, the in-process bus and the process
driver, and talks to its admin API like :class:`controlplane.ControlPlane`
does to the separate daemons.  With one process there is no conductor to
kill alone: the whole process is killed and started again, and a
"stopped compute daemon" is a node the next start leaves out.
"""

import os
import signal
import sys

import fixtures
import requests

from cryptocloud.common import workloads
from cryptocloud.tests import ports
from cryptocloud.tests.functional import controlplane


class InProcessControlPlane(controlplane.AdminClient, fixtures.Fixture):
    """cryptocloud-all-in-one with ``computes`` as a child process."""

    def __init__(self, computes: tuple, *,
                 port_range: tuple[int, int] | None = None):
        super().__init__()
        self.compute_specs = computes
        # The nodes' workload ports; by default a block the test holds.
        self.port_range = port_range

    def _setUp(self):
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.state = os.path.join(self.dir, 'aio')
        # Workloads outlive the all-in-one (--keep-workloads); not the test.
        self.addCleanup(controlplane.kill_processes_under, self.state)
        self.api_port = workloads.free_port()
        if self.port_range is None:
            block = self.useFixture(ports.PortBlock(
                controlplane.PORTS_PER_NODE * len(self.compute_specs)))
            self.port_range = (block.start, block.end)
        self.url = 'http://%s:%d' % (controlplane.HOST, self.api_port)
        self.session = requests.Session()
        self.addCleanup(self.session.close)
        self.process: workloads.LocalProcess | None = None
        self.start()

    def start(self, computes: tuple | None = None) -> None:
        """Start the all-in-one with ``computes`` (default: all of them)."""
        argv = [sys.executable, '-m', 'cryptocloud.cmd.all_in_one',
                '--state-dir', self.state, '--api-port', str(self.api_port),
                '--port-range', '%d-%d' % self.port_range,
                '--no-provision', '--keep-workloads']
        for host, roles in computes or self.compute_specs:
            argv += ['--node', '%s:%s' % (host, roles)]
        self.process = workloads.LocalProcess(
            'all-in-one', argv, os.path.join(self.dir, 'stdout.log'))
        self.process.start()
        self.addCleanup(self.process.stop)
        self.process.wait_listening(controlplane.HOST, self.api_port,
                                    timeout=120)
        with open(os.path.join(self.state, 'admin-password')) as f:
            self.admin_auth = ('admin', f.read().strip())

    def kill(self) -> None:
        """SIGKILL the whole control plane (its workloads keep running)."""
        self.process.kill()

    def stop(self) -> None:
        """Stop it as Ctrl-C would, leaving the workloads to be adopted."""
        self.process.signal(signal.SIGTERM)
        self.process.stop(timeout=60)
