"""Tenant crypto throughput through the REST path, beside openssl speed.

Starts a local data plane (vHSMs + one service instance, real processes),
then drives it with wrk (C, keep-alive; Debian package ``wrk``) or, when wrk
is missing, a threaded Python client, and prints each figure next to a
baseline measured in the same run:

  SM2 sign, single requests   vs  openssl speed sm2 (one core, sign/s)
  SM2 sign, batch requests    vs  the same
  SM4-GCM encrypt of 4 KiB    vs  openssl speed -evp sm4-ctr, 4 KiB blocks

    python bench/rest_crypto.py [--seconds 10] [--connections 8]
"""

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

from cryptocloud.common import localplane

# Goals from the issue (SM2) and the design (SM4-GCM, 1/3 of sm4-ctr).
GOALS = {'sm2-sign': 0.35, 'sm2-sign-batch': 1.0, 'sm4-gcm-4k': 1 / 3,
         'sm4-gcm-4k-batch': 1 / 3}


def openssl_sm2_signs(seconds: int) -> float:
    out = subprocess.run(['openssl', 'speed', '-seconds', str(seconds),
                          'sm2'], capture_output=True, text=True).stdout
    match = re.search(r'SM2 \(CurveSM2\)\s+\S+\s+\S+\s+([\d.]+)', out)
    if not match:
        raise RuntimeError('cannot read openssl speed sm2 output')
    return float(match.group(1))


def openssl_sm4_ctr_bytes(seconds: int, size: int = 4096) -> float:
    out = subprocess.run(['openssl', 'speed', '-seconds', str(seconds),
                          '-bytes', str(size), '-evp', 'sm4-ctr'],
                         capture_output=True, text=True).stdout
    match = re.search(r'^sm4-ctr\s+([\d.]+)k', out, re.M | re.I)
    if not match:
        raise RuntimeError('cannot read openssl speed sm4-ctr output')
    return float(match.group(1)) * 1000


def _wrk(url: str, body: dict, token: str, seconds: int,
         connections: int) -> dict:
    script = ('wrk.method = "POST"\n'
              'wrk.body = %s\n'
              'wrk.headers["Content-Type"] = "application/json"\n'
              'wrk.headers["Authorization"] = "Bearer %s"\n'
              % (json.dumps(json.dumps(body)), token))
    with tempfile.NamedTemporaryFile('w', suffix='.lua',
                                     delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ['wrk', '-t', '1', '-c', str(connections), '-d',
             '%ds' % seconds, '--latency', '-s', f.name, url],
            capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    if 'Non-2xx' in out:
        raise RuntimeError('some requests failed:\n' + out)

    def latency(pct):
        m = re.search(r'^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$' % pct, out, re.M)
        scale = {'us': 0.001, 'ms': 1.0, 's': 1000.0}[m.group(2)]
        return float(m.group(1)) * scale
    rps = float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1))
    return {'rps': rps, 'p50_ms': latency(50), 'p99_ms': latency(99)}


def _python_client(url: str, body: dict, token: str, seconds: int,
                   connections: int) -> dict:
    payload = json.dumps(body).encode()
    host, port = url.split('//')[1].split('/')[0].split(':')
    path = '/' + url.split('//')[1].split('/', 1)[1]
    headers = {'Content-Type': 'application/json',
               'Authorization': 'Bearer ' + token}
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine = []
        while time.monotonic() < deadline:
            t = time.perf_counter()
            conn.request('POST', path, payload, headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError('HTTP %d' % resp.status)
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    latencies.sort()
    return {'rps': len(latencies) / elapsed,
            'p50_ms': statistics.median(latencies) * 1000,
            'p99_ms': latencies[int(len(latencies) * 0.99)] * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=int, default=10)
    parser.add_argument('--connections', type=int, default=8)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--sm4-batch-size', type=int, default=32)
    parser.add_argument('--vhsms', type=int, default=1)
    parser.add_argument('--service-threads', type=int, default=None)
    parser.add_argument('--keystore', help='keystore URL (default SQLite)')
    args = parser.parse_args()
    drive = _wrk if shutil.which('wrk') else _python_client
    print('client: %s' % ('wrk' if drive is _wrk else 'python threads'))
    load = os.getloadavg()[0]
    print('load average before the run: %.2f%s' % (
        load, ' (busy machine: figures will be low)' if load > 0.5 else ''))

    sm2_base = openssl_sm2_signs(args.seconds)
    sm4_base = openssl_sm4_ctr_bytes(args.seconds)
    workdir = tempfile.mkdtemp(prefix='cc-bench-')
    plane = localplane.LocalDataPlane(
        workdir, args.keystore, vhsms=args.vhsms, projects=('bench',),
        service_threads=args.service_threads)
    plane.start()
    try:
        token = plane.tokens['bench']
        hdrs = {'Authorization': 'Bearer ' + token}
        sm2, sm4 = (requests.post(plane.url + '/v1/keys', headers=hdrs,
                                  json={'algorithm': alg},
                                  timeout=30).json()['key_id']
                    for alg in ('SM2', 'SM4_GCM'))
        msg = base64.b64encode(b'payment order #1234567890').decode()
        block = base64.b64encode(os.urandom(4096)).decode()
        scenarios = [
            ('sm2-sign', '/v1/keys/%s/sign' % sm2, {'message': msg}, 1,
             sm2_base, 'sign/s'),
            ('sm2-sign-batch', '/v1/batch', {'items': [
                {'op': 'sign', 'key_id': sm2, 'message': msg}
            ] * args.batch_size}, args.batch_size, sm2_base, 'sign/s'),
            ('sm4-gcm-4k', '/v1/keys/%s/encrypt' % sm4,
             {'plaintext': block}, 4096, sm4_base, 'B/s'),
            ('sm4-gcm-4k-batch', '/v1/batch', {'items': [
                {'op': 'encrypt', 'key_id': sm4, 'plaintext': block}
            ] * args.sm4_batch_size}, 4096 * args.sm4_batch_size, sm4_base,
             'B/s'),
        ]
        rows = []
        for name, path, body, per_request, base, unit in scenarios:
            # Warm the pools and caches first.
            drive(plane.url + path, body, token, 1, args.connections)
            res = drive(plane.url + path, body, token, args.seconds,
                        args.connections)
            figure = res['rps'] * per_request
            rows.append((name, figure, base, unit, res))
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print('\n%-17s %14s %16s %7s %6s %9s %9s' % (
        'scenario', 'figure', 'baseline', 'ratio', 'goal', 'p50 ms',
        'p99 ms'))
    failed = False
    for name, figure, base, unit, res in rows:
        ratio = figure / base
        scale = 1 if unit == 'sign/s' else 1 / (1024 * 1024)
        shown = 'MiB/s' if unit == 'B/s' else unit
        print('%-17s %8.0f %-6s %9.0f %-6s %6.2fx %5.2fx %9.2f %9.2f' % (
            name, figure * scale, shown, base * scale, shown, ratio,
            GOALS[name], res['p50_ms'], res['p99_ms']))
        failed |= ratio < GOALS[name]
    print('\nbaselines: openssl speed sm2 (sign/s, one core), openssl '
          'speed -evp sm4-ctr -bytes 4096; both run in this invocation.')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
