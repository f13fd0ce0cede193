"""The stable service endpoint: HAProxy in front of each service.

With ``[proxy] driver = haproxy`` every service gets a frontend port
(``services.frontend_port``, unique, from ``[proxy] port_range_*``) and
its endpoint is ``[proxy] address:frontend_port`` for its whole life.
Each conductor runs its own HAProxy (master-worker mode) and writes its
configuration from the database: one frontend per service (being
deleted aside; a new one is fronted before it turns ACTIVE), its primary
instances as servers checked with ``GET /healthz``, hot-standby replicas
as backup servers.  A change (failover, scaling, a new or deleted
service) rewrites the file, checks it with ``haproxy -c`` and reloads
with SIGUSR2: the master starts new workers and the old ones finish the
connections they hold, so nothing is dropped.  The configuration is a
function of the database only, so several conductors' proxies agree.

Workflows call :func:`changed` after they touch instances; the sync
thread of :class:`ProxySync` also looks every ``[proxy] sync_interval``.
"""

import os
import signal
import subprocess
import tempfile
import threading
import time

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states

LOG = logging.getLogger(__name__)

_changed = threading.Event()
# Sync requests asked and served, so a workflow can wait until the
# proxy serves what it just wrote.
_cond = threading.Condition()
_asked = 0
_served = 0
_running = False


def changed() -> int:
    """Ask the proxy of this conductor to sync soon; the request number.
    """
    global _asked
    with _cond:
        _asked += 1
        asked = _asked
    _changed.set()
    return asked


def changed_and_wait(timeout: float = 10.0) -> bool:
    """Ask for a sync and wait until it was done (or no proxy runs)."""
    asked = changed()
    with _cond:
        return _cond.wait_for(lambda: not _running or _served >= asked,
                              timeout)


def enabled(conf) -> bool:
    """Whether HAProxy gives services their endpoint."""
    return conf.proxy.driver == 'haproxy'


def endpoint_of(conf, service: dict) -> dict | None:
    """The service's endpoint columns when the proxy gives it, else None."""
    if not enabled(conf) or not service.get('frontend_port'):
        return None
    return {'endpoint_host': conf.proxy.address,
            'endpoint_port': service['frontend_port']}


def allocate_port(db, conf, service: dict) -> dict:
    """Give ``service`` a frontend port (once); the updated row."""
    if service.get('frontend_port'):
        return service
    start, end = conf.proxy.port_range_start, conf.proxy.port_range_end
    for _ in range(5):
        used = {s['frontend_port'] for s in db.list('services')
                if s.get('frontend_port')}
        free = next((p for p in range(start, end + 1) if p not in used),
                    None)
        if free is None:
            raise exception.NoValidHost(
                reason='no free proxy port left in %d-%d' % (start, end))
        try:
            return db.update('services', service['id'],
                             {'frontend_port': free})
        except exception.Conflict:
            continue  # another conductor took it: look again
    raise exception.Conflict(reason='could not settle a proxy port for '
                                    'service %s' % service['id'])


