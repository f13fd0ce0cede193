"""Workflows on a real SQLite control database with a fake compute."""

import collections

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor.workflows import base as wf_base
from cryptocloud.tests.unit.conductor import base


class TestGroupWorkflows(base.ConductorTestCase):

    def setUp(self):
        super().setUp()
        self.nodes = [self.add_node('n%d' % i) for i in range(3)]

    def test_create_spreads_over_device_nodes(self):
        group = self.add_group(size=3)
        self.run_task('create_vhsm_group', group['id'])
        self.assertEqual(states.ACTIVE,
                         self.db.get('vhsm_groups', group['id'])['state'])
        vhsms = self.db.list('vhsms', filters={'group_id': group['id']})
        self.assertEqual([states.ACTIVE] * 3, [v['state'] for v in vhsms])
        self.assertEqual(3, len({v['node_id'] for v in vhsms}))
        self.assertTrue(all(v['port'] and v['workload_ref'] for v in vhsms))

    def test_create_is_idempotent_after_a_crash(self):
        group = self.add_group(size=2)
        # A conductor died after writing one row and before starting it.
        self.db.create('vhsms', {'group_id': group['id'],
                                 'node_id': self.nodes[0]['id'],
                                 'state': states.BUILDING})
        self.run_task('create_vhsm_group', group['id'])
        vhsms = self.db.list('vhsms', filters={'group_id': group['id']})
        self.assertEqual(2, len(vhsms))
        self.assertEqual(2, len(self.compute.methods('start_vhsm')))

    def test_no_valid_host_fails_the_group_with_the_reason(self):
        group = self.add_group(size=2)
        for n in self.nodes:
            self.db.update('nodes', n['id'], {'enabled': False})
        exc = self.assertRaises(exception.NoValidHost, self.run_task,
                                'create_vhsm_group', group['id'])
        self.assertIn('3 are disabled', str(exc))
        group = self.db.get('vhsm_groups', group['id'])
        self.assertEqual(states.ERROR, group['state'])
        self.assertIn('3 are disabled', group['status_reason'])

    def test_failed_start_is_replaced_on_another_node(self):
        self.compute.failing_hosts.add('n0')
        group = self.add_group(size=3)
        self.run_task('create_vhsm_group', group['id'])
        vhsms = self.db.list('vhsms', filters={'group_id': group['id']})
        self.assertEqual([states.ACTIVE] * 3, [v['state'] for v in vhsms])
        self.assertNotIn(self.nodes[0]['id'], {v['node_id'] for v in vhsms})

    def test_unhealthy_start_times_out(self):
        self.compute.healthy = False
        group = self.add_group(size=1)
        exc = self.assertRaises(wf_base.WorkflowError, self.run_task,
                                'create_vhsm_group', group['id'], 0.2)
        self.assertIn('timed out', str(exc))

    def test_resize_up_and_down(self):
        group = self.add_group(size=2)
        self.run_task('create_vhsm_group', group['id'])
        self.db.transition('vhsm_groups', group['id'],
                           states.RESOURCE_MACHINE, 'resize',
                           {'target_size': 4})
        self.run_task('resize_vhsm_group', group['id'])
        self.assertEqual(4, self.db.count('vhsms',
                                          {'group_id': group['id']}))
        self.db.transition('vhsm_groups', group['id'],
                           states.RESOURCE_MACHINE, 'resize',
                           {'target_size': 1})
        self.run_task('resize_vhsm_group', group['id'])
        self.assertEqual(1, self.db.count('vhsms',
                                          {'group_id': group['id']}))
        self.assertEqual(3, len(self.compute.methods('stop_workload')))
        self.assertEqual(states.ACTIVE,
                         self.db.get('vhsm_groups', group['id'])['state'])

    def test_delete_with_services_attached_fails(self):
        group = self.add_group(size=1)
        self.run_task('create_vhsm_group', group['id'])
        self.add_service(group['id'])
        exc = self.assertRaises(wf_base.WorkflowError, self.run_task,
                                'delete_vhsm_group', group['id'])
        self.assertIn('still has 1 service(s) attached', str(exc))
        self.assertEqual(states.ACTIVE,
                         self.db.get('vhsm_groups', group['id'])['state'])

    def test_delete_removes_everything(self):
        group = self.add_group(size=2)
        self.run_task('create_vhsm_group', group['id'])
        self.db.transition('vhsm_groups', group['id'],
                           states.RESOURCE_MACHINE, 'delete')
        self.run_task('delete_vhsm_group', group['id'])
        self.assertRaises(exception.NotFound, self.db.get, 'vhsm_groups',
                          group['id'])
        self.assertEqual(0, self.db.count('vhsms'))
        self.assertEqual(2, len(self.compute.methods('stop_workload')))
        # Running it again (a recovered task) is harmless.
        self.run_task('delete_vhsm_group', group['id'])


