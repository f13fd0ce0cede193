"""The keystore API on SQLite, MariaDB and PostgreSQL.

The same tests as the unit tests, run against real database servers,
where the races (domain key insert, rotation, conditional state changes)
are settled by row locks rather than SQLite's single writer.
"""

import testscenarios
import testtools

from cryptocloud.tests import db as test_db
from cryptocloud.tests.unit.vhsm.keystore import test_api


class TestKeystoreBackends(testscenarios.WithScenarios,
                           test_api.KeystoreTests, testtools.TestCase):
    """Every keystore test on every backend."""

    scenarios = test_db.backend_scenarios()
