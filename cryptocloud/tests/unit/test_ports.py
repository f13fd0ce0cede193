"""The port blocks tests hold while their daemons run (tests/ports.py)."""

import multiprocessing
import socket

import fixtures
import testtools

from cryptocloud.common import workloads
from cryptocloud.tests import ports


def _hold_block_in_child(size, ready, done, out):
    with ports.PortBlock(size) as block:
        out.put((block.start, block.end))
        ready.set()
        done.wait(30)


class TestPortBlock(testtools.TestCase):

    def setUp(self):
        super().setUp()
        # A lock directory of this test's own: blocks other tests hold
        # while this one runs do not change what it sees.
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.tests.ports.LOCK_DIR',
            self.useFixture(fixtures.TempDir()).path))

    def _only_units(self, count: int, listened=()) -> None:
        """Leave ``count`` units to take, with ``listened`` ports busy."""
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.tests.ports.ephemeral_start',
            lambda: ports.FIRST + count * ports.UNIT))
        self.useFixture(fixtures.MonkeyPatch(
            'cryptocloud.tests.ports._listened_on',
            lambda port, host: port in listened))

    def test_blocks_held_at_once_do_not_overlap(self):
        one = self.useFixture(ports.PortBlock(250))
        two = self.useFixture(ports.PortBlock(100))
        self.assertEqual(249, one.end - one.start)
        self.assertEqual(0, (one.start - ports.FIRST) % ports.UNIT)
        # 250 ports take three whole units.
        self.assertTrue(two.start >= one.start + 3 * ports.UNIT
                        or two.end < one.start, (one.start, two.start))
        self.assertLess(max(one.end, two.end), ports.ephemeral_start())

    def test_a_released_block_is_taken_again(self):
        self._only_units(1)
        with ports.PortBlock(100) as block:
            self.assertEqual(ports.FIRST, block.start)
        with ports.PortBlock(100) as again:
            self.assertEqual(ports.FIRST, again.start)

    def test_a_block_with_a_listening_port_is_passed_over(self):
        self._only_units(2, listened={ports.FIRST + 42})
        block = self.useFixture(ports.PortBlock(100))
        self.assertEqual(ports.FIRST + ports.UNIT, block.start)

    def test_a_listening_port_is_seen(self):
        port = workloads.free_port()
        self.assertFalse(ports._listened_on(port, '127.0.0.1'))
        with socket.socket() as server:
            server.bind(('127.0.0.1', port))
            server.listen()
            self.assertTrue(ports._listened_on(port, '127.0.0.1'))

    def test_another_process_does_not_get_the_same_block(self):
        self._only_units(1)
        ctx = multiprocessing.get_context('fork')
        ready, done, out = ctx.Event(), ctx.Event(), ctx.Queue()
        child = ctx.Process(target=_hold_block_in_child,
                            args=(100, ready, done, out))
        child.start()
        self.addCleanup(child.join, 10)
        self.addCleanup(done.set)
        self.assertTrue(ready.wait(30))
        self.assertEqual((ports.FIRST, ports.FIRST + 99),
                         out.get(timeout=5))
        # The only unit is the child's.
        self.assertRaises(testtools.MultipleExceptions,
                          ports.PortBlock(100).setUp)
        done.set()
        child.join(10)
        self.assertEqual(ports.FIRST,
                         self.useFixture(ports.PortBlock(100)).start)

    def test_no_room_is_a_clear_error(self):
        self._only_units(1)
        self.useFixture(ports.PortBlock(100))
        error = self.assertRaises(testtools.MultipleExceptions,
                                  ports.PortBlock(50).setUp)
        self.assertIn('no 50 free ports in 20000-20099',
                      str(error.args[0][1]))

    def test_size_must_be_positive(self):
        self.assertRaises(ValueError, ports.PortBlock, 0)
