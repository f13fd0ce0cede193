"""A compute node's files in a temporary directory, for the unit tests.

Real secret files, a real SQLite keystore upgraded to the head, and the
``[compute]`` options pointing at them; ports come from a block the test
holds (:mod:`cryptocloud.tests.ports`), so that parallel test workers do
not meet.
"""

import os

import fixtures
import testtools

from cryptocloud.common import secretfile
from cryptocloud.compute import manager as manager_mod
from cryptocloud.compute.drivers import process
from cryptocloud.conf import CONF
from cryptocloud.db import migration
from cryptocloud.tests import db as test_db
from cryptocloud.tests import ports


class ComputeTestCase(testtools.TestCase):
    """``self.state_path``, secrets, a keystore and [compute] options."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.state_path = os.path.join(self.tmp, 'state')
        self.master_key_file = os.path.join(self.tmp, 'master.key')
        self.seed_file = os.path.join(self.tmp, 'group-secret.seed')
        secretfile.create_secret_file(self.master_key_file)
        secretfile.create_secret_file(self.seed_file)
        self.database = self.useFixture(test_db.Database('sqlite'))
        migration.upgrade(self.database.url)
        block = self.useFixture(ports.PortBlock(100))
        start = block.start
        self.port_range = (start, block.end)
        for name, value in (
                ('host', 'node-1'), ('address', '127.0.0.1'),
                ('state_path', self.state_path),
                ('port_range_start', start),
                ('port_range_end', start + 99),
                ('master_key_file', self.master_key_file),
                ('group_secret_seed_file', self.seed_file),
                ('keystore_connection', self.database.url),
                ('start_timeout', 30.0),
                ('heartbeat_interval', 1)):
            CONF.set_override(name, value, group='compute')
        self.addCleanup(CONF.clear_override, 'host', group='compute')
        self.addCleanup(_clear_compute_overrides)

    def new_driver(self) -> process.ProcessDriver:
        """A process driver on ``self.state_path`` (like a new daemon)."""
        return process.ProcessDriver(self.state_path, stop_timeout=5.0)

    def new_manager(self, driver=None) -> manager_mod.ComputeManager:
        """A manager whose workloads are all stopped at cleanup."""
        driver = driver or self.new_driver()
        mgr = manager_mod.ComputeManager(driver)
        self.addCleanup(mgr.close)
        self.addCleanup(self.stop_all, driver)
        return mgr

    @staticmethod
    def stop_all(driver) -> None:
        """Stop every workload the driver can find."""
        for status in driver.list():
            driver.stop(status.workload_id)


def _clear_compute_overrides() -> None:
    for opt in ('address', 'state_path', 'port_range_start',
                'port_range_end', 'master_key_file',
                'group_secret_seed_file', 'keystore_connection',
                'start_timeout', 'heartbeat_interval'):
        CONF.clear_override(opt, group='compute')
