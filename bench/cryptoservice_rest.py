"""Cost of the crypto service's REST layer alone (no vHSM behind it).

Serves the real app on the real cheroot server, with a stub client that
answers ``hash`` at once, and drives ``POST /v1/hash`` with wrk (when
installed) or with keep-alive clients in a separate process.

    python bench/cryptoservice_rest.py [--seconds 10] [--connections 16]
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time

from cryptocloud.common import wsgi
from cryptocloud.cryptoservice import app as app_mod
from cryptocloud.cryptoservice import auth
from cryptocloud.cryptoservice import metrics as metrics_mod

BODY = json.dumps({'algorithm': 'SHA256', 'data': 'aGVsbG8gd29ybGQ='})


class StubClient:
    """Answers hash immediately, so only the REST layer is measured."""

    def call(self, op, project, args):
        return {'algorithm': args['algorithm'],
                'digest': hashlib.sha256(args['data']).digest()}

    def ping_all(self):
        return {'stub': True}


def _keepalive_worker(port, token, seconds, out):
    import http.client
    conn = http.client.HTTPConnection('127.0.0.1', port)
    headers = {'Authorization': 'Bearer ' + token,
               'Content-Type': 'application/json'}
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        conn.request('POST', '/v1/hash', BODY, headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit('unexpected status %d' % resp.status)
        count += 1
    out.put(count)


def run_python_clients(port, token, seconds, connections):
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_keepalive_worker,
                                     args=(port, token, seconds, out))
             for _ in range(connections)]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def run_wrk(port, token, seconds, connections, tmp):
    script = os.path.join(tmp, 'post.lua')
    with open(script, 'w') as f:
        f.write('wrk.method = "POST"\n'
                'wrk.body = %s\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.headers["Authorization"] = "Bearer %s"\n'
                % (json.dumps(BODY), token))
    out = subprocess.run(
        ['wrk', '-t1', '-c%d' % connections, '-d%ds' % seconds, '-s',
         script, 'http://127.0.0.1:%d/v1/hash' % port],
        check=True, capture_output=True, text=True).stdout
    print(out)
    for line in out.splitlines():
        if line.startswith('Requests/sec:'):
            return float(line.split()[1])
    raise SystemExit('wrk printed no rate')


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--seconds', type=int, default=10)
    parser.add_argument('--connections', type=int, default=16)
    parser.add_argument('--threads', type=int, default=16)
    parser.add_argument('--python-clients', action='store_true',
                        help='use keep-alive Python clients, not wrk')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        creds = os.path.join(tmp, 'credentials.json')
        token = auth.create_credential(creds, 'bench')
        app = app_mod.CryptoServiceApp(
            StubClient(), auth.CredentialAuthenticator(creds),
            metrics=metrics_mod.Metrics(), max_body_size=1024 * 1024,
            batch_max_items=256)
        server = wsgi.serve(app, '127.0.0.1', 0, args.threads)
        try:
            if shutil.which('wrk') and not args.python_clients:
                rate = run_wrk(server.port, token, args.seconds,
                               args.connections, tmp)
                tool = 'wrk'
            else:
                rate = run_python_clients(server.port, token, args.seconds,
                                          args.connections)
                tool = 'python keep-alive clients'
        finally:
            server.stop()
    print('POST /v1/hash through the REST layer: %.0f requests/s (%s, %d '
          'connections, %d server threads)'
          % (rate, tool, args.connections, args.threads))


if __name__ == '__main__':
    main()
