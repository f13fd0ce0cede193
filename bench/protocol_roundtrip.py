"""Round trips per second of the internal vHSM protocol, no crypto.

A VHSMServer with a no-op dispatch runs in a child process (as a vHSM
does); a VHSMClient in this process calls ``ping`` over one pooled
connection from one thread, then from several threads. Beside it, as the
baseline, bare 64-byte TCP ping-pongs between the same two processes: the
difference is the cost of this layer (framing, MessagePack, pooling,
dispatch). Wall-clock rates depend on what else runs on the machine, so
the CPU time each side spent per request is printed too (Linux /proc).

    python bench/protocol_roundtrip.py [--seconds 3] [--threads 4] [--tls]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from cryptocloud.vhsm import client as client_mod
from cryptocloud.vhsm import protocol
from cryptocloud.vhsm import server as server_mod

SECRET = b'b' * 32
_PING = {'group_id': 'bench', 'member_id': 'bench-1'}


def _noop(op: str, project: str, args: dict) -> dict:
    return _PING


def _echo_server(listener: socket.socket) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_echo, args=(sock,), daemon=True).start()


def _echo(sock: socket.socket) -> None:
    buf = bytearray(65536)
    with sock:
        while True:
            n = sock.recv_into(buf)
            if not n:
                return
            sock.sendall(buf[:n])


def serve(tls_dir: str | None) -> None:
    """Child process: run the vHSM and an echo server until stdin closes."""
    ctx = None
    if tls_dir:
        ctx = protocol.make_server_ssl_context(
            os.path.join(tls_dir, 'srv.pem'), os.path.join(tls_dir, 'srv.key'))
    srv = server_mod.VHSMServer('127.0.0.1', 0, SECRET, _noop,
                                group_id='bench', member_id='bench-1',
                                ssl_context=ctx)
    srv.start()
    echo = socket.create_server(('127.0.0.1', 0))
    threading.Thread(target=_echo_server, args=(echo,), daemon=True).start()
    print(srv.address[1], echo.getsockname()[1], flush=True)
    sys.stdin.read()
    echo.close()
    srv.shutdown()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (0 elsewhere)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _run(threads: int, seconds: float, one_call, server_pid: int):
    """Return (requests/s, client CPU us/request, server CPU us/request)."""
    counts = [0] * threads
    stop = threading.Event()

    def loop(i: int) -> None:
        call = one_call()
        n = 0
        while not stop.is_set():
            call()
            n += 1
        counts[i] = n

    workers = [threading.Thread(target=loop, args=(i,))
               for i in range(threads)]
    cpu0 = _cpu_seconds(os.getpid()), _cpu_seconds(server_pid)
    started = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    cpu1 = _cpu_seconds(os.getpid()), _cpu_seconds(server_pid)
    total = max(sum(counts), 1)
    return (total / elapsed, (cpu1[0] - cpu0[0]) / total * 1e6,
            (cpu1[1] - cpu0[1]) / total * 1e6)


def _bare(port: int):
    def factory():
        sock = socket.create_connection(('127.0.0.1', port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b'x' * 64
        buf = bytearray(64)

        def call():
            sock.sendall(payload)
            got = 0
            while got < 64:
                got += sock.recv_into(memoryview(buf)[got:])
        return call
    return factory


def _make_tls(directory: str) -> None:
    # Reuses the test helper: a throwaway CA and a cert for 127.0.0.1.
    from cryptocloud.tests.unit.vhsm import test_server_client
    test_server_client._make_pki(directory)


def main() -> int:
    """Measure and print round trips per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--threads', type=int, default=4)
    parser.add_argument('--tls', action='store_true')
    parser.add_argument('--serve', metavar='TLS_DIR', nargs='?', const='',
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve or None)
        return 0

    with tempfile.TemporaryDirectory() as tls_dir:
        ctx = None
        child_args = ['--serve']
        if args.tls:
            _make_tls(tls_dir)
            ctx = protocol.make_client_ssl_context(
                os.path.join(tls_dir, 'ca.pem'))
            child_args.append(tls_dir)
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)] + child_args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            vhsm_port, echo_port = map(int, child.stdout.readline().split())
            cli = client_mod.VHSMClient(['127.0.0.1:%d' % vhsm_port], SECRET,
                                        ssl_context=ctx)

            def protocol_call():
                return lambda: cli.call('ping', 'bench', {})

            protocol_call()()
            rows = []
            for threads in (1, args.threads):
                rows.append(('bare TCP', threads, _run(
                    threads, args.seconds, _bare(echo_port), child.pid)))
                rows.append(('protocol', threads, _run(
                    threads, args.seconds, protocol_call, child.pid)))
            cli.close()
        finally:
            child.stdin.close()
            child.wait(10)

    print('internal protocol round trips (no-op dispatch, server in a '
          'child process%s)' % (', TLS' if args.tls else ''))
    print('%-9s %7s %10s %11s %15s %15s' % (
        'path', 'threads', 'rt/s', 'wall us/rt', 'client CPU us',
        'server CPU us'))
    for name, threads, (rate, client_cpu, server_cpu) in rows:
        print('%-9s %7d %10.0f %11.1f %15.1f %15.1f' % (
            name, threads, rate, 1e6 / rate, client_cpu, server_cpu))
    print('budget for the whole tenant path: ~1000 us/request')
    return 0


if __name__ == '__main__':
    sys.exit(main())
