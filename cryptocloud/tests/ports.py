"""Blocks of TCP ports that one test holds while it runs.

Compute daemons give their workloads ports from ``[compute]
port_range_start``..``port_range_end``.  A test that starts daemons must
give them ports no other test uses at the same time, and stestr runs one
test process per core: two tests of one class, run side by side, would
otherwise share a fixed range and talk to each other's vHSMs.

A :class:`PortBlock` takes whole units of :data:`UNIT` ports below the
kernel's ephemeral range (so that no outgoing connection or
``free_port()`` lands in it), holds an ``flock`` on a file per unit until
the test ends (the kernel drops it if the process dies), and takes a unit
only if nothing listens on any of its ports.  The search starts at a
random unit, so the next test seldom gets the ports the last one left
connections in TIME_WAIT on.
"""

import errno
import fcntl
import os
import random
import socket
import tempfile

import fixtures

UNIT = 100
FIRST = 20000
LOCK_DIR = os.path.join(tempfile.gettempdir(), 'cryptocloud-test-ports')


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (32768 if unknown)."""
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _listened_on(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: a port held only by connections in
        # TIME_WAIT is free for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


class PortBlock(fixtures.Fixture):
    """``size`` consecutive ports, ``start``..``end``, held by one test."""

    def __init__(self, size: int = UNIT, host: str = '127.0.0.1'):
        super().__init__()
        if size < 1:
            raise ValueError('a port block holds at least one port')
        self.size = size
        self.host = host
        self.start = self.end = None

    def _setUp(self):
        units = -(-self.size // UNIT)
        limit = ephemeral_start()
        os.makedirs(LOCK_DIR, exist_ok=True)
        starts = list(range(FIRST, limit - units * UNIT + 1, UNIT))
        first = random.randrange(len(starts)) if starts else 0
        for start in starts[first:] + starts[:first]:
            held = self._lock(start, units)
            if held is None:
                continue
            if any(_listened_on(port, self.host)
                   for port in range(start, start + self.size)):
                self._release(held)
                continue
            self.addCleanup(self._release, held)
            self.start, self.end = start, start + self.size - 1
            return
        raise RuntimeError(
            'no %d free ports in %d-%d: every block is held by another '
            'test or listened on' % (self.size, FIRST, limit - 1))

    @staticmethod
    def _lock(start: int, units: int) -> list | None:
        held = []
        for unit in range(start, start + units * UNIT, UNIT):
            f = open(os.path.join(LOCK_DIR, '%d.lock' % unit), 'a')
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                PortBlock._release(held)
                return None
            held.append(f)
        return held

    @staticmethod
    def _release(held: list) -> None:
        for f in held:
            f.close()  # drops the lock
