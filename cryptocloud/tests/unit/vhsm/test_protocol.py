"""Framing and handshake of the internal vHSM protocol."""

import hashlib
import hmac
import socket
import struct
import threading
import time

import msgpack
import testtools

from cryptocloud.vhsm import protocol

SECRET = b's' * 32


def _pair(max_frame_size=protocol.DEFAULT_MAX_FRAME_SIZE, buffer_size=None):
    a, b = socket.socketpair()
    kwargs = {} if buffer_size is None else {'buffer_size': buffer_size}
    left = protocol.FramedSocket(a, max_frame_size, **kwargs)
    right = protocol.FramedSocket(b, max_frame_size, **kwargs)
    return left, right


class _Runner(threading.Thread):
    """Run a function in a thread and keep its result or exception."""

    def __init__(self, func, *args, **kwargs):
        super().__init__(daemon=True)
        self._call = (func, args, kwargs)
        self.result = None
        self.error = None

    def run(self):
        func, args, kwargs = self._call
        try:
            self.result = func(*args, **kwargs)
        except BaseException as exc:  # noqa: B036 - reported to the test
            self.error = exc


class FramingTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.left, self.right = _pair()
        self.addCleanup(self.left.close)
        self.addCleanup(self.right.close)

    def test_round_trip_keeps_types(self):
        message = {'id': 7, 'op': 'encrypt', 'project': 'p',
                   'args': {'plaintext': b'\x00\xff', 'aad': None,
                            'n': [1, 2.5, True], 'text': 'sm4 \u5bc6'}}
        self.left.send(message)
        self.assertEqual(message, self.right.recv())

    def test_frame_layout(self):
        frame = protocol.encode_frame({'a': b'x'})
        (length,) = struct.unpack('>I', frame[:4])
        self.assertEqual(len(frame) - 4, length)
        self.assertEqual({'a': b'x'},
                         msgpack.unpackb(frame[4:], raw=False))

    def test_several_frames_in_one_write(self):
        frames = b''.join(protocol.encode_frame({'i': i}) for i in range(50))
        self.left.sock.sendall(frames)
        for i in range(50):
            self.assertEqual({'i': i}, self.right.recv())
        self.assertFalse(self.right.has_buffered_data())

    def test_short_reads(self):
        frame = protocol.encode_frame({'data': b'z' * 300})

        def dribble():
            for i in range(len(frame)):
                self.left.sock.send(frame[i:i + 1])
                if i % 50 == 0:
                    time.sleep(0.001)

        writer = _Runner(dribble)
        writer.start()
        self.assertEqual({'data': b'z' * 300}, self.right.recv())
        writer.join()
        self.assertIsNone(writer.error)

    def test_frames_straddling_the_buffer(self):
        left, right = _pair(buffer_size=64)
        self.addCleanup(left.close)
        self.addCleanup(right.close)
        messages = [{'i': i, 'pad': b'p' * (i * 7 % 90)} for i in range(40)]
        left.sock.sendall(b''.join(protocol.encode_frame(m)
                                   for m in messages))
        self.assertEqual(messages, [right.recv() for _ in messages])

    def test_large_frame(self):
        blob = bytes(range(256)) * 8192  # 2 MiB, far beyond the buffer
        writer = _Runner(self.left.send, {'blob': blob})
        writer.start()
        got = self.right.recv()
        writer.join()
        self.assertIsNone(writer.error)
        self.assertEqual(blob, got['blob'])
        # The connection is still in step afterwards.
        self.left.send({'after': 1})
        self.assertEqual({'after': 1}, self.right.recv())

    def test_oversize_header_rejected_before_body(self):
        left, right = _pair(max_frame_size=1024)
        self.addCleanup(left.close)
        self.addCleanup(right.close)
        # Only the header is sent: the check must not wait for a body.
        left.sock.sendall(struct.pack('>I', 1025))
        right.settimeout(2)
        self.assertRaises(protocol.FrameTooLarge, right.recv)

    def test_frame_at_limit_accepted(self):
        left, right = _pair(max_frame_size=1024)
        self.addCleanup(left.close)
        self.addCleanup(right.close)
        body = msgpack.packb({'b': b'x' * 1018}, use_bin_type=True)
        self.assertEqual(1024, len(body))
        left.sock.sendall(struct.pack('>I', len(body)) + body)
        self.assertEqual(1018, len(right.recv()['b']))

    def test_clean_eof(self):
        self.left.sock.shutdown(socket.SHUT_WR)
        exc = self.assertRaises(protocol.ConnectionClosed, self.right.recv)
        self.assertIn('closed by peer', str(exc))

    def test_truncated_header(self):
        self.left.sock.sendall(b'\x00\x00')
        self.left.sock.shutdown(socket.SHUT_WR)
        exc = self.assertRaises(protocol.ConnectionClosed, self.right.recv)
        self.assertIn('inside a frame', str(exc))

    def test_truncated_body(self):
        frame = protocol.encode_frame({'data': b'q' * 100})
        self.left.sock.sendall(frame[:-10])
        self.left.sock.shutdown(socket.SHUT_WR)
        self.assertRaises(protocol.ConnectionClosed, self.right.recv)

    def test_truncated_large_body(self):
        frame = protocol.encode_frame({'data': b'q' * 100000})
        writer = _Runner(self.left.sock.sendall, frame[:-10])
        writer.start()
        writer.join()
        self.left.sock.shutdown(socket.SHUT_WR)
        self.assertRaises(protocol.ConnectionClosed, self.right.recv)

    def test_garbage_body(self):
        self.left.sock.sendall(struct.pack('>I', 2) + b'\xc1\xc1')
        self.assertRaises(protocol.MalformedFrame, self.right.recv)

    def test_body_with_trailing_bytes(self):
        body = msgpack.packb({'a': 1}) + b'\x01'
        self.left.sock.sendall(struct.pack('>I', len(body)) + body)
        self.assertRaises(protocol.MalformedFrame, self.right.recv)

    def test_body_not_a_map(self):
        body = msgpack.packb([1, 2])
        self.left.sock.sendall(struct.pack('>I', len(body)) + body)
        self.assertRaises(protocol.MalformedFrame, self.right.recv)

    def test_deadline_bounds_the_whole_read(self):
        frame = protocol.encode_frame({'x': 1})
        self.left.sock.sendall(frame[:3])
        started = time.monotonic()
        self.assertRaises(TimeoutError, self.right.recv,
                          time.monotonic() + 0.2)
        self.assertLess(time.monotonic() - started, 2)


