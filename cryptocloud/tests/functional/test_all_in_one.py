"""cryptocloud-all-in-one, the README's main job, run as a newcomer would.

One process: admin API, conductor and three compute nodes on the
in-process bus with SQLite and the process driver.  It provisions a vHSM
group and a service, signs through the service endpoint and checks the
signature with openssl; a second start finds the same resources, has
their workloads replaced and serves again.
"""

import os
import subprocess
import sys

import fixtures
import testtools
from testtools import content

from cryptocloud.tests import ports
from cryptocloud.tests.functional import controlplane


class TestAllInOne(testtools.TestCase):

    def _run(self, state: str) -> str:
        result = subprocess.run(
            [sys.executable, '-m', 'cryptocloud.cmd.all_in_one',
             '--state-dir', state, '--api-port', '0', '--computes', '3',
             '--vhsms', '3', '--instances', '2', '--no-wait',
             '--port-range', '%d-%d' % (self.ports.start, self.ports.end)],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(0, result.returncode,
                         result.stdout[-3000:] + result.stderr[-3000:])
        return result.stdout

    def _attach_log(self, state: str):
        def attach(exc_info):
            path = os.path.join(state, 'all-in-one.log')
            if os.path.exists(path):
                with open(path, errors='replace') as f:
                    lines = [line for line in f if ' WARNING ' in line
                             or ' ERROR ' in line or 'task' in line]
                self.addDetail('all-in-one.log', content.text_content(
                    ''.join(lines[-150:])))
        return attach

    def test_provision_sign_and_restart(self):
        state = os.path.join(self.useFixture(fixtures.TempDir()).path,
                             'aio')
        self.ports = self.useFixture(ports.PortBlock(600))
        self.addCleanup(controlplane.kill_processes_under, state)
        self.addOnException(self._attach_log(state))
        out = self._run(state)
        self.assertIn('Service endpoint: http://127.0.0.1:', out)
        self.assertIn('openssl verify: OK', out)
        self.assertIn('Tenant credential (shown once):', out)
        # Nothing keeps running after it exits.
        self.assertEqual([], controlplane.kill_processes_under(state))
        # Second start: same resources, workloads replaced, serving again.
        out = self._run(state)
        self.assertNotIn('Provisioning', out)
        self.assertIn('openssl verify: OK', out)
        self.assertEqual([], controlplane.kill_processes_under(state))
        with open(os.path.join(state, 'all-in-one.log')) as f:
            log = f.read()
        for host in ('aio-compute-1', 'aio-compute-2', 'aio-compute-3'):
            self.assertIn('Node %s registered' % host, log)
