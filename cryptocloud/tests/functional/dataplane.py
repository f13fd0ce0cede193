"""A real data plane for functional tests: vHSM and service processes.

Everything runs as separate processes on 127.0.0.1 ports picked free, with
real config, secret and credential files in a temporary directory, the way
an operator (or the compute daemon) would start them.
"""

import base64
import os
import signal
import time

import fixtures
import requests

from cryptocloud.common import secretfile
from cryptocloud.common import workloads
from cryptocloud.cryptoservice import auth
from cryptocloud.db import migration

HOST = '127.0.0.1'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


class DataPlane(fixtures.Fixture):
    """A vHSM group of ``vhsms`` members and one service instance."""

    def __init__(self, keystore_url: str, *, vhsms: int = 2,
                 group_id: str = 'group-1',
                 projects: tuple[str, ...] = ('project-a', 'project-b'),
                 key_cache_ttl: float = 0.5):
        super().__init__()
        self.keystore_url = keystore_url
        self.initial_vhsms = vhsms
        self.group_id = group_id
        self.projects = projects
        self.key_cache_ttl = key_cache_ttl

    def _setUp(self):
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.master_key_file = os.path.join(self.dir, 'master.key')
        self.secret_file = os.path.join(self.dir, 'group.secret')
        self.credentials_file = os.path.join(self.dir, 'credentials.json')
        secretfile.create_secret_file(self.master_key_file)
        secretfile.create_secret_file(self.secret_file)
        migration.upgrade(self.keystore_url)
        self.tokens = {p: auth.create_credential(self.credentials_file, p)
                       for p in self.projects}
        self.vhsms: list[tuple[workloads.LocalProcess, int]] = []
        for _ in range(self.initial_vhsms):
            self.add_vhsm()
        self.service_port = workloads.free_port()
        self.service_conf = workloads.ServiceConfig(
            port=self.service_port, vhsm_endpoints=self.endpoints(),
            vhsm_secret_file=self.secret_file,
            credentials_file=self.credentials_file, debug=True)
        self.service_config_file = workloads.write_config(
            os.path.join(self.dir, 'service.conf'),
            self.service_conf.render())
        self.service = workloads.LocalProcess.for_program(
            'service', 'cryptocloud-cryptoservice', self.service_config_file,
            os.path.join(self.dir, 'service.log'))
        self.service.start()
        self.addCleanup(self.service.stop)
        self.service.wait_listening(HOST, self.service_port)
        self.url = 'http://%s:%d' % (HOST, self.service_port)
        self.session = requests.Session()
        self.addCleanup(self.session.close)

    def add_vhsm(self) -> int:
        """Start one more member of the group; return its index."""
        index = len(self.vhsms)
        port = workloads.free_port()
        conf = workloads.VHSMConfig(
            group_id=self.group_id, port=port,
            member_id='vhsm-%d' % index,
            keystore_url=self.keystore_url,
            master_key_file=self.master_key_file,
            auth_secret_file=self.secret_file,
            key_cache_ttl=self.key_cache_ttl, debug=True)
        path = workloads.write_config(
            os.path.join(self.dir, 'vhsm-%d.conf' % index), conf.render())
        proc = workloads.LocalProcess.for_program(
            'vhsm-%d' % index, 'cryptocloud-vhsm', path,
            os.path.join(self.dir, 'vhsm-%d.log' % index))
        proc.start()
        self.addCleanup(proc.stop)
        proc.wait_listening(HOST, port)
        self.vhsms.append((proc, port))
        return index

    def endpoints(self, indexes=None) -> list[str]:
        chosen = range(len(self.vhsms)) if indexes is None else indexes
        return ['%s:%d' % (HOST, self.vhsms[i][1]) for i in chosen]

    def set_service_endpoints(self, endpoints: list[str]) -> None:
        """Rewrite the service's vHSM list and reload it with SIGHUP."""
        self.service_conf.vhsm_endpoints = endpoints
        workloads.write_config(self.service_config_file,
                               self.service_conf.render())
        self.service.signal(signal.SIGHUP)
        # The reload is asynchronous; give the signal handler a moment.
        time.sleep(0.5)

    def log_files(self) -> list[str]:
        return [os.path.join(self.dir, n) for n in os.listdir(self.dir)
                if n.endswith('.log')]

    # -- tenant calls -------------------------------------------------------

    def call(self, method: str, path: str, project: str = 'project-a',
             body=None, token: str | None = None, **kwargs):
        """One tenant REST call; returns the requests Response."""
        headers = kwargs.pop('headers', {})
        tok = token if token is not None else self.tokens[project]
        if tok:
            headers['Authorization'] = 'Bearer ' + tok
        return self.session.request(method, self.url + path, json=body,
                                    headers=headers, timeout=30, **kwargs)

    def ok(self, method: str, path: str, project: str = 'project-a',
           body=None, expect: int | tuple = (200, 201)) -> dict:
        """A call that must succeed; returns the JSON body."""
        resp = self.call(method, path, project, body)
        expected = expect if isinstance(expect, tuple) else (expect,)
        if resp.status_code not in expected:
            raise AssertionError('%s %s -> %d %s' % (
                method, path, resp.status_code, resp.text[:500]))
        return resp.json()
