"""The HAProxy endpoint: configuration from rows, a real haproxy run."""

import http.server
import os
import shutil
import subprocess
import sys
import threading
import time

import fixtures
import requests

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.common import workloads
from cryptocloud.conductor import proxy
from cryptocloud.conf import CONF
from cryptocloud.tests.unit.conductor import base


class _Backend(http.server.BaseHTTPRequestHandler):
    """Answers /healthz and anything else with its own name."""

    def do_GET(self):  # noqa: N802 - the handler's API
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):

    def handle_error(self, request, client_address):
        pass  # health checks that hang up early


def _backend(test, name: str) -> http.server.ThreadingHTTPServer:
    server = _Server(('127.0.0.1', 0), _Backend)
    server.name = name
    threading.Thread(target=server.serve_forever, daemon=True).start()
    test.addCleanup(server.server_close)
    test.addCleanup(server.shutdown)
    return server


class TestProxy(base.ConductorTestCase):

    def setUp(self):
        super().setUp()
        self.state = self.useFixture(fixtures.TempDir()).path
        port = workloads.free_port()
        for name, value in (('driver', 'haproxy'),
                            ('state_path', self.state),
                            ('port_range_start', port),
                            ('port_range_end', port + 50),
                            ('check_interval_ms', 200)):
            CONF.set_override(name, value, group='proxy')
            self.addCleanup(CONF.clear_override, name, group='proxy')
        self.node = self.add_node('svc1', roles=['service'])
        self.group = self.add_group(size=1, state=states.ACTIVE)

    def add_instance(self, service, port, role='primary',
                     state=states.ACTIVE):
        return self.db.create('service_instances', {
            'service_id': service['id'], 'node_id': self.node['id'],
            'host': '127.0.0.1', 'port': port, 'role': role,
            'state': state})

    def test_ports_are_unique_and_kept(self):
        one = self.add_service(self.group['id'], state=states.ACTIVE)
        two = self.add_service(self.group['id'], state=states.ACTIVE)
        one = proxy.allocate_port(self.db, CONF, one)
        two = proxy.allocate_port(self.db, CONF, two)
        self.assertNotEqual(one['frontend_port'], two['frontend_port'])
        self.assertEqual(one['frontend_port'], proxy.allocate_port(
            self.db, CONF, one)['frontend_port'])
        self.assertEqual({'endpoint_host': '127.0.0.1',
                          'endpoint_port': one['frontend_port']},
                         proxy.endpoint_of(CONF, one))

    def test_exhausted_range(self):
        CONF.set_override('port_range_end', CONF.proxy.port_range_start,
                          group='proxy')
        one = self.add_service(self.group['id'], state=states.ACTIVE)
        proxy.allocate_port(self.db, CONF, one)
        two = self.add_service(self.group['id'], state=states.ACTIVE)
        self.assertRaises(exception.NoValidHost, proxy.allocate_port,
                          self.db, CONF, two)

    def test_render_primaries_backups_and_skips(self):
        service = proxy.allocate_port(self.db, CONF, self.add_service(
            self.group['id'], state=states.ACTIVE))
        primary = self.add_instance(service, 20001)
        hot = self.add_instance(service, 20002, role='replica')
        cold = self.add_instance(service, 20003, role='replica',
                                 state=states.STANDBY)
        broken = self.add_instance(service, 20004, state=states.ERROR)
        text = proxy.render(self.db, CONF)
        self.assertIn('bind 127.0.0.1:%d' % service['frontend_port'], text)
        self.assertIn('server %s 127.0.0.1:20001 check\n' % primary['id'],
                      text)
        self.assertIn('server %s 127.0.0.1:20002 check backup'
                      % hot['id'], text)
        self.assertNotIn(cold['id'], text)
        self.assertNotIn(broken['id'], text)
        # A service being created is fronted (its endpoint must answer
        # once it is ACTIVE); one being deleted is not.
        creating = proxy.allocate_port(self.db, CONF, self.add_service(
            self.group['id']))
        self.assertIn(':%d' % creating['frontend_port'],
                      proxy.render(self.db, CONF))
        self.db.transition('services', creating['id'],
                           states.RESOURCE_MACHINE, 'delete')
        self.assertNotIn(':%d' % creating['frontend_port'],
                         proxy.render(self.db, CONF))

    def test_real_haproxy_follows_the_instances(self):
        if not shutil.which(CONF.proxy.haproxy_binary):
            self.skipTest('haproxy is not installed')
        service = proxy.allocate_port(self.db, CONF, self.add_service(
            self.group['id'], state=states.ACTIVE))
        first = _backend(self, 'first')
        second = _backend(self, 'second')
        row = self.add_instance(service, first.server_address[1])
        sync = proxy.ProxySync(self.db, CONF)
        self.addCleanup(sync.stop, stop_haproxy=True)
        self.assertTrue(sync.sync())
        url = 'http://127.0.0.1:%d/' % service['frontend_port']
        self.assertEqual('first', self._get(url))
        self.assertFalse(sync.sync())  # nothing changed: no reload

        # Failover: the row moves to another instance; one reload later
        # the same endpoint reaches it.
        self.db.delete('service_instances', row['id'])
        self.add_instance(service, second.server_address[1])
        pid = sync.haproxy._pid()
        self.assertTrue(sync.sync())
        self.assertEqual(pid, sync.haproxy._pid())  # same master
        deadline = time.monotonic() + 10
        while self._get(url) != 'second':
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        self.assertTrue(os.path.exists(sync.haproxy.config))

    def test_hot_backup_serves_at_the_first_retry(self):
        """A call that meets a dead primary reaches the hot replica on
        HAProxy's first retry, not only on its last one (each retry
        waits ``timeout connect`` first)."""
        if not shutil.which(CONF.proxy.haproxy_binary):
            self.skipTest('haproxy is not installed')
        service = proxy.allocate_port(self.db, CONF, self.add_service(
            self.group['id'], state=states.ACTIVE))
        # The primary is a process of its own, so that it can die as
        # one does: every connection it held is closed with it.
        root = self.useFixture(fixtures.TempDir()).path
        for name, text in (('healthz', 'ok'), ('name', 'primary')):
            with open(os.path.join(root, name), 'w') as f:
                f.write(text)
        port = workloads.free_port()
        primary = subprocess.Popen(
            [sys.executable, '-m', 'http.server', '--bind', '127.0.0.1',
             '--directory', root, str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(primary.wait)
        self.addCleanup(primary.kill)
        hot = _backend(self, 'hot')
        self.add_instance(service, port)
        self.add_instance(service, hot.server_address[1], role='replica')
        sync = proxy.ProxySync(self.db, CONF)
        self.addCleanup(sync.stop, stop_haproxy=True)
        self.assertTrue(sync.sync())
        url = 'http://127.0.0.1:%d/name' % service['frontend_port']
        deadline = time.monotonic() + 10
        while self._get(url) != 'primary':
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)

        primary.kill()
        primary.wait()
        began = time.monotonic()
        resp = requests.get(url, timeout=10)
        took = time.monotonic() - began
        self.assertEqual((200, 'hot'), (resp.status_code, resp.text))
        # One turn-around of 500 ms, not two.
        self.assertLess(took, 0.9)

    def test_nothing_to_front_runs_nothing(self):
        if not shutil.which(CONF.proxy.haproxy_binary):
            self.skipTest('haproxy is not installed')
        sync = proxy.ProxySync(self.db, CONF)
        self.addCleanup(sync.stop, stop_haproxy=True)
        sync.sync()
        self.assertIsNone(sync.haproxy._pid())
        self.assertFalse(sync.sync())
        # The first service starts it; its deletion stops it again.
        service = proxy.allocate_port(self.db, CONF, self.add_service(
            self.group['id'], state=states.ACTIVE))
        backend = _backend(self, 'only')
        self.add_instance(service, backend.server_address[1])
        self.assertTrue(sync.sync())
        self.assertIsNotNone(sync.haproxy._pid())
        self.db.delete_where('service_instances',
                             {'service_id': service['id']})
        self.db.delete('service_credentials', self.db.list(
            'service_credentials')[0]['id'])
        self.db.delete('services', service['id'])
        self.assertTrue(sync.sync())
        self.assertIsNone(sync.haproxy._pid())

    def test_bad_configuration_is_refused_and_not_installed(self):
        if not shutil.which(CONF.proxy.haproxy_binary):
            self.skipTest('haproxy is not installed')
        haproxy = proxy.HAProxy(CONF)
        exc = self.assertRaises(exception.ConfigurationError, haproxy.apply,
                                'this is not haproxy\n')
        self.assertIn('HAProxy refused', str(exc))
        self.assertIsNone(haproxy.current())

    @staticmethod
    def _get(url: str) -> str | None:
        deadline = time.monotonic() + 10
        while True:
            try:
                return requests.get(url, timeout=2).text
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
