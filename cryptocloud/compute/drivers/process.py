"""The process driver: workloads as local child processes.

Each workload runs the real ``cryptocloud-vhsm`` or
``cryptocloud-cryptoservice`` program (with the daemon's own Python) in a
session of its own, so that it keeps running when the daemon stops or
restarts.  Its files live in ``<state_path>/workloads/<workload_id>/``:

- ``workload.json``: kind, ports and non-secret metadata (for adoption),
  and ``prepared`` for a workload made by ``prepare``;
- ``<kind>.conf`` and the extra files of the spec, mode 0600, and links
  to the node files it reads (the master key);
- ``pid``: the process id, written when the program is spawned;
- ``workload.log``: everything the program prints.

A prepared workload has its files but no pid file until it is activated;
``deactivate`` stops the program and removes the pid file, making it
prepared again.  A restarted daemon finds its workloads again through
these files.  A pid
counts only while ``/proc/<pid>/cmdline`` names the workload's own config
file, so a pid recycled by an unrelated process is never adopted (nor
signalled).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.compute.drivers import base

LOG = logging.getLogger(__name__)

_MODULES = {base.VHSM: 'cryptocloud.cmd.vhsm',
            base.CRYPTOSERVICE: 'cryptocloud.cmd.cryptoservice'}
META_FILE = 'workload.json'
PID_FILE = 'pid'
LOG_FILE = 'workload.log'


def _write_private(path: str, text: str) -> None:
    """Replace ``path`` atomically with ``text``, mode 0600."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc, None when gone."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in parentheses may hold spaces or parentheses.
    return stat[stat.rfind(b')') + 2:][:1].decode('ascii', 'replace')


def _cmdline(pid: int) -> list[str]:
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [a.decode('utf-8', 'replace') for a in raw.split(b'\0') if a]


