"""What several benchmarks share: the bare-process baseline."""

import os
import time

from cryptocloud.common import secretfile
from cryptocloud.common import workloads


def bare_instance_starts(workdir: str, runs: int) -> list[float]:
    """Seconds to start a bare service instance until it listens.

    No provisioning or takeover that starts a process can beat this.
    """
    secret = os.path.join(workdir, 'group.secret')
    if not os.path.exists(secret):
        secretfile.create_secret_file(secret)
    times = []
    for i in range(runs):
        port = workloads.free_port()
        conf = workloads.write_config(
            os.path.join(workdir, 'svc-%d.conf' % i),
            workloads.ServiceConfig(
                port=port, vhsm_endpoints=['127.0.0.1:1'],
                vhsm_secret_file=secret,
                credentials_file=os.path.join(workdir, 'creds.json'),
            ).render())
        proc = workloads.LocalProcess.for_program(
            'svc', 'cryptocloud-cryptoservice', conf,
            os.path.join(workdir, 'svc-%d.log' % i))
        start = time.monotonic()
        proc.start()
        proc.wait_listening('127.0.0.1', port)
        times.append(time.monotonic() - start)
        proc.stop()
    return times
