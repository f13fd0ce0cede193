"""The control-plane database API on SQLite, MariaDB and PostgreSQL.

The same tests as the unit tests, run against real database servers,
where the races (task claims, state transitions, node registration and
liveness) are settled by row locks rather than SQLite's single writer.
"""

import testscenarios
import testtools

from cryptocloud.tests import db as test_db
from cryptocloud.tests.unit.db import test_api


class TestControlDBBackends(testscenarios.WithScenarios,
                            test_api.ControlDBTests, testtools.TestCase):
    """Every control-plane database test on every backend."""

    scenarios = test_db.backend_scenarios()
