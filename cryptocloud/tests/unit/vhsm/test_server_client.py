"""A real VHSMServer on 127.0.0.1 and the VHSMClient talking to it."""

import datetime
import ipaddress
import os
import socket
import threading
import time

import fixtures
import testtools
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cryptocloud.common import exception
from cryptocloud.vhsm import client as client_mod
from cryptocloud.vhsm import protocol
from cryptocloud.vhsm import server as server_mod

SECRET = b'g' * 32


class Recorder:
    """A small dispatch: echoes, raises on request, and counts calls."""

    def __init__(self, member):
        self.member = member
        self.calls = []
        self.lock = threading.Lock()
        self.release = threading.Event()

    def __call__(self, op, project, args):
        with self.lock:
            self.calls.append(op)
        if op == 'ping':
            return {'group_id': 'g', 'member_id': self.member}
        if op == 'key.get':
            raise exception.KeyNotFound(key_id=args['key_id'])
        if op == 'explode':
            raise ValueError('secret-detail %r' % args.get('plaintext'))
        if op == 'bad_result':
            return {'when': object()}
        if op == 'block':
            self.release.wait(10)
        return {'member': self.member, 'op': op, 'project': project,
                'args': args}

    def count(self, op=None):
        with self.lock:
            return len([c for c in self.calls if op is None or c == op])


class _TestBase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.logger = self.useFixture(fixtures.FakeLogger(level='DEBUG'))

    def start_server(self, member='m1', port=0, secret=SECRET, **kwargs):
        dispatch = kwargs.pop('dispatch', None) or Recorder(member)
        srv = server_mod.VHSMServer('127.0.0.1', port, secret, dispatch,
                                    group_id='g', member_id=member, **kwargs)
        srv.start()
        self.addCleanup(srv.shutdown)
        return srv, dispatch

    def client(self, servers, secret=SECRET, **kwargs):
        kwargs.setdefault('connect_timeout', 2.0)
        kwargs.setdefault('timeout', 5.0)
        cli = client_mod.VHSMClient([_ep(s) for s in servers], secret,
                                    **kwargs)
        self.addCleanup(cli.close)
        return cli

    def raw_connect(self, srv, handshake=True):
        sock = socket.create_connection(srv.address, timeout=5)
        conn = protocol.FramedSocket(sock)
        self.addCleanup(conn.close)
        if handshake:
            protocol.client_handshake(conn, SECRET)
        return conn


def _ep(srv):
    return '%s:%d' % srv.address


