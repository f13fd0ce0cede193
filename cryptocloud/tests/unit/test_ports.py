"""The port blocks tests hold while their daemons run (tests/ports.py)."""

import multiprocessing
import socket

import fixtures
import testtools

from cryptocloud.tests import ports


def _hold_block_in_child(size, ready, done, out):
    with ports.PortBlock(size) as block:
        out.put((block.start, block.end))
        ready.set()
        done.wait(30)


class TestPortBlock(testtools.TestCase):

    def setUp(self):
        super().setUp()
        # A directory of this test's own: blocks other tests hold while
        # this one runs do not change what it sees.
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.tests.ports.LOCK_DIR',
            self.useFixture(fixtures.TempDir()).path))

    def test_blocks_held_at_once_do_not_overlap(self):
        one = self.useFixture(ports.PortBlock(250))
        two = self.useFixture(ports.PortBlock(100))
        self.assertEqual(249, one.end - one.start)
        self.assertEqual(0, one.start % ports.UNIT)
        # 250 ports take three whole units.
        self.assertGreaterEqual(two.start, one.start + 3 * ports.UNIT)
        self.assertLess(one.end, ports.ephemeral_start())

    def test_a_released_block_is_taken_again(self):
        block = ports.PortBlock(100)
        with block:
            first = block.start
        with ports.PortBlock(100) as again:
            self.assertEqual(first, again.start)

    def test_a_block_with_a_listening_port_is_passed_over(self):
        with ports.PortBlock(100) as probe:
            wanted = probe.start
        server = socket.socket()
        self.addCleanup(server.close)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(('127.0.0.1', wanted + 42))
        except OSError:
            self.skipTest('port %d was taken meanwhile' % (wanted + 42))
        server.listen()
        block = self.useFixture(ports.PortBlock(100))
        self.assertNotEqual(wanted, block.start)

    def test_another_process_does_not_get_the_same_block(self):
        ctx = multiprocessing.get_context('fork')
        ready, done, out = ctx.Event(), ctx.Event(), ctx.Queue()
        child = ctx.Process(target=_hold_block_in_child,
                            args=(100, ready, done, out))
        child.start()
        self.addCleanup(child.join, 10)
        self.addCleanup(done.set)
        self.assertTrue(ready.wait(30))
        theirs = out.get(timeout=5)
        mine = self.useFixture(ports.PortBlock(100))
        self.assertNotEqual(theirs[0], mine.start)

    def test_no_room_is_a_clear_error(self):
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.tests.ports.ephemeral_start',
            lambda: ports.FIRST + ports.UNIT))
        self.useFixture(ports.PortBlock(100))
        error = self.assertRaises(testtools.MultipleExceptions,
                                  ports.PortBlock(50).setUp)
        self.assertIn('no 50 free ports in 20000-20099', str(error.args[0][1]))

    def test_size_must_be_positive(self):
        self.assertRaises(ValueError, ports.PortBlock, 0)
