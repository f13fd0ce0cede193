"""cryptocloud-healthcheck: finding the config, the target and probing."""

import io
import os
import socket
import subprocess
import sys
import time
from unittest import mock

import fixtures
import testtools

from cryptocloud.cmd import healthcheck
from cryptocloud.tests.unit.images import fakes


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class ConfigTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def target(self, text: str, kind: str | None = None):
        parser = healthcheck.read_config([self.write('w.conf', text)])
        return healthcheck.probe_target(
            parser, kind or healthcheck.guess_kind(parser))

    def test_config_files_from_argv(self):
        conf_dir = os.path.join(self.tmp, 'conf.d')
        os.mkdir(conf_dir)
        for name in ('b.conf', 'a.conf', 'ignored.txt'):
            open(os.path.join(conf_dir, name), 'w').close()
        argv = ['/opt/cryptocloud/bin/python', 'cryptocloud-vhsm',
                '--config-file', '/etc/one.conf', '--config-file=/etc/2.conf',
                '--config-dir', conf_dir, '--config-dir', '/no/such/dir']
        self.assertEqual(
            ['/etc/one.conf', '/etc/2.conf',
             os.path.join(conf_dir, 'a.conf'),
             os.path.join(conf_dir, 'b.conf')],
            healthcheck.config_files(argv))
        self.assertEqual([], healthcheck.config_files(['x', '--config-file']))

    def test_kind_from_argv(self):
        self.assertEqual('vhsm', healthcheck.kind_from_argv(
            ['/opt/cryptocloud/bin/cryptocloud-vhsm', '--config-file', 'x']))
        self.assertEqual('cryptoservice', healthcheck.kind_from_argv(
            ['python3', '-m', 'cryptocloud.cmd.cryptoservice']))
        self.assertEqual('vhsm', healthcheck.kind_from_argv(
            ['/sbin/docker-init', '--', 'cryptocloud-vhsm']))
        self.assertIsNone(healthcheck.kind_from_argv(['sleep', '10']))

    def test_vhsm_status_port(self):
        self.assertEqual(
            ('10.0.0.5', 9700, '/healthz'),
            self.target('[vhsm]\nhost = 10.0.0.5\nport = 9611\n'
                        'status_port = 9700\n'))

    def test_vhsm_without_status_port_probes_tcp(self):
        self.assertEqual(('127.0.0.1', 9611, None),
                         self.target('[vhsm]\nport = 9611\n'))
        self.assertEqual(('127.0.0.1', 9610, None),
                         self.target('[vhsm]\nstatus_port = 0\n'))

    def test_cryptoservice(self):
        self.assertEqual(('127.0.0.1', 9620, '/healthz'),
                         self.target('[cryptoservice]\nthreads = 4\n'))
        self.assertEqual(
            ('::1', 8443, '/healthz'),
            self.target('[DEFAULT]\ndebug = true\n[cryptoservice]\n'
                        'host = ::\nport = 8443\n'))
        self.assertEqual(
            ('127.0.0.1', 8443, '/healthz'),
            self.target('[cryptoservice]\nhost = 0.0.0.0\nport = 8443\n'))

    def test_kind_given_wins_over_sections(self):
        text = ('[vhsm]\nstatus_port = 9700\n[cryptoservice]\nport = 9620\n'
                '[keystore]\nconnection = sqlite:////x/$state_path/k\n')
        self.assertEqual(9700, self.target(text, 'vhsm')[1])
        self.assertEqual(9620, self.target(text)[1])

    def test_oslo_style_config_parses(self):
        # Repeated keys (multi-valued options) and "$var" substitutions
        # are oslo.config's; configparser must not choke on them.
        text = ('[DEFAULT]\nlog_dir = $state_path/log\n'
                '[cryptoservice]\nvhsm_endpoints = a:1\n'
                'vhsm_endpoints = b:2\nport = 9621\n')
        self.assertEqual(9621, self.target(text)[1])

    def test_later_files_win(self):
        one = self.write('1.conf', '[cryptoservice]\nport = 1111\n')
        two = self.write('2.conf', '[cryptoservice]\nport = 2222\n')
        parser = healthcheck.read_config([one, two])
        self.assertEqual(2222, healthcheck.probe_target(
            parser, 'cryptoservice')[1])

    def test_errors(self):
        bad = self.write('bad.conf', 'no section header\n')
        for paths, text in (
                ([os.path.join(self.tmp, 'missing.conf')], 'cannot read'),
                ([bad], 'cannot parse %s' % bad)):
            exc = self.assertRaises(healthcheck.HealthcheckError,
                                    healthcheck.read_config, paths)
            self.assertIn(text, str(exc))
        for text, message in (
                ('[DEFAULT]\ndebug = true\n', 'neither a [vhsm] nor'),
                ('[cryptoservice]\nport = http\n', 'not a port'),
                ('[cryptoservice]\nport = 70000\n', 'not a port'),
                ('[cryptoservice]\nport = 0\n', 'nothing to probe'),
                ('[vhsm]\nport = 0\n', 'both 0')):
            exc = self.assertRaises(healthcheck.HealthcheckError,
                                    self.target, text)
            self.assertIn(message, str(exc))


class ProbeTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.status = 200
        self.server = self.useFixture(fakes.HTTPServer(
            lambda method, path, headers: fakes.Reply(
                self.status if path == '/healthz' else 404, body=b'{}')))
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def config(self, text: str) -> str:
        path = os.path.join(self.tmp, 'workload.conf')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def main(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with mock.patch('sys.stdout', out):
            code = healthcheck.main(list(argv))
        return code, out.getvalue()

    def test_healthy_service(self):
        conf = self.config('[cryptoservice]\nport = %d\n' % self.server.port)
        code, out = self.main('--config-file', conf)
        self.assertEqual(0, code, out)
        self.assertEqual('healthy: GET http://127.0.0.1:%d/healthz answered '
                         '200\n' % self.server.port, out)
        self.assertEqual([('GET', '/healthz')],
                         [r[:2] for r in self.server.requests])

    def test_unhealthy_answer(self):
        self.status = 503
        conf = self.config('[vhsm]\nstatus_port = %d\n' % self.server.port)
        code, out = self.main('--config-file', conf)
        self.assertEqual(1, code)
        self.assertEqual('unhealthy: GET http://127.0.0.1:%d/healthz '
                         'answered 503\n' % self.server.port, out)

    def test_nothing_listening(self):
        port = _closed_port()
        conf = self.config('[cryptoservice]\nport = %d\n' % port)
        code, out = self.main('--config-file', conf)
        self.assertEqual(1, code)
        self.assertIn('failed: Connection refused', out)
        self.assertEqual(1, out.count('\n'))

    def test_no_answer_times_out(self):
        # Listening, never accepting: the connection is made, the answer
        # never comes.
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(('127.0.0.1', 0))
        silent.listen(8)
        conf = self.config('[cryptoservice]\nport = %d\n'
                           % silent.getsockname()[1])
        start = time.monotonic()
        code, out = self.main('--config-file', conf, '--timeout', '0.3')
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(1, code)
        self.assertIn('timed out', out)

    def test_tcp_probe(self):
        conf = self.config('[vhsm]\nport = %d\n' % self.server.port)
        code, out = self.main('--config-file', conf, '--kind', 'vhsm')
        self.assertEqual(0, code, out)
        self.assertIn('accepting connections on 127.0.0.1:%d'
                      % self.server.port, out)
        conf = self.config('[vhsm]\nport = %d\n' % _closed_port())
        code, out = self.main('--config-file', conf)
        self.assertEqual(1, code)
        self.assertIn('no connection to 127.0.0.1:', out)

    def test_config_from_the_workload_command_line(self):
        conf = self.config('[cryptoservice]\nport = %d\n' % self.server.port)
        # A stand-in for the container's process 1: its command line
        # names the program and the config file.
        proc = subprocess.Popen(
            [sys.executable, '-c',
             'import sys; print("ready", flush=True); sys.stdin.read()',
             'cryptocloud-cryptoservice', '--config-file', conf],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.stdin.close)
        # Once it prints, its exec is done and /proc shows its arguments.
        self.assertEqual(b'ready\n', proc.stdout.readline())
        code, out = self.main('--pid', str(proc.pid))
        self.assertEqual(0, code, out)

    def test_process_without_config(self):
        code, out = self.main('--pid', str(os.getpid()))
        self.assertEqual(1, code)
        self.assertIn('no --config-file on the command line of process',
                      out)

    def test_unreadable_process(self):
        self.assertEqual([], healthcheck.process_argv(2 ** 22 + 12345))

    def test_program_runs(self):
        conf = self.config('[cryptoservice]\nport = %d\n' % self.server.port)
        result = subprocess.run(
            [sys.executable, '-m', 'cryptocloud.cmd.healthcheck',
             '--config-file', conf], capture_output=True, text=True,
            timeout=30)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertIn('healthy', result.stdout)
        # Stdlib only: it must not pull in oslo.config (slow, and what
        # it checks must not depend on it).
        result = subprocess.run(
            [sys.executable, '-c',
             'import sys; import cryptocloud.cmd.healthcheck; '
             'print(sorted(m for m in sys.modules if m.startswith('
             '("oslo", "cryptocloud.conf"))))'],
            capture_output=True, text=True, timeout=30)
        self.assertEqual('[]', result.stdout.strip(), result.stderr)
