"""Config files and local processes of the workloads."""

import configparser
import os
import signal
import socket
import stat
import sys
import time

import fixtures
import testtools
from oslo_config import cfg
from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import workloads
from cryptocloud.conf import cryptoservice as cryptoservice_conf
from cryptocloud.conf import keystore as keystore_conf
from cryptocloud.conf import vhsm as vhsm_conf

# A child that listens on the port given as argv[1] until it is killed.
LISTENER = '''
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
while True:
    time.sleep(1)
'''
# A child that ignores SIGTERM, so stop() has to kill it.
STUBBORN = '''
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(1)
'''


def _load(path: str) -> cfg.ConfigOpts:
    """Parse ``path`` with the real option definitions of cryptocloud."""
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    vhsm_conf.register_opts(conf)
    keystore_conf.register_opts(conf)
    cryptoservice_conf.register_opts(conf)
    conf(['--config-file', path], project='cryptocloud',
         default_config_files=[])
    return conf


class TestRender(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def write(self, text: str, name: str = 'test.conf') -> str:
        return workloads.write_config(os.path.join(self.dir, name), text)

    def test_vhsm_config(self):
        config = workloads.VHSMConfig(
            group_id='group-1', port=19610,
            keystore_url='sqlite:////tmp/ks%20x.sqlite',
            master_key_file='/etc/cc/master.key',
            auth_secret_file='/etc/cc/group.secret', member_id='m-1',
            key_cache_ttl=0.5, purge_interval=3, debug=True)
        text = config.render()
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(text)
        self.assertEqual('19610', parser['vhsm']['port'])
        conf = _load(self.write(text))
        self.assertEqual(('127.0.0.1', 19610, 'group-1', 'm-1'),
                         (conf.vhsm.host, conf.vhsm.port, conf.vhsm.group_id,
                          conf.vhsm.member_id))
        self.assertEqual('/etc/cc/master.key', conf.vhsm.master_key_file)
        self.assertEqual('/etc/cc/group.secret', conf.vhsm.auth_secret_file)
        self.assertEqual(0.5, conf.vhsm.key_cache_ttl)
        self.assertEqual(3, conf.vhsm.purge_interval)
        # '%' must reach the option as written (no interpolation).
        self.assertEqual('sqlite:////tmp/ks%20x.sqlite',
                         conf.keystore.connection)
        self.assertTrue(conf.debug)

    def test_vhsm_config_leaves_unset_values_to_defaults(self):
        text = workloads.VHSMConfig(
            group_id='g', port=0, keystore_url='sqlite://',
            master_key_file='m', auth_secret_file='s').render()
        self.assertNotIn('member_id', text)
        self.assertNotIn('None', text)
        conf = _load(self.write(text))
        self.assertIsNone(conf.vhsm.member_id)
        self.assertEqual(2.0, conf.vhsm.key_cache_ttl)
        self.assertEqual(60, conf.vhsm.purge_interval)
        self.assertEqual(0, conf.vhsm.port)
        self.assertFalse(conf.debug)

    def test_service_config(self):
        config = workloads.ServiceConfig(
            port=19620, vhsm_endpoints=['127.0.0.1:1', '[::1]:2'],
            vhsm_secret_file='/s', credentials_file='/c.json', threads=4,
            host='0.0.0.0')
        conf = _load(self.write(config.render()))
        self.assertEqual(('0.0.0.0', 19620, 4),
                         (conf.cryptoservice.host, conf.cryptoservice.port,
                          conf.cryptoservice.threads))
        self.assertEqual(['127.0.0.1:1', '[::1]:2'],
                         conf.cryptoservice.vhsm_endpoints)
        self.assertEqual('/s', conf.cryptoservice.vhsm_secret_file)
        self.assertEqual('/c.json', conf.cryptoservice.credentials_file)
        self.assertFalse(conf.debug)

    def test_write_config_is_private(self):
        path = self.write('[vhsm]\n')
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))
        # Rewriting replaces the content.
        self.write('[cryptoservice]\n')
        with open(path) as f:
            self.assertEqual('[cryptoservice]\n', f.read())

    def test_free_port_and_port_open(self):
        port = workloads.free_port()
        self.assertFalse(workloads.port_open('127.0.0.1', port))
        with socket.socket() as s:
            s.bind(('127.0.0.1', port))
            s.listen()
            self.assertTrue(workloads.port_open('127.0.0.1', port))