class ServerClientTest(_TestBase):

    def test_call_round_trip(self):
        srv, dispatch = self.start_server()
        cli = self.client([srv])
        args = {'plaintext': b'\x00\x01', 'aad': None, 'n': 5}
        result = cli.call('encrypt', 'proj-1', args)
        self.assertEqual({'member': 'm1', 'op': 'encrypt',
                          'project': 'proj-1', 'args': args}, result)
        # The connection went back to the pool and is reused.
        cli.call('encrypt', 'proj-1', args)
        state = cli.endpoint_states[0]
        self.assertEqual(1, state['idle'])
        self.assertEqual(0, state['in_flight'])
        self.assertTrue(state['up'])
        self.assertEqual('m1', state['member'])

    def test_payloads_are_not_logged(self):
        srv, _ = self.start_server()
        cli = self.client([srv])
        cli.call('encrypt', 'p', {'plaintext': b'TOPSECRETPLAINTEXT'})
        self.assertRaises(exception.CryptoCloudException, cli.call,
                          'explode', 'p', {'plaintext': 'TOPSECRET2'})
        self.assertNotIn('TOPSECRET', self.logger.output)

    def test_concurrent_calls(self):
        srv, dispatch = self.start_server()
        cli = self.client([srv], pool_size=4)
        errors = []

        def worker(n):
            try:
                for i in range(50):
                    args = {'thread': n, 'i': i}
                    result = cli.call('sign', 'p%d' % n, args)
                    if (result['args'] != args
                            or result['project'] != 'p%d' % n):
                        errors.append((n, i, result))
            except Exception as exc:
                errors.append((n, exc))

        threads = [threading.Thread(target=worker, args=(n,))
                   for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual([], errors)
        self.assertEqual(1000, dispatch.count('sign'))
        self.assertLessEqual(cli.endpoint_states[0]['idle'], 4)

    def test_crypto_error_maps_to_its_exception(self):
        srv, _ = self.start_server()
        cli = self.client([srv])
        exc = self.assertRaises(exception.KeyNotFound, cli.call,
                                'key.get', 'p', {'key_id': 'k-123'})
        self.assertEqual(404, exc.code)
        self.assertIn('k-123', exc.message)
        # An error reply is an answer: the endpoint stays up and the
        # connection is reused.
        self.assertTrue(cli.endpoint_states[0]['up'])
        self.assertEqual(1, cli.endpoint_states[0]['idle'])

    def test_unexpected_error_is_500_without_detail(self):
        srv, dispatch = self.start_server()
        cli = self.client([srv])
        exc = self.assertRaises(exception.CryptoCloudException, cli.call,
                                'explode', 'p', {'plaintext': 'PLAIN-42'})
        self.assertEqual(500, exc.code)
        self.assertEqual('internal error in the vHSM', exc.message)
        self.assertNotIn('secret-detail', str(exc))
        self.assertEqual(1, dispatch.count('explode'))
        self.assertIn('explode', self.logger.output)
        self.assertIn('ValueError', self.logger.output)
        self.assertIn('Traceback', self.logger.output)
        # The exception message quoted the argument; the log does not.
        self.assertNotIn('PLAIN-42', self.logger.output)

    def test_unencodable_result_is_500(self):
        srv, _ = self.start_server()
        cli = self.client([srv])
        exc = self.assertRaises(exception.CryptoCloudException, cli.call,
                                'bad_result', 'p', {})
        self.assertEqual(500, exc.code)
        # The connection survives the failed encoding.
        self.assertEqual('m1', cli.call('ping', 'p', {})['member_id'])

    def test_malformed_requests_get_400(self):
        srv, dispatch = self.start_server()
        conn = self.raw_connect(srv)
        for request in ({'id': 1, 'op': 5, 'project': 'p', 'args': {}},
                        {'id': 2, 'op': 'sign', 'project': 'p',
                         'args': [1]},
                        {'id': 3, 'op': 'sign', 'project': None,
                         'args': {}},
                        {'id': 'x', 'op': 'sign', 'project': 'p',
                         'args': {}}):
            conn.send(request)
            reply = conn.recv()
            self.assertFalse(reply['ok'])
            self.assertEqual(400, reply['error']['code'])
            self.assertEqual('InvalidInput', reply['error']['type'])
            expected_id = request['id'] if isinstance(request['id'],
                                                      int) else None
            self.assertEqual(expected_id, reply['id'])
        # Still in step and usable.
        conn.send({'id': 9, 'op': 'hash', 'project': 'p', 'args': {}})
        self.assertEqual(9, conn.recv()['id'])
        self.assertEqual(0, dispatch.count('sign'))

    def test_undecodable_frame_closes(self):
        srv, _ = self.start_server()
        conn = self.raw_connect(srv)
        conn.sock.sendall(b'\x00\x00\x00\x02\xc1\xc1')
        reply = conn.recv()
        self.assertEqual(400, reply['error']['code'])
        self.assertRaises(protocol.ConnectionClosed, conn.recv)

    def test_oversize_frame_closes(self):
        srv, _ = self.start_server(max_frame_size=2048)
        conn = self.raw_connect(srv)
        conn.sock.sendall(b'\x7f\xff\xff\xff')
        self.assertRaises((protocol.ConnectionClosed, OSError), conn.recv)

    def test_client_refuses_oversize_request(self):
        srv, dispatch = self.start_server()
        cli = self.client([srv], max_frame_size=1024)
        self.assertRaises(exception.PayloadTooLarge, cli.call, 'encrypt',
                          'p', {'plaintext': b'x' * 2000})
        self.assertEqual(0, dispatch.count())

    def test_ping_all(self):
        srv, _ = self.start_server()
        dead = socket.socket()
        dead.bind(('127.0.0.1', 0))
        dead_ep = '127.0.0.1:%d' % dead.getsockname()[1]
        dead.close()
        cli = client_mod.VHSMClient([_ep(srv), dead_ep], SECRET)
        self.addCleanup(cli.close)
        result = cli.ping_all()
        self.assertIs(True, result[_ep(srv)])
        self.assertIsInstance(result[dead_ep], str)
        self.assertIn('connect', result[dead_ep])
        states = {s['endpoint']: s for s in cli.endpoint_states}
        self.assertFalse(states[dead_ep]['up'])
        self.assertTrue(states[_ep(srv)]['up'])

    def test_closed_client(self):
        srv, _ = self.start_server()
        cli = self.client([srv])
        cli.call('ping', 'p', {})
        cli.close()
        self.assertRaises(exception.VHSMUnavailable, cli.call, 'ping', 'p',
                          {})


class AuthenticationTest(_TestBase):

    def test_wrong_secret(self):
        srv, dispatch = self.start_server()
        cli = self.client([srv], secret=b'x' * 32)
        exc = self.assertRaises(exception.VHSMUnavailable, cli.call,
                                'ping', 'p', {})
        self.assertEqual(503, exc.code)
        self.assertIn(_ep(srv), exc.message)
        self.assertIn('authentication failed', exc.message)
        self.assertEqual(0, dispatch.count())
        self.assertFalse(cli.endpoint_states[0]['up'])

    def test_wrong_secret_raw(self):
        srv, dispatch = self.start_server()
        conn = self.raw_connect(srv, handshake=False)
        exc = self.assertRaises(protocol.AuthenticationFailed,
                                protocol.client_handshake, conn, b'x' * 32)
        self.assertEqual(401, exc.error['code'])
        # Nothing is served: the server closed the connection.
        try:
            conn.send({'id': 1, 'op': 'ping', 'project': 'p', 'args': {}})
        except OSError:
            pass
        self.assertRaises((protocol.ConnectionClosed, OSError), conn.recv)
        self.assertEqual(0, dispatch.count())

    def test_request_before_handshake_is_not_served(self):
        srv, dispatch = self.start_server()
        conn = self.raw_connect(srv, handshake=False)
        conn.recv()  # the challenge
        conn.send({'id': 1, 'op': 'ping', 'project': 'p', 'args': {}})
        reply = conn.recv()
        self.assertFalse(reply['ok'])
        self.assertEqual(401, reply['error']['code'])
        self.assertNotIn('result', reply)
        self.assertRaises((protocol.ConnectionClosed, OSError), conn.recv)
        self.assertEqual(0, dispatch.count())

    def test_bad_server_proof(self):
        listener = socket.create_server(('127.0.0.1', 0))
        self.addCleanup(listener.close)
        got_request = []

        def impostor():
            sock, _ = listener.accept()
            conn = protocol.FramedSocket(sock)
            try:
                conn.settimeout(5)
                conn.send({'v': 1, 'challenge': b'c' * 32, 'group': 'g',
                           'member': 'fake'})
                conn.recv()
                conn.send({'ok': True, 'proof': b'p' * 32})
                got_request.append(conn.recv())
            except (OSError, protocol.ProtocolError):
                pass
            finally:
                conn.close()

        thread = threading.Thread(target=impostor, daemon=True)
        thread.start()
        cli = client_mod.VHSMClient(
            ['127.0.0.1:%d' % listener.getsockname()[1]], SECRET)
        self.addCleanup(cli.close)
        exc = self.assertRaises(exception.VHSMUnavailable, cli.call,
                                'sign', 'p', {'message': b'tenant data'})
        thread.join(5)
        self.assertIn('proof', exc.message)
        self.assertEqual([], got_request)
        self.assertIn('failed authentication', self.logger.output)

    def test_handshake_timeout(self):
        srv, _ = self.start_server(handshake_timeout=0.3)
        conn = self.raw_connect(srv, handshake=False)
        conn.recv()  # the challenge, never answered
        started = time.monotonic()
        self.assertRaises((protocol.ConnectionClosed, OSError), conn.recv)
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 3)

    def test_silent_connection_times_out(self):
        # Not even a partial frame: the same deadline applies.
        srv, _ = self.start_server(handshake_timeout=0.3)
        sock = socket.create_connection(srv.address, timeout=5)
        self.addCleanup(sock.close)
        sock.sendall(b'\x00\x00')
        started = time.monotonic()
        data = sock.recv(65536)  # the challenge
        while data:
            data = sock.recv(65536)
        self.assertLess(time.monotonic() - started, 3)