class RetryRulesTest(testtools.TestCase):

    def test_crypto_ops_are_retry_safe(self):
        for op in ('ping', 'encrypt', 'decrypt', 'rewrap', 'sign',
                   'verify', 'hmac', 'hmac_verify', 'hash', 'random',
                   'datakey', 'batch', 'key.get', 'key.list',
                   'key.public', 'key.export', 'key.create'):
            self.assertTrue(protocol.is_retry_safe(op), op)

    def test_state_changing_ops_are_not(self):
        for op in ('key.rotate', 'key.update', 'key.enable',
                   'key.disable', 'key.schedule_deletion',
                   'key.cancel_deletion', 'no.such.op'):
            self.assertFalse(protocol.is_retry_safe(op), op)
        self.assertFalse(protocol.RETRY_SAFE_OPS
                         & protocol.STATE_CHANGING_OPS)


def _mac(label, first, second, secret=SECRET):
    return hmac.new(secret, label + first + second, hashlib.sha256).digest()


class HandshakeTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.client, self.server = _pair()
        self.addCleanup(self.client.close)
        self.addCleanup(self.server.close)
        self.client.settimeout(5)
        self.server.settimeout(5)

    def _serve(self, secret=SECRET):
        runner = _Runner(protocol.server_handshake, self.server, secret,
                         group_id='g1', member_id='m1')
        runner.start()
        return runner

    def test_success(self):
        server = self._serve()
        hello = protocol.client_handshake(self.client, SECRET)
        server.join()
        self.assertIsNone(server.error)
        self.assertEqual('g1', hello['group'])
        self.assertEqual('m1', hello['member'])
        self.assertEqual(protocol.PROTOCOL_VERSION, hello['v'])
        # Both ends are left at a frame boundary, ready for requests.
        self.client.send({'id': 1})
        self.assertEqual({'id': 1}, self.server.recv())

    def test_wire_format_matches_the_spec(self):
        server = self._serve()
        hello = self.client.recv()
        self.assertEqual({'v', 'challenge', 'group', 'member'}, set(hello))
        self.assertEqual(32, len(hello['challenge']))
        nonce = b'n' * 32
        self.client.send({'v': 1, 'nonce': nonce, 'response': _mac(
            b'cc-vhsm-auth-v1|client|', hello['challenge'], nonce)})
        reply = self.client.recv()
        server.join()
        self.assertIsNone(server.error)
        self.assertTrue(reply['ok'])
        self.assertEqual(
            _mac(b'cc-vhsm-auth-v1|server|', nonce, hello['challenge']),
            reply['proof'])

    def test_wrong_secret(self):
        server = self._serve()
        exc = self.assertRaises(protocol.AuthenticationFailed,
                                protocol.client_handshake, self.client,
                                b'w' * 32)
        server.join()
        self.assertEqual(401, exc.error['code'])
        self.assertEqual('Unauthorized', exc.error['type'])
        self.assertIsInstance(server.error, protocol.AuthenticationFailed)

    def test_malformed_response(self):
        server = self._serve()
        self.client.recv()
        self.client.send({'v': 1, 'nonce': b'short', 'response': 'text'})
        reply = self.client.recv()
        server.join()
        self.assertFalse(reply['ok'])
        self.assertEqual(401, reply['error']['code'])
        self.assertIsInstance(server.error, protocol.AuthenticationFailed)

    def test_version_mismatch(self):
        server = self._serve()
        self.client.recv()
        self.client.send({'v': 2, 'nonce': b'n' * 32,
                          'response': b'r' * 32})
        reply = self.client.recv()
        server.join()
        self.assertFalse(reply['ok'])
        self.assertEqual(400, reply['error']['code'])
        self.assertIsInstance(server.error, protocol.AuthenticationFailed)

    def test_bad_server_proof(self):
        def impostor():
            self.server.send({'v': 1, 'challenge': b'c' * 32,
                              'group': 'g', 'member': 'm'})
            self.server.recv()
            # Knows the protocol, not the secret.
            self.server.send({'ok': True, 'proof': b'p' * 32})

        runner = _Runner(impostor)
        runner.start()
        exc = self.assertRaises(protocol.AuthenticationFailed,
                                protocol.client_handshake, self.client,
                                SECRET)
        runner.join()
        self.assertIn('proof', str(exc))

    def test_missing_server_proof(self):
        def impostor():
            self.server.send({'v': 1, 'challenge': b'c' * 32,
                              'group': 'g', 'member': 'm'})
            self.server.recv()
            self.server.send({'ok': True})

        runner = _Runner(impostor)
        runner.start()
        self.assertRaises(protocol.AuthenticationFailed,
                          protocol.client_handshake, self.client, SECRET)
        runner.join()

    def test_busy_refusal(self):
        self.server.send({'ok': False, 'error': {
            'code': 503, 'type': 'ServiceUnavailable',
            'message': 'vHSM busy'}})
        exc = self.assertRaises(protocol.Refused,
                                protocol.client_handshake, self.client,
                                SECRET)
        self.assertEqual(503, exc.error['code'])

    def test_server_deadline(self):
        runner = _Runner(protocol.server_handshake, self.server, SECRET,
                         group_id='g', member_id='m',
                         deadline=time.monotonic() + 0.2)
        runner.start()
        self.client.recv()
        runner.join(5)
        self.assertIsInstance(runner.error, TimeoutError)
