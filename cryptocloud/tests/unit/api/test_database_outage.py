"""The control database restarting is a 503 the caller may retry."""

import fixtures
from oslo_db import exception as db_exc

from cryptocloud.tests.unit.api import base


class TestDatabaseOutage(base.APITestCase):

    def test_unreachable_database_is_503(self):
        self.useFixture(fixtures.MockPatchObject(
            self.conn, 'list', side_effect=db_exc.DBConnectionError(
                "(2003, \"Can't connect to MySQL server on '10.0.0.9'\")")))
        resp = self.call('GET', '/v1/vhsm_groups', user='admin')
        err = self.assertError(resp, 503, 'ServiceUnavailable',
                               text='control database cannot be reached')
        # The driver's message (addresses...) is not passed on.
        self.assertNotIn('10.0.0.9', err['message'])

    def test_other_database_errors_stay_500(self):
        self.useFixture(fixtures.MockPatchObject(
            self.conn, 'list', side_effect=db_exc.DBError('odd')))
        resp = self.call('GET', '/v1/vhsm_groups', user='admin')
        self.assertError(resp, 500)