class ProcessDriver(base.WorkloadDriver):
    """Runs workloads as local processes that outlive the daemon."""

    def __init__(self, state_path: str, *, stop_timeout: float = 10.0,
                 python: str | None = None) -> None:
        super().__init__(state_path)
        self.stop_timeout = stop_timeout
        self.python = python or sys.executable
        # Our own children, so that they are reaped when they exit;
        # adopted processes are reaped by init.
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        os.makedirs(self._root(), mode=0o700, exist_ok=True)

    def _root(self) -> str:
        return os.path.join(self.state_path, 'workloads')

    def _config_path(self, workload_id: str, kind: str) -> str:
        return os.path.join(self.workdir(workload_id), '%s.conf' % kind)

    def argv(self, kind: str, config_file: str) -> list[str]:
        """The command line of a workload of ``kind``."""
        return [self.python, '-m', _MODULES[kind], '--config-file',
                config_file]

    # -- files ------------------------------------------------------------

    def _write_files(self, spec: base.WorkloadSpec,
                     prepared: bool = False) -> str:
        workdir = self.workdir(spec.workload_id)
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        os.chmod(workdir, 0o700)
        for name, text in spec.files.items():
            base.check_file_name(name)
            _write_private(os.path.join(workdir, name), text)
        for name, source in spec.node_files.items():
            base.check_file_name(name)
            # A link, not a copy: the node's file stays the only one.
            link = os.path.join(workdir, name)
            tmp = os.path.join(workdir, '.tmp-link-' + name)
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(os.path.abspath(source), tmp)
            os.replace(tmp, link)
        config_file = self._config_path(spec.workload_id, spec.kind)
        _write_private(config_file, spec.config_text)
        meta = {'workload_id': spec.workload_id, 'kind': spec.kind,
                'host': spec.host, 'port': spec.port,
                'status_port': spec.status_port,
                'metadata': dict(spec.metadata),
                'config_file': config_file}
        if prepared:
            meta['prepared'] = True
        self._write_meta(spec.workload_id, meta)
        return config_file

    def _write_meta(self, workload_id: str, meta: dict) -> None:
        _write_private(os.path.join(self.workdir(workload_id), META_FILE),
                       json.dumps(meta, sort_keys=True) + '\n')

    def _read_meta(self, workload_id: str) -> dict | None:
        path = os.path.join(self.workdir(workload_id), META_FILE)
        try:
            with open(path, encoding='utf-8') as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            LOG.warning('Cannot read %s: %s', path, exc)
            return None

    def _read_pid(self, workload_id: str) -> int | None:
        path = os.path.join(self.workdir(workload_id), PID_FILE)
        try:
            with open(path, encoding='ascii') as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    # -- processes --------------------------------------------------------

    def _alive(self, workload_id: str, pid: int | None,
               config_file: str) -> bool:
        """Whether ``pid`` is still this workload's running process."""
        if pid is None:
            return False
        child = self._children.get(workload_id)
        if child is not None and child.pid == pid:
            # Our own child keeps its pid until we reap it, and between
            # fork and exec its cmdline is still ours: trust the Popen.
            return child.poll() is None
        state = _proc_state(pid)
        if state is None or state in ('Z', 'X'):
            return False
        # A recycled pid belongs to some other program: the workload's
        # config file path is unique to it.
        return config_file in _cmdline(pid)

    def _refuse_running(self, workload_id: str) -> None:
        if self._status(workload_id).state == base.RUNNING:
            raise exception.Conflict(
                reason='workload %s is already running' % workload_id)

    def _spawn(self, workload_id: str, kind: str, config_file: str) -> int:
        """Run the program in a new session; write and return its pid."""
        workdir = self.workdir(workload_id)
        log_path = os.path.join(workdir, LOG_FILE)
        log = open(log_path, 'ab')  # noqa: SIM115 - the child owns it
        try:
            proc = subprocess.Popen(
                self.argv(kind, config_file), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=workdir, start_new_session=True, close_fds=True)
        finally:
            log.close()
        self._children[workload_id] = proc
        _write_private(os.path.join(workdir, PID_FILE), '%d\n' % proc.pid)
        return proc.pid

    def _forget_process(self, workload_id: str) -> None:
        """Drop the pid file and reap our child, if any."""
        child = self._children.pop(workload_id, None)
        if child is not None:
            child.poll()
        try:
            os.unlink(os.path.join(self.workdir(workload_id), PID_FILE))
        except FileNotFoundError:
            pass

    def start(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Write the files and start the program in a new session."""
        with self._lock:
            self._refuse_running(spec.workload_id)
            config_file = self._write_files(spec)
            pid = self._spawn(spec.workload_id, spec.kind, config_file)
            LOG.info('Started %s workload %s (pid %d, port %s).',
                     spec.kind, spec.workload_id, pid, spec.port)
            return self._status(spec.workload_id)

    def prepare(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Write the files, marked prepared; start no process."""
        with self._lock:
            self._refuse_running(spec.workload_id)
            self._forget_process(spec.workload_id)
            self._write_files(spec, prepared=True)
            LOG.info('Prepared %s workload %s (port %s).', spec.kind,
                     spec.workload_id, spec.port)
            return self._status(spec.workload_id)

    def activate(self, workload_id: str) -> base.WorkloadStatus:
        """Start a prepared workload's program, exactly as ``start``."""
        base.check_workload_id(workload_id)
        with self._lock:
            current = self._status(workload_id)
            if current.state == base.RUNNING:
                return current
            if current.state != base.PREPARED:
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=current.state, action='activate')
            pid = self._spawn(workload_id, current.kind,
                              current.metadata['config_file'])
            LOG.info('Activated %s workload %s (pid %d, port %s).',
                     current.kind, workload_id, pid, current.port)
            return self._status(workload_id)

    def deactivate(self, workload_id: str) -> base.WorkloadStatus:
        """Stop the program (as ``stop`` does), keep the files."""
        base.check_workload_id(workload_id)
        with self._lock:
            meta = self._read_meta(workload_id)
            current = self._status(workload_id)
            if meta is None:
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=current.state, action='deactivate')
            if current.state == base.RUNNING:
                self._terminate(workload_id, current.pid,
                                current.metadata['config_file'])
            self._forget_process(workload_id)
            if not meta.get('prepared'):
                meta['prepared'] = True
                self._write_meta(workload_id, meta)
            LOG.info('Deactivated workload %s: prepared again.',
                     workload_id)
            return self._status(workload_id)

    def update(self, spec: base.WorkloadSpec) -> base.WorkloadStatus:
        """Rewrite the files of a running workload and send SIGHUP.

        A prepared workload only gets its files rewritten.
        """
        with self._lock:
            current = self._status(spec.workload_id)
            if current.state == base.PREPARED:
                self._write_files(spec, prepared=True)
                return self._status(spec.workload_id)
            if current.state != base.RUNNING:
                raise exception.InvalidState(
                    kind='workload', resource_id=spec.workload_id,
                    state=current.state, action='update')
            self._write_files(spec)
            self._signal(current, signal.SIGHUP)
            return self._status(spec.workload_id)

    def reload(self, workload_id: str) -> None:
        """Send SIGHUP: the program re-reads its config in place."""
        with self._lock:
            current = self._status(workload_id)
            if current.state != base.RUNNING:
                raise exception.InvalidState(
                    kind='workload', resource_id=workload_id,
                    state=current.state, action='reload')
            self._signal(current, signal.SIGHUP)

    @staticmethod
    def _signal(status: base.WorkloadStatus, signum: int) -> None:
        try:
            os.kill(status.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, workload_id: str) -> None:
        """SIGTERM, SIGKILL after ``stop_timeout``; then remove the files."""
        workdir = self.workdir(workload_id)
        with self._lock:
            current = self._status(workload_id)
            if current.state == base.RUNNING:
                self._terminate(workload_id, current.pid,
                                current.metadata.get('config_file', ''))
            child = self._children.pop(workload_id, None)
            if child is not None:
                child.poll()
            if os.path.isdir(workdir):
                shutil.rmtree(workdir, ignore_errors=True)
                LOG.info('Stopped and removed workload %s.', workload_id)

    def _terminate(self, workload_id: str, pid: int,
                   config_file: str) -> None:
        self._signal_pid(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            if not self._alive(workload_id, pid, config_file):
                return
            time.sleep(0.05)
        LOG.warning('Workload %s (pid %d) ignored SIGTERM for %.1f s; '
                    'killing it.', workload_id, pid, self.stop_timeout)
        self._signal_pid(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if not self._alive(workload_id, pid, config_file):
                return
            time.sleep(0.05)

    @staticmethod
    def _signal_pid(pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    # -- status -----------------------------------------------------------

    def _status(self, workload_id: str) -> base.WorkloadStatus:
        meta = self._read_meta(workload_id)
        if meta is None:
            return base.WorkloadStatus(workload_id=workload_id,
                                       kind=base.VHSM, state=base.MISSING,
                                       reason='no such workload')
        config_file = meta.get('config_file') or self._config_path(
            workload_id, meta.get('kind', base.VHSM))
        metadata = dict(meta.get('metadata') or {})
        metadata['config_file'] = config_file
        status = base.WorkloadStatus(
            workload_id=workload_id, kind=meta.get('kind', base.VHSM),
            state=base.EXITED, host=meta.get('host', '127.0.0.1'),
            port=meta.get('port'), status_port=meta.get('status_port'),
            metadata=metadata)
        pid = self._read_pid(workload_id)
        if pid is None and meta.get('prepared'):
            status.state = base.PREPARED
            status.reason = 'prepared: ready to be activated'
        elif pid is None:
            status.reason = 'never started (no pid file)'
        elif self._alive(workload_id, pid, config_file):
            status.state = base.RUNNING
            status.pid = pid
            status.workload_ref = 'pid:%d' % pid
        else:
            child = self._children.get(workload_id)
            code = None
            if child is not None and child.pid == pid:
                code = child.poll()
            status.reason = ('process %d exited with status %s'
                             % (pid, code) if code is not None
                             else 'process %d is gone' % pid)
        return status

    def status(self, workload_id: str) -> base.WorkloadStatus:
        """The workload's state from its files and /proc."""
        base.check_workload_id(workload_id)
        with self._lock:
            return self._status(workload_id)

    def list(self) -> list[base.WorkloadStatus]:
        """Every workload directory under the state path, with its state."""
        try:
            names = sorted(os.listdir(self._root()))
        except FileNotFoundError:
            return []
        found = []
        with self._lock:
            for name in names:
                try:
                    base.check_workload_id(name)
                except exception.InvalidInput:
                    continue
                status = self._status(name)
                if status.state != base.MISSING:
                    found.append(status)
        return found

    def log_tail(self, workload_id: str, lines: int = 20) -> str:
        """The last ``lines`` lines of the workload's log file."""
        path = os.path.join(self.workdir(workload_id), LOG_FILE)
        try:
            with open(path, 'rb') as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 8192))
                data = f.read()
        except FileNotFoundError:
            return ''
        text = data.decode('utf-8', 'replace').splitlines()[-lines:]
        return '\n'.join(text)
