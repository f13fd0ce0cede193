"""A real control database on SQLite and helpers to fill it."""

import os
import time

import fixtures
import testtools

from cryptocloud.common import states
from cryptocloud.conductor import workflows
from cryptocloud.conductor.scheduler import scheduler as scheduler_mod
from cryptocloud.conductor.workflows import base as wf_base
from cryptocloud.db import api as db_api
from cryptocloud.db import migration
from cryptocloud.tests.unit.conductor import fakes


class ConductorTestCase(testtools.TestCase):
    """Each test gets a migrated SQLite database and a fake compute."""

    def setUp(self):
        super().setUp()
        tmp = self.useFixture(fixtures.TempDir()).path
        self.url = 'sqlite:///%s' % os.path.join(tmp, 'control.sqlite')
        migration.upgrade(self.url, schema='control')
        self.db = db_api.Connection(self.url)
        self.addCleanup(self.db.close)
        self.compute = fakes.FakeComputeAPI()
        self.scheduler = scheduler_mod.Scheduler(self.db,
                                                 heartbeat_timeout=30)

    def add_node(self, host: str, roles=('device', 'service'),
                 vhsm_capacity: int = 4, instance_capacity: int = 4) -> dict:
        """Register a node that has just sent a heartbeat."""
        return self.db.register_node(host, '127.0.0.1', list(roles),
                                     vhsm_capacity, instance_capacity)

    def add_group(self, size: int = 2, state: str = states.CREATING) -> dict:
        """A vHSM group row as the API writes it."""
        return self.db.create('vhsm_groups', {
            'name': 'g', 'project_id': 'p1', 'target_size': size,
            'state': state})

    def add_service(self, group_id: str, instances: int = 2,
                    state: str = states.CREATING) -> dict:
        """A service row and one credential, as the API writes them."""
        service = self.db.create('services', {
            'name': 's', 'project_id': 'p1', 'group_id': group_id,
            'target_instances': instances, 'replicas': 0,
            'algorithms': ['SM2'], 'state': state})
        self.db.create('service_credentials', {
            'service_id': service['id'], 'project_id': 'p1',
            'secret_sha256': 'ab' * 32})
        return service

    def add_task(self, action: str, resource_id: str, **values) -> dict:
        """A PENDING task row."""
        return self.db.create('tasks', {
            'request_id': 'req-test', 'project_id': 'p1', 'action': action,
            'resource_type': 'x', 'resource_id': resource_id, 'params': {},
            'state': states.PENDING, **values})

    def workflow(self, task: dict, timeout: float = 5.0
                 ) -> wf_base.WorkflowContext:
        """A context to run ``task``'s workflow directly."""
        task = self.db.claim_task(task['id'], 'test-conductor', 60) or task
        return wf_base.WorkflowContext(
            db=self.db, compute=self.compute, scheduler=self.scheduler,
            task=task, lease=wf_base.Lease(task['id']),
            provision_timeout=timeout, poll_interval=0.01)

    def run_task(self, action: str, resource_id: str,
                 timeout: float = 5.0) -> None:
        """Run a task's workflow on this thread and finish the task."""
        task = self.add_task(action, resource_id)
        ok = False
        try:
            workflows.get(action)(self.workflow(task, timeout))
            ok = True
        finally:
            self.db.finish_task(task['id'], 'test-conductor', succeeded=ok)

    def wait_task(self, task_id: str, timeout: float = 10.0) -> dict:
        """The task once it is SUCCEEDED or FAILED."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.db.get('tasks', task_id)
            if task['state'] in states.TASK_FINAL_STATES:
                return task
            time.sleep(0.02)
        self.fail('task %s did not finish: %s' % (task_id, task))