def render(db, conf) -> str:
    """The HAProxy configuration for every served service."""
    interval = conf.proxy.check_interval_ms
    lines = [
        '# Written by cryptocloud-conductor from the control database;',
        '# changes here are overwritten.',
        'global',
        '    maxconn 4096',
        'defaults',
        '    mode http',
        # Instances are on the cluster's own network: a connection takes
        # milliseconds.  HAProxy waits this long between retries too, so
        # a call that met a dead primary is not held for seconds; with
        # every server down it gets a 503 soon and the client's retry
        # reaches the promoted instance after the reload.
        '    timeout connect 500ms',
        '    timeout queue 500ms',
        '    timeout client 60s',
        '    timeout server 60s',
        '    timeout http-keep-alive 10s',
        # Every retry goes to another server when there is one (by
        # default only the last does): a call that met a dead primary
        # reaches a hot replica or another primary after one wait of
        # `timeout connect`, not two.
        '    option redispatch 1',
        '    retries 2',
        '',
    ]
    instances: dict[str, list[dict]] = {}
    for row in db.list('service_instances'):
        instances.setdefault(row['service_id'], []).append(row)
    for service in db.list('services', sort_key='frontend_port'):
        port = service.get('frontend_port')
        if not port or service['state'] == states.DELETING:
            continue
        name = 'svc-%s' % service['id']
        lines += [
            'frontend %s' % name,
            '    bind %s:%d' % (conf.proxy.address, port),
            '    default_backend %s' % name,
            'backend %s' % name,
            '    option httpchk GET /healthz',
            '    http-check expect status 200',
            '    default-server inter %dms fastinter %dms downinter %dms '
            'fall 2 rise 1' % (interval, max(100, interval // 2), interval),
        ]
        rows = sorted(instances.get(service['id'], []),
                      key=lambda r: r['id'])
        for row in rows:
            if not row.get('port') or not row.get('host'):
                continue
            if row.get('role') == 'primary' and row['state'] in (
                    states.BUILDING, states.ACTIVE):
                lines.append('    server %s %s:%d check'
                             % (row['id'], row['host'], row['port']))
            elif (row.get('role') == 'replica'
                    and row['state'] == states.ACTIVE):
                lines.append('    server %s %s:%d check backup'
                             % (row['id'], row['host'], row['port']))
        lines.append('')
    return '\n'.join(lines) + '\n'


class HAProxy:
    """One HAProxy, master-worker, whose configuration we own."""

    def __init__(self, conf) -> None:
        self.binary = conf.proxy.haproxy_binary
        self.state_path = conf.proxy.state_path
        self.config = os.path.join(self.state_path, 'haproxy.cfg')
        self.pidfile = os.path.join(self.state_path, 'haproxy.pid')
        self.log = os.path.join(self.state_path, 'haproxy.log')
        self._lock = threading.Lock()

    def _read_pid(self) -> int | None:
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                if self.config.encode() not in f.read():
                    return None  # a recycled pid
        except OSError:
            return None
        return pid

    def _pid(self) -> int | None:
        """The master's pid; None when HAProxy is not running."""
        pid = self._read_pid()
        # While the master re-executes itself for a reload, its pid file
        # and command line may read empty for a moment.
        deadline = time.monotonic() + 2.0
        while (pid is None and os.path.exists(self.pidfile)
               and time.monotonic() < deadline):
            time.sleep(0.05)
            pid = self._read_pid()
        return pid

    def current(self) -> str | None:
        """The configuration in force, None before the first write."""
        try:
            with open(self.config) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _check(self, path: str) -> bool:
        """Validate ``path``; False when it is valid but has no listener.
        """
        result = subprocess.run([self.binary, '-c', '-f', path],
                                capture_output=True, text=True, timeout=30)
        if result.returncode == 2 and 'no listener' in (
                result.stdout + result.stderr):
            return False
        if result.returncode != 0:
            raise exception.ConfigurationError(
                reason='HAProxy refused the configuration: %s'
                       % (result.stderr or result.stdout).strip()[-800:])
        return True

    def apply(self, text: str) -> bool:
        """Install ``text`` and (re)load; False when nothing changed."""
        with self._lock:
            os.makedirs(self.state_path, mode=0o700, exist_ok=True)
            pid = self._pid()
            if text == self.current() and (pid is not None
                                           or 'frontend ' not in text):
                return False
            fd, tmp = tempfile.mkstemp(dir=self.state_path,
                                       prefix='.haproxy-', suffix='.cfg')
            with os.fdopen(fd, 'w') as f:
                f.write(text)
            try:
                listens = self._check(tmp)
                os.replace(tmp, self.config)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            if not listens:
                # No service to front: nothing may run (HAProxy refuses
                # to start without a listener).
                if pid is not None:
                    os.kill(pid, signal.SIGTERM)
                    os.unlink(self.pidfile)
                    LOG.info('Stopped HAProxy: no service to front.')
                return True
            if pid is None:
                with open(self.log, 'ab') as log:
                    subprocess.run(
                        [self.binary, '-W', '-D', '-f', self.config, '-p',
                         self.pidfile], stdout=log, stderr=log,
                        stdin=subprocess.DEVNULL, check=True, timeout=30)
                LOG.info('Started HAProxy (%s).', self.config)
            else:
                # Master-worker reload: new workers take the listeners,
                # old ones finish their connections.
                os.kill(pid, signal.SIGUSR2)
                LOG.info('Reloaded HAProxy (master %d).', pid)
            return True

    def stop(self) -> None:
        """Stop HAProxy (the endpoints stop answering)."""
        with self._lock:
            pid = self._pid()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                os.unlink(self.pidfile)
            except FileNotFoundError:
                pass


class ProxySync:
    """Keeps this conductor's HAProxy in step with the database."""

    def __init__(self, db, conf) -> None:
        self._db = db
        self._conf = conf
        self.haproxy = HAProxy(conf)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop,
                                        name='conductor-proxy', daemon=True)

    def start(self) -> None:
        """Write the configuration now, then keep it current."""
        try:
            self.sync()
        except Exception:  # noqa: BLE001 - the thread tries again
            LOG.exception('Could not set up HAProxy; retrying.')
        self._thread.start()

    def stop(self, *, stop_haproxy: bool = False) -> None:
        """Stop syncing; HAProxy keeps serving unless asked to stop."""
        self._stopping.set()
        _changed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if stop_haproxy:
            self.haproxy.stop()

    def sync(self) -> bool:
        """Rewrite and reload when the configuration differs."""
        return self.haproxy.apply(render(self._db, self._conf))

    def _loop(self) -> None:
        global _running, _served
        with _cond:
            _running = True
        try:
            while not self._stopping.is_set():
                _changed.wait(self._conf.proxy.sync_interval)
                _changed.clear()
                if self._stopping.is_set():
                    return
                with _cond:
                    asked = _asked
                try:
                    self.sync()
                except Exception:  # noqa: BLE001 - next change retries
                    LOG.exception('Could not update HAProxy.')
                with _cond:
                    _served = max(_served, asked)
                    _cond.notify_all()
        finally:
            with _cond:
                _running = False
                _cond.notify_all()
