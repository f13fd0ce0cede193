"""Config files and local processes for the two workloads.

A vHSM and a crypto-service instance each run from their own config file.
This module renders those files from a few values and runs the programs as
local processes; the quick start, the functional tests and the process
driver of the compute daemon share it.
"""

import configparser
import dataclasses
import io
import os
import signal
import socket
import subprocess
import sys
import time

from cryptocloud.common import exception


@dataclasses.dataclass
class VHSMConfig:
    """What a vHSM needs to know to start."""

    group_id: str
    port: int
    keystore_url: str
    master_key_file: str
    auth_secret_file: str
    host: str = '127.0.0.1'
    member_id: str | None = None
    key_cache_ttl: float | None = None
    purge_interval: int | None = None
    status_port: int | None = None
    debug: bool = False

    def render(self) -> str:
        values = {
            'vhsm': {
                'host': self.host, 'port': self.port,
                'status_port': self.status_port,
                'group_id': self.group_id, 'member_id': self.member_id,
                'master_key_file': self.master_key_file,
                'auth_secret_file': self.auth_secret_file,
                'key_cache_ttl': self.key_cache_ttl,
                'purge_interval': self.purge_interval,
            },
            'keystore': {'connection': self.keystore_url},
        }
        return _render(values, self.debug)


@dataclasses.dataclass
class ServiceConfig:
    """What a crypto-service instance needs to know to start."""

    port: int
    vhsm_endpoints: list[str]
    vhsm_secret_file: str
    credentials_file: str
    host: str = '127.0.0.1'
    threads: int | None = None
    debug: bool = False

    def render(self) -> str:
        values = {
            'cryptoservice': {
                'host': self.host, 'port': self.port,
                'vhsm_endpoints': ','.join(self.vhsm_endpoints),
                'vhsm_secret_file': self.vhsm_secret_file,
                'credentials_file': self.credentials_file,
                'threads': self.threads,
            },
        }
        return _render(values, self.debug)


def _render(groups: dict, debug: bool) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser['DEFAULT'] = {'debug': str(debug).lower()}
    for group, opts in groups.items():
        parser[group] = {k: str(v) for k, v in opts.items()
                         if v is not None}
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def write_config(path: str, text: str) -> str:
    """Write a config file readable by its owner only (it names secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    return path


def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalProcess:
    """One workload run as a child process, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: str,
                 env: dict | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None

    @classmethod
    def for_program(cls, name: str, program: str, config_file: str,
                    log_path: str) -> 'LocalProcess':
        """Run a cryptocloud program with the same Python as this one."""
        module = {'cryptocloud-vhsm': 'cryptocloud.cmd.vhsm',
                  'cryptocloud-cryptoservice':
                      'cryptocloud.cmd.cryptoservice'}[program]
        return cls(name, [sys.executable, '-m', module, '--config-file',
                          config_file], log_path)

    def start(self) -> 'LocalProcess':
        log = open(self.log_path, 'ab')  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True)
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_listening(self, host: str, port: int,
                       timeout: float = 30.0) -> None:
        """Wait until the process accepts connections on host:port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise exception.ServiceUnavailable(
                    reason='%s exited with status %s; see %s'
                           % (self.name, self.proc.returncode if self.proc
                              else None, self.log_path))
            if port_open(host, port):
                return
            time.sleep(0.05)
        raise exception.ServiceUnavailable(
            reason='%s did not listen on %s:%d within %ss; see %s'
                   % (self.name, host, port, timeout, self.log_path))

    def signal(self, signum: int) -> None:
        if self.alive():
            self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