class TestLocalProcess(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.log = os.path.join(self.dir, 'child.log')

    def process(self, code: str, *args: str) -> workloads.LocalProcess:
        proc = workloads.LocalProcess('child', [sys.executable, '-c', code,
                                                *args], self.log)
        self.addCleanup(proc.kill)
        return proc

    def read_log(self) -> str:
        with open(self.log) as f:
            return f.read()

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.read_log():
                return
            time.sleep(0.02)
        self.fail('%r never appeared in the log: %r' % (text,
                                                        self.read_log()))

    def test_not_started(self):
        proc = self.process('pass')
        self.assertIsNone(proc.pid)
        self.assertFalse(proc.alive())
        self.assertIsNone(proc.stop())
        proc.kill()
        proc.signal(signal.SIGTERM)

    def test_start_listen_stop(self):
        port = workloads.free_port()
        proc = self.process(LISTENER, str(port)).start()
        self.assertIsInstance(proc.pid, int)
        proc.wait_listening('127.0.0.1', port, timeout=30)
        self.assertTrue(proc.alive())
        self.assertIn('listening', self.read_log())
        self.assertEqual(-signal.SIGTERM, proc.stop())
        self.assertFalse(proc.alive())
        self.assertFalse(workloads.port_open('127.0.0.1', port))
        # Stopping again is harmless.
        self.assertEqual(-signal.SIGTERM, proc.stop())

    def test_kill(self):
        proc = self.process(STUBBORN).start()
        self.wait_for_log('ready')
        proc.kill()
        self.assertFalse(proc.alive())
        self.assertEqual(-signal.SIGKILL, proc.proc.returncode)
        proc.kill()

    def test_stop_kills_what_ignores_sigterm(self):
        proc = self.process(STUBBORN).start()
        self.wait_for_log('ready')
        started = time.monotonic()
        self.assertEqual(-signal.SIGKILL, proc.stop(timeout=0.5))
        self.assertLess(time.monotonic() - started, 10)

    def test_signal(self):
        proc = self.process(STUBBORN).start()
        self.wait_for_log('ready')
        proc.signal(signal.SIGTERM)
        time.sleep(0.1)
        self.assertTrue(proc.alive())
        proc.signal(signal.SIGINT)
        proc.proc.wait(30)
        self.assertFalse(proc.alive())

    def test_exit_status_and_output_in_log(self):
        proc = self.process('import sys; print("out"); '
                            'print("err", file=sys.stderr); sys.exit(3)')
        proc.start().proc.wait(30)
        self.assertEqual(3, proc.stop())
        log = self.read_log()
        self.assertIn('out', log)
        self.assertIn('err', log)
        # A restart appends to the same log.
        proc.start().proc.wait(30)
        self.assertEqual(2, self.read_log().count('out'))

    def test_wait_listening_fails_fast_when_the_child_exits(self):
        port = workloads.free_port()
        proc = self.process('import sys; sys.exit(7)').start()
        started = time.monotonic()
        exc = self.assertRaises(exception.ServiceUnavailable,
                                proc.wait_listening, '127.0.0.1', port,
                                timeout=60)
        self.assertLess(time.monotonic() - started, 30)
        self.assertIn('status 7', str(exc))
        self.assertIn(self.log, str(exc))

    def test_wait_listening_times_out(self):
        port = workloads.free_port()
        proc = self.process(STUBBORN).start()
        exc = self.assertRaises(exception.ServiceUnavailable,
                                proc.wait_listening, '127.0.0.1', port,
                                timeout=0.3)
        self.assertIn('did not listen', str(exc))
        self.assertTrue(proc.alive())

    def test_wait_listening_before_start(self):
        exc = self.assertRaises(exception.ServiceUnavailable,
                                self.process('pass').wait_listening,
                                '127.0.0.1', workloads.free_port(),
                                timeout=5)
        self.assertIn('status None', str(exc))

    def test_env_is_passed(self):
        proc = workloads.LocalProcess(
            'child', [sys.executable, '-c',
                      'import os; print(os.environ["CC_TEST_VALUE"])'],
            self.log, env=dict(os.environ, CC_TEST_VALUE='seen-by-child'))
        self.addCleanup(proc.kill)
        proc.start().proc.wait(30)
        self.assertIn('seen-by-child', self.read_log())

    def test_child_has_its_own_session(self):
        proc = self.process(STUBBORN).start()
        self.wait_for_log('ready')
        self.assertEqual(proc.pid, os.getsid(proc.pid))

    def test_for_program(self):
        proc = workloads.LocalProcess.for_program(
            'vhsm-1', 'cryptocloud-vhsm', '/etc/cc/vhsm.conf', self.log)
        self.assertEqual([sys.executable, '-m', 'cryptocloud.cmd.vhsm',
                          '--config-file', '/etc/cc/vhsm.conf'], proc.argv)
        proc = workloads.LocalProcess.for_program(
            'svc', 'cryptocloud-cryptoservice', 'svc.conf', self.log)
        self.assertEqual('cryptocloud.cmd.cryptoservice', proc.argv[2])