class FailoverTest(_TestBase):

    def test_failover_when_a_member_stops(self):
        srv1, d1 = self.start_server('m1')
        srv2, d2 = self.start_server('m2')
        cli = self.client([srv1, srv2], retry_after=30)
        for _ in range(20):
            cli.call('sign', 'p', {})
        self.assertGreater(d1.count('sign'), 0)
        self.assertGreater(d2.count('sign'), 0)
        srv1.shutdown()
        members = set()
        for _ in range(40):
            members.add(cli.call('sign', 'p', {})['member'])
        self.assertEqual({'m2'}, members)

    def test_failover_with_concurrent_callers(self):
        srv1, _ = self.start_server('m1')
        srv2, _ = self.start_server('m2')
        cli = self.client([srv1, srv2], retry_after=30)
        errors = []
        stop = threading.Event()

        def worker():
            while not stop.is_set():
                try:
                    cli.call('decrypt', 'p', {'ciphertext': b'c'})
                except Exception as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        srv1.shutdown()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual([], errors)

    def test_unreachable_endpoint_is_skipped(self):
        dead = socket.socket()
        dead.bind(('127.0.0.1', 0))
        dead_ep = '127.0.0.1:%d' % dead.getsockname()[1]
        dead.close()
        srv, _ = self.start_server('m1')
        cli = client_mod.VHSMClient([dead_ep, _ep(srv)], SECRET,
                                    retry_after=30)
        self.addCleanup(cli.close)
        for _ in range(5):
            self.assertEqual('m1', cli.call('hash', 'p', {})['member'])
        states = {s['endpoint']: s for s in cli.endpoint_states}
        self.assertFalse(states[dead_ep]['up'])
        self.assertIn('connect', states[dead_ep]['last_error'])

    def test_all_down_names_the_endpoints(self):
        eps = []
        for _ in range(2):
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            eps.append('127.0.0.1:%d' % s.getsockname()[1])
            s.close()
        cli = client_mod.VHSMClient(eps, SECRET, retry_after=30)
        self.addCleanup(cli.close)
        exc = self.assertRaises(exception.VHSMUnavailable, cli.call, 'sign',
                                'p', {})
        for ep in eps:
            self.assertIn(ep, exc.message)
        # Marked down: the next call fails fast and still says why.
        exc = self.assertRaises(exception.VHSMUnavailable, cli.call, 'sign',
                                'p', {})
        for ep in eps:
            self.assertIn(ep, exc.message)

    def test_down_endpoint_is_probed_when_it_is_the_only_one(self):
        srv, _ = self.start_server('m1')
        port = srv.address[1]
        cli = self.client([srv], retry_after=60)
        cli.call('ping', 'p', {})
        srv.shutdown()
        self.assertRaises(exception.VHSMUnavailable, cli.call, 'sign', 'p',
                          {})
        self.assertFalse(cli.endpoint_states[0]['up'])
        self.start_server('m1b', port=port)
        # Back well before retry_after: a lone endpoint is probed.
        self.assertEqual('m1b', cli.call('sign', 'p', {})['member'])
        self.assertTrue(cli.endpoint_states[0]['up'])

    def test_restart_is_transparent(self):
        srv, _ = self.start_server('old')
        port = srv.address[1]
        cli = self.client([srv], pool_size=8)
        barrier = threading.Barrier(4)

        def fill_pool():
            barrier.wait()
            cli.call('block', 'p', {})

        srv_dispatch_release = srv._dispatch.release
        threads = [threading.Thread(target=fill_pool) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        srv_dispatch_release.set()
        for t in threads:
            t.join(10)
        self.assertGreaterEqual(cli.endpoint_states[0]['idle'], 2)
        srv.shutdown()
        self.start_server('new', port=port)
        # Every pooled connection is stale now; none of that shows, not
        # even for an operation that must never be sent twice.
        self.assertEqual('new', cli.call('key.rotate', 'p', {})['member'])
        for _ in range(5):
            self.assertEqual('new', cli.call('sign', 'p', {})['member'])
        self.assertTrue(cli.endpoint_states[0]['up'])
        self.assertIsNone(cli.endpoint_states[0]['last_error'])

    def test_state_changing_op_not_resent_after_it_left(self):
        # A vHSM that takes the request and drops the connection: the
        # client cannot know whether it was applied, so it must not send
        # it elsewhere.
        listener = socket.create_server(('127.0.0.1', 0))
        self.addCleanup(listener.close)

        def dropper():
            # Exactly two connections reach it: one per client below.
            for _ in range(2):
                try:
                    sock, _ = listener.accept()
                except OSError:
                    return
                conn = protocol.FramedSocket(sock)
                try:
                    conn.settimeout(5)
                    protocol.server_handshake(conn, SECRET, group_id='g',
                                              member_id='dropper')
                    conn.recv()
                except (OSError, protocol.ProtocolError):
                    pass
                finally:
                    conn.close()

        thread = threading.Thread(target=dropper, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        srv, dispatch = self.start_server('m2')
        eps = ['127.0.0.1:%d' % listener.getsockname()[1], _ep(srv)]
        # A fresh client sends its first request to the first endpoint.
        cli = client_mod.VHSMClient(eps, SECRET)
        self.addCleanup(cli.close)
        exc = self.assertRaises(exception.VHSMUnavailable, cli.call,
                                'key.rotate', 'p', {'key_id': 'k'})
        self.assertIn('may or may not', exc.message)
        self.assertEqual(0, dispatch.count('key.rotate'))

        cli2 = client_mod.VHSMClient(eps, SECRET)
        self.addCleanup(cli2.close)
        self.assertEqual('m2', cli2.call('sign', 'p', {})['member'])
        self.assertEqual(1, dispatch.count('sign'))

    def test_set_endpoints(self):
        srv1, d1 = self.start_server('m1')
        srv2, d2 = self.start_server('m2')
        cli = self.client([srv1])
        self.assertEqual('m1', cli.call('sign', 'p', {})['member'])
        cli.set_endpoints([_ep(srv2)])
        self.assertEqual([_ep(srv2)],
                         [s['endpoint'] for s in cli.endpoint_states])
        for _ in range(5):
            self.assertEqual('m2', cli.call('sign', 'p', {})['member'])
        self.assertEqual(1, d1.count('sign'))
        # Adding one back keeps the state of the other.
        cli.set_endpoints([_ep(srv2), _ep(srv1)])
        states = {s['endpoint']: s for s in cli.endpoint_states}
        self.assertEqual(1, states[_ep(srv2)]['idle'])
        self.assertEqual(0, states[_ep(srv1)]['idle'])
        members = {cli.call('sign', 'p', {})['member'] for _ in range(10)}
        self.assertEqual({'m1', 'm2'}, members)

    def test_set_endpoints_lets_in_flight_calls_finish(self):
        srv1, d1 = self.start_server('m1')
        srv2, _ = self.start_server('m2')
        cli = self.client([srv1])
        results = []
        thread = threading.Thread(
            target=lambda: results.append(cli.call('block', 'p', {})))
        thread.start()
        for _ in range(100):
            if d1.count('block'):
                break
            time.sleep(0.01)
        cli.set_endpoints([_ep(srv2)])
        d1.release.set()
        thread.join(10)
        self.assertEqual('m1', results[0]['member'])
        # Its connection was closed, not pooled under a removed endpoint.
        self.assertEqual([_ep(srv2)],
                         [s['endpoint'] for s in cli.endpoint_states])
        self.assertEqual(0, cli.endpoint_states[0]['idle'])
        self.assertEqual(0, cli.endpoint_states[0]['in_flight'])

    def test_spreads_load(self):
        srv1, d1 = self.start_server('m1')
        srv2, d2 = self.start_server('m2')
        cli = self.client([srv1, srv2])
        for _ in range(100):
            cli.call('hash', 'p', {})
        self.assertEqual(50, d1.count('hash'))
        self.assertEqual(50, d2.count('hash'))


class BusyAndShutdownTest(_TestBase):

    def test_busy_server_answers_503(self):
        srv, dispatch = self.start_server(workers=1, handshake_timeout=5)
        # Holds the only worker by never answering the challenge.
        holder = self.raw_connect(srv, handshake=False)
        holder.recv()
        conn = self.raw_connect(srv, handshake=False)
        first = conn.recv()
        self.assertFalse(first['ok'])
        self.assertEqual(503, first['error']['code'])
        self.assertEqual('vHSM busy', first['error']['message'])
        self.assertRaises((protocol.ConnectionClosed, OSError), conn.recv)

        cli = self.client([srv])
        exc = self.assertRaises(exception.ServiceUnavailable, cli.call,
                                'ping', 'p', {})
        self.assertEqual(503, exc.code)
        self.assertIn('busy', exc.message)
        # Busy is not down.
        self.assertTrue(cli.endpoint_states[0]['up'])
        holder.close()
        for _ in range(100):
            try:
                cli.call('ping', 'p', {})
                break
            except exception.ServiceUnavailable:
                time.sleep(0.02)
        else:
            self.fail('the worker was never freed')

    def test_busy_server_fails_over(self):
        srv1, _ = self.start_server('m1', workers=1)
        srv2, _ = self.start_server('m2')
        holder = self.raw_connect(srv1, handshake=False)
        holder.recv()
        cli = self.client([srv1, srv2])
        members = {cli.call('sign', 'p', {})['member'] for _ in range(6)}
        self.assertEqual({'m2'}, members)

    def test_shutdown_with_idle_clients(self):
        srv, _ = self.start_server()
        cli = self.client([srv], pool_size=8)
        barrier = threading.Barrier(3)

        def call():
            barrier.wait()
            cli.call('hash', 'p', {})

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        raw = self.raw_connect(srv)
        half = self.raw_connect(srv, handshake=False)
        self.assertIsNotNone(raw)
        self.assertIsNotNone(half)
        started = time.monotonic()
        srv.shutdown()
        self.assertLess(time.monotonic() - started, 2)
        self.assertRaises((protocol.ConnectionClosed, OSError), raw.recv)
        # The listener is gone too.
        self.assertRaises(OSError, socket.create_connection, srv.address,
                          timeout=1)
        srv.shutdown()  # idempotent

    def test_shutdown_of_a_server_never_started(self):
        srv = server_mod.VHSMServer('127.0.0.1', 0, SECRET, Recorder('m'),
                                    group_id='g', member_id='m')
        started = time.monotonic()
        srv.shutdown()
        self.assertLess(time.monotonic() - started, 1)

    def test_serve_forever_in_own_thread(self):
        srv = server_mod.VHSMServer('127.0.0.1', 0, SECRET, Recorder('m'),
                                    group_id='g', member_id='m')
        thread = threading.Thread(target=srv.serve_forever)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(srv.shutdown)
        cli = self.client([srv])
        self.assertEqual('m', cli.call('ping', 'p', {})['member_id'])
        srv.shutdown()
        thread.join(5)
        self.assertFalse(thread.is_alive())


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return path


def _make_pki(directory):
    """Throwaway CA, a vHSM cert for 127.0.0.1 and a client cert."""
    now = datetime.datetime.now(datetime.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, *, ca=False, san=None):
        builder = (x509.CertificateBuilder()
                   .subject_name(name(subject))
                   .issuer_name(name(issuer))
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca,
                                                        path_length=None),
                                  critical=True))
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def pem_key(key):
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert('test CA', ca_key, 'test CA', ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = cert('vhsm', srv_key, 'test CA', ca_key,
               san=[x509.IPAddress(ipaddress.ip_address('127.0.0.1'))])
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = cert('service', cli_key, 'test CA', ca_key)
    enc = serialization.Encoding.PEM
    return {
        'ca': _write(os.path.join(directory, 'ca.pem'), ca.public_bytes(enc)),
        'srv_cert': _write(os.path.join(directory, 'srv.pem'),
                           srv.public_bytes(enc)),
        'srv_key': _write(os.path.join(directory, 'srv.key'),
                          pem_key(srv_key)),
        'cli_cert': _write(os.path.join(directory, 'cli.pem'),
                           cli.public_bytes(enc)),
        'cli_key': _write(os.path.join(directory, 'cli.key'),
                          pem_key(cli_key)),
    }


class TLSTest(_TestBase):

    def setUp(self):
        super().setUp()
        self.pki = _make_pki(self.useFixture(fixtures.TempDir()).path)

    def test_tls(self):
        ctx = protocol.make_server_ssl_context(self.pki['srv_cert'],
                                               self.pki['srv_key'])
        srv, _ = self.start_server(ssl_context=ctx)
        cli = self.client([srv], ssl_context=protocol.make_client_ssl_context(
            self.pki['ca']))
        for i in range(5):
            self.assertEqual({'i': i},
                             cli.call('sign', 'p', {'i': i})['args'])
        # One pooled connection carried all of them.
        self.assertEqual(1, cli.endpoint_states[0]['idle'])

    def test_plain_client_cannot_talk_to_tls_server(self):
        ctx = protocol.make_server_ssl_context(self.pki['srv_cert'],
                                               self.pki['srv_key'])
        srv, dispatch = self.start_server(ssl_context=ctx)
        cli = self.client([srv])
        self.assertRaises(exception.VHSMUnavailable, cli.call, 'ping', 'p',
                          {})
        self.assertEqual(0, dispatch.count())

    def test_untrusted_server_cert(self):
        other = _make_pki(self.useFixture(fixtures.TempDir()).path)
        ctx = protocol.make_server_ssl_context(other['srv_cert'],
                                               other['srv_key'])
        srv, dispatch = self.start_server(ssl_context=ctx)
        cli = self.client([srv], ssl_context=protocol.make_client_ssl_context(
            self.pki['ca']))
        self.assertRaises(exception.VHSMUnavailable, cli.call, 'ping', 'p',
                          {})
        self.assertEqual(0, dispatch.count())

    def test_mutual_tls(self):
        ctx = protocol.make_server_ssl_context(
            self.pki['srv_cert'], self.pki['srv_key'], self.pki['ca'])
        srv, dispatch = self.start_server(ssl_context=ctx)
        anonymous = self.client(
            [srv], ssl_context=protocol.make_client_ssl_context(
                self.pki['ca']))
        self.assertRaises(exception.VHSMUnavailable, anonymous.call, 'ping',
                          'p', {})
        self.assertEqual(0, dispatch.count())
        known = self.client(
            [srv], ssl_context=protocol.make_client_ssl_context(
                self.pki['ca'], self.pki['cli_cert'], self.pki['cli_key']))
        self.assertEqual('m1', known.call('ping', 'p', {})['member_id'])

    def test_tls_shutdown_with_idle_clients(self):
        ctx = protocol.make_server_ssl_context(self.pki['srv_cert'],
                                               self.pki['srv_key'])
        srv, _ = self.start_server(ssl_context=ctx)
        cli = self.client([srv], ssl_context=protocol.make_client_ssl_context(
            self.pki['ca']))
        cli.call('ping', 'p', {})
        started = time.monotonic()
        srv.shutdown()
        self.assertLess(time.monotonic() - started, 2)
