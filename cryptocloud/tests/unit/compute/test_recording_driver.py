"""The recording driver (scale benchmark only): specs in memory."""

from cryptocloud.common import exception
from cryptocloud.compute.drivers import base as driver_base
from cryptocloud.compute.drivers import recording
from cryptocloud.tests.unit.compute import base


class RecordingDriverTest(base.ComputeTestCase):

    def spec(self, workload_id='inst-1', port=41000):
        return driver_base.WorkloadSpec(
            workload_id=workload_id, kind=driver_base.CRYPTOSERVICE,
            port=port, config_text='[cryptoservice]\n',
            workdir='/nonexistent', metadata={'service_id': 'svc-1'})

    def test_prepare_activate_deactivate_stop(self):
        driver = recording.RecordingDriver(self.state_path)
        status = driver.prepare(self.spec())
        self.assertEqual(driver_base.PREPARED, status.state)
        self.assertFalse(status.healthy)
        self.assertEqual([('inst-1', driver_base.PREPARED, 41000)],
                         [(s.workload_id, s.state, s.port)
                          for s in driver.list()])
        # Prepared again (new files): still prepared, no reload counted.
        driver.update(self.spec())
        self.assertEqual(driver_base.PREPARED,
                         driver.status('inst-1').state)
        self.assertNotIn('inst-1', driver.reloads)

        status = driver.activate('inst-1')
        self.assertEqual((driver_base.RUNNING, True),
                         (status.state, status.healthy))
        self.assertEqual(driver_base.RUNNING,
                         driver.activate('inst-1').state)
        self.assertRaises(exception.Conflict, driver.prepare, self.spec())
        driver.update(self.spec())
        self.assertEqual(1, driver.reloads['inst-1'])

        self.assertEqual(driver_base.PREPARED,
                         driver.deactivate('inst-1').state)
        driver.stop('inst-1')
        self.assertEqual(driver_base.MISSING,
                         driver.status('inst-1').state)
        self.assertEqual([], driver.list())
        self.assertRaises(exception.InvalidState, driver.activate, 'inst-1')
        self.assertRaises(exception.InvalidState, driver.deactivate,
                          'inst-1')

    def test_manager_prepares_and_activates(self):
        driver = recording.RecordingDriver(self.state_path)
        mgr = self.new_manager(driver)
        cred = {'id': 'c1', 'project_id': 'p', 'secret_sha256': 'a' * 64}
        primary = mgr.start_instance(None, 'inst-1', 'svc-1', 'group-a',
                                     ['127.0.0.1:1'], [cred])
        replica = mgr.prepare_instance(None, 'inst-2', 'svc-1', 'group-a',
                                       ['127.0.0.1:1'], [cred],
                                       port=primary['port'])
        self.assertEqual(('prepared', primary['port']),
                         (replica['state'], replica['port']))
        status = mgr.activate_workload(None, 'inst-2')
        self.assertEqual(('running', True, primary['port']),
                         (status['state'], status['healthy'],
                          status['port']))
        # It took over the primary's host:port: the primary is gone.
        self.assertEqual(['inst-2'], sorted(driver.specs))
