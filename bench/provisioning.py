"""Provisioning time: POST /v1/services -> ACTIVE with an endpoint.

Runs cryptocloud-all-in-one (process driver, in-process bus, SQLite) with
a vHSM group already ACTIVE, then creates and deletes a one-instance
service several times, timing each creation from the POST to the first
GET that shows it ACTIVE with an endpoint.  Baseline, in the same run: the
time to start one bare cryptocloud-cryptoservice process until it
accepts connections, which no provisioning can beat.

    python bench/provisioning.py [--runs 5]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib
import requests

from cryptocloud.common import workloads

GOAL_SECONDS = 2.0


def _wait(session, url: str, done, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = session.get(url, timeout=30).json()
        if done(body):
            return body
        time.sleep(0.02)
    raise RuntimeError('timed out on %s' % url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=5)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix='cc-prov-')
    state = os.path.join(workdir, 'aio')
    port = workloads.free_port()
    aio = subprocess.Popen(
        [sys.executable, '-m', 'cryptocloud.cmd.all_in_one', '--state-dir',
         state, '--api-port', str(port), '--no-provision'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    try:
        deadline = time.monotonic() + 60
        while not workloads.port_open('127.0.0.1', port):
            if time.monotonic() > deadline or aio.poll() is not None:
                raise RuntimeError('the all-in-one did not start')
            time.sleep(0.1)
        with open(os.path.join(state, 'admin-password')) as f:
            password = f.read().strip()
        api = 'http://127.0.0.1:%d/v1' % port
        s = requests.Session()
        s.auth = ('admin', password)
        group = s.post(api + '/vhsm_groups', json={'name': 'bench',
                                                   'size': 2},
                       timeout=30).json()['vhsm_group']
        _wait(s, api + '/vhsm_groups/' + group['id'],
              lambda b: b['state'] == 'ACTIVE')
        for i in range(args.runs):
            start = time.monotonic()
            made = s.post(api + '/services', timeout=30, json={
                'name': 'bench-%d' % i, 'vhsm_group_id': group['id'],
                'instances': 1, 'replicas': 0}).json()
            _wait(s, api + '/services/' + made['service']['id'],
                  lambda b: b['state'] == 'ACTIVE' and b.get('endpoint'))
            times.append(time.monotonic() - start)
            task = s.delete(api + '/services/' + made['service']['id'],
                            timeout=30).json()['task']
            _wait(s, api + '/tasks/' + task['id'],
                  lambda b: b['state'] in ('SUCCEEDED', 'FAILED'))
        floor = benchlib.bare_instance_starts(workdir, args.runs)
    finally:
        aio.terminate()
        aio.wait(60)
        shutil.rmtree(workdir, ignore_errors=True)

    print('%-40s %8s %8s %8s' % ('', 'p50 s', 'max s', 'goal s'))
    print('%-40s %8.2f %8.2f %8.2f' % (
        'POST service -> ACTIVE (process driver)', statistics.median(times),
        max(times), GOAL_SECONDS))
    print('%-40s %8.2f %8.2f %8s' % (
        'baseline: bare instance start to listen', statistics.median(floor),
        max(floor), '-'))
    return 0 if statistics.median(times) <= GOAL_SECONDS else 1


if __name__ == '__main__':
    sys.exit(main())