class TestServiceWorkflows(base.ConductorTestCase):

    def setUp(self):
        super().setUp()
        self.add_node('dev1', roles=['device'])
        self.add_node('dev2', roles=['device'])
        self.add_node('svc1', roles=['service'])
        self.add_node('svc2', roles=['service'])
        self.group = self.add_group(size=2)
        self.run_task('create_vhsm_group', self.group['id'])

    def vhsm_endpoints(self):
        return sorted('%s:%s' % (v['host'], v['port']) for v in self.db.list(
            'vhsms', filters={'group_id': self.group['id'],
                              'state': states.ACTIVE}))

    def test_create_service(self):
        service = self.add_service(self.group['id'], instances=2)
        self.run_task('create_service', service['id'])
        service = self.db.get('services', service['id'])
        self.assertEqual(states.ACTIVE, service['state'])
        insts = self.db.list('service_instances',
                             filters={'service_id': service['id']})
        self.assertEqual(2, len({i['node_id'] for i in insts}))
        self.assertEqual((insts[0]['host'], insts[0]['port']),
                         (service['endpoint_host'],
                          service['endpoint_port']))
        starts = self.compute.methods('start_instance')
        self.assertEqual({'svc1', 'svc2'}, {c[1] for c in starts})
        for _, _, kwargs in starts:
            self.assertEqual(self.vhsm_endpoints(),
                             sorted(kwargs['vhsm_endpoints']))
            self.assertEqual(['ab' * 32], [c['secret_sha256']
                                           for c in kwargs['credentials']])
            self.assertNotIn('token', str(kwargs))
        # Each instance is associated with every vHSM of the group.
        links = collections.Counter(a['instance_id']
                                    for a in self.db.list('associations'))
        self.assertEqual({i['id']: 2 for i in insts}, dict(links))

    def test_service_waits_for_its_group_then_fails(self):
        group = self.add_group(size=1)  # CREATING, never run
        service = self.add_service(group['id'])
        exc = self.assertRaises(wf_base.WorkflowError, self.run_task,
                                'create_service', service['id'], 0.2)
        self.assertIn('waiting for vHSM group', str(exc))
        self.assertEqual(states.ERROR,
                         self.db.get('services', service['id'])['state'])

    def test_service_of_a_failed_group_fails_at_once(self):
        group = self.add_group(size=1, state=states.ERROR)
        service = self.add_service(group['id'])
        exc = self.assertRaises(wf_base.WorkflowError, self.run_task,
                                'create_service', service['id'], 30)
        self.assertIn('is ERROR', str(exc))

    def test_group_resize_updates_instances_without_restart(self):
        service = self.add_service(self.group['id'], instances=2)
        self.run_task('create_service', service['id'])
        self.db.transition('vhsm_groups', self.group['id'],
                           states.RESOURCE_MACHINE, 'resize',
                           {'target_size': 3})
        self.run_task('resize_vhsm_group', self.group['id'])
        updates = self.compute.methods('update_instance')
        self.assertEqual(2, len(updates))
        for _, _, kwargs in updates:
            self.assertEqual(self.vhsm_endpoints(),
                             sorted(kwargs['vhsm_endpoints']))
        self.assertEqual(2, len(self.compute.methods('start_instance')))
        self.assertEqual(6, self.db.count('associations'))

    def test_resize_and_delete_service(self):
        service = self.add_service(self.group['id'], instances=1)
        self.run_task('create_service', service['id'])
        self.db.transition('services', service['id'],
                           states.RESOURCE_MACHINE, 'resize',
                           {'target_instances': 3})
        self.run_task('resize_service', service['id'])
        self.assertEqual(3, self.db.count(
            'service_instances', {'service_id': service['id']}))
        self.db.transition('services', service['id'],
                           states.RESOURCE_MACHINE, 'delete')
        self.run_task('delete_service', service['id'])
        self.assertRaises(exception.NotFound, self.db.get, 'services',
                          service['id'])
        self.assertEqual(0, self.db.count('service_instances'))
        self.assertEqual(0, self.db.count('associations'))
        self.assertEqual(0, self.db.count('service_credentials'))

    def test_credentials_are_pushed(self):
        service = self.add_service(self.group['id'], instances=2)
        self.run_task('create_service', service['id'])
        self.db.create('service_credentials', {
            'service_id': service['id'], 'project_id': 'p1',
            'secret_sha256': 'cd' * 32})
        self.run_task('update_service_credentials', service['id'])
        updates = self.compute.methods('update_instance')
        self.assertEqual(2, len(updates))
        self.assertEqual({'ab' * 32, 'cd' * 32},
                         {c['secret_sha256']
                          for c in updates[0][2]['credentials']})
