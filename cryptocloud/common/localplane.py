"""A data plane on one machine: a vHSM group and a service instance.

Starts real ``cryptocloud-vhsm`` and ``cryptocloud-cryptoservice``
processes on free 127.0.0.1 ports, with real secret, config and credential
files in a work directory.  The quick start, the benchmarks and the
functional tests use it; the control plane does the same job across
nodes.
"""

import os
import signal
import time

from cryptocloud.common import secretfile
from cryptocloud.common import workloads
from cryptocloud.cryptoservice import auth
from cryptocloud.db import migration

HOST = '127.0.0.1'


class LocalDataPlane:
    """``vhsms`` members of one group behind one service instance."""

    def __init__(self, workdir: str, keystore_url: str | None = None, *,
                 vhsms: int = 2, group_id: str = 'group-1',
                 projects: tuple[str, ...] = ('project-a',),
                 key_cache_ttl: float | None = None,
                 service_threads: int | None = None, debug: bool = False):
        self.dir = workdir
        self.keystore_url = keystore_url or 'sqlite:///%s' % os.path.join(
            workdir, 'keystore.sqlite')
        self.initial_vhsms = vhsms
        self.group_id = group_id
        self.projects = projects
        self.key_cache_ttl = key_cache_ttl
        self.service_threads = service_threads
        self.debug = debug
        self.master_key_file = os.path.join(workdir, 'master.key')
        self.secret_file = os.path.join(workdir, 'group.secret')
        self.credentials_file = os.path.join(workdir, 'credentials.json')
        self.vhsms: list[tuple[workloads.LocalProcess, int]] = []
        self.service: workloads.LocalProcess | None = None
        self.tokens: dict[str, str] = {}
        self.url = ''

    def start(self) -> 'LocalDataPlane':
        """Make the secrets and schema, then start every process."""
        os.makedirs(self.dir, exist_ok=True)
        for path in (self.master_key_file, self.secret_file):
            if not os.path.exists(path):
                secretfile.create_secret_file(path)
        migration.upgrade(self.keystore_url)
        self.tokens = {p: auth.create_credential(self.credentials_file, p)
                       for p in self.projects}
        try:
            for _ in range(self.initial_vhsms):
                self.add_vhsm()
            self._start_service()
        except Exception:
            self.stop()
            raise
        return self

    def _start_service(self) -> None:
        port = workloads.free_port()
        self.service_conf = workloads.ServiceConfig(
            port=port, vhsm_endpoints=self.endpoints(),
            vhsm_secret_file=self.secret_file,
            credentials_file=self.credentials_file,
            threads=self.service_threads, debug=self.debug)
        self.service_config_file = workloads.write_config(
            os.path.join(self.dir, 'service.conf'),
            self.service_conf.render())
        self.service = workloads.LocalProcess.for_program(
            'service', 'cryptocloud-cryptoservice', self.service_config_file,
            os.path.join(self.dir, 'service.log'))
        self.service.start()
        self.service.wait_listening(HOST, port)
        self.url = 'http://%s:%d' % (HOST, port)

    def add_vhsm(self) -> int:
        """Start one more member of the group; return its index."""
        index = len(self.vhsms)
        port = workloads.free_port()
        conf = workloads.VHSMConfig(
            group_id=self.group_id, port=port, member_id='vhsm-%d' % index,
            keystore_url=self.keystore_url,
            master_key_file=self.master_key_file,
            auth_secret_file=self.secret_file,
            key_cache_ttl=self.key_cache_ttl, debug=self.debug)
        path = workloads.write_config(
            os.path.join(self.dir, 'vhsm-%d.conf' % index), conf.render())
        proc = workloads.LocalProcess.for_program(
            'vhsm-%d' % index, 'cryptocloud-vhsm', path,
            os.path.join(self.dir, 'vhsm-%d.log' % index))
        proc.start()
        self.vhsms.append((proc, port))
        proc.wait_listening(HOST, port)
        return index

    def restart_vhsm(self, index: int) -> None:
        """Stop member ``index`` (if it runs) and start it again."""
        proc, port = self.vhsms[index]
        proc.stop()
        proc.start()
        proc.wait_listening(HOST, port)

    def endpoints(self, indexes=None) -> list[str]:
        chosen = range(len(self.vhsms)) if indexes is None else indexes
        return ['%s:%d' % (HOST, self.vhsms[i][1]) for i in chosen]

    def set_service_endpoints(self, endpoints: list[str]) -> None:
        """Rewrite the service's vHSM list and reload it with SIGHUP."""
        self.service_conf.vhsm_endpoints = endpoints
        workloads.write_config(self.service_config_file,
                               self.service_conf.render())
        self.service.signal(signal.SIGHUP)
        # The reload runs in the service's signal handler; let it happen.
        time.sleep(0.5)

    def log_files(self) -> list[str]:
        return sorted(os.path.join(self.dir, n) for n in os.listdir(self.dir)
                      if n.endswith('.log'))

    def stop(self) -> None:
        """Stop the service, then every vHSM."""
        if self.service is not None:
            self.service.stop()
        for proc, _ in self.vhsms:
            proc.stop()
