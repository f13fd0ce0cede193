"""Private RabbitMQ and MariaDB servers that a test may stop and restart.

The RabbitMQ and MariaDB that run on every development and CI machine
(127.0.0.1:5672 and :3306) are shared by every test running at the same
time, so no test may restart them.  A chaos test starts its own instead:

* :class:`PrivateRabbitMQ`: a RabbitMQ node named ``cctest-<hex>@localhost``
  with its own port, distribution port, Mnesia directory, logs and Erlang
  cookie, and no plugins (the management plugin would bind 15672);
* :class:`PrivateMariaDB`: a MariaDB server with its own data directory,
  port and socket, made with ``mariadb-install-db``.

Both listen on 127.0.0.1 only, live under a temporary directory and are
stopped (killed if they do not stop) and removed at cleanup.
``restart()`` stops the server process for real (a graceful shutdown,
as a service manager does it) and starts it again on the same port and
data directory; ``start_seconds`` records how long each start took.

Neither server is ever touched through a shared tool: no ``rabbitmqctl``
call is made, so the shared node ``rabbit@localhost`` cannot be reached
by mistake; each fixture signals only the process it started.

When a binary is missing the test is skipped with the reason, unless
``CRYPTOCLOUD_TEST_REQUIRE_DB=1`` or ``CI`` is set: then it fails.
"""

import os
import shutil
import signal
import subprocess
import time
import unittest
import uuid

import fixtures

from cryptocloud.common import workloads
from cryptocloud.tests import db as test_db

HOST = '127.0.0.1'

RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server'
MARIADB_INSTALL_DB = 'mariadb-install-db'
MARIADBD = 'mariadbd'

# Seconds a server may take to start, and to stop before it is killed.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


class ServerUnavailable(Exception):
    """A private server could not be made (its binary is missing)."""


def _require(what: str, *programs: str) -> None:
    missing = [p for p in programs
               if not (os.path.isfile(p) if os.path.isabs(p)
                       else shutil.which(p, path=_sbin_path()))]
    if not missing:
        return
    reason = '%s needs %s (not installed)' % (what, ', '.join(missing))
    if test_db.database_required():
        raise ServerUnavailable(reason)
    raise unittest.SkipTest(reason)


def _sbin_path() -> str:
    # mariadbd lives in /usr/sbin, which a non-root PATH may lack.
    return os.pathsep.join([os.environ.get('PATH', os.defpath),
                            '/usr/sbin', '/usr/local/sbin'])


def _which(program: str) -> str:
    return shutil.which(program, path=_sbin_path()) or program


def _as_root() -> list[str]:
    # mariadbd refuses to run as root unless told to; as anyone else it
    # runs as that user.
    return ['--user=root'] if os.geteuid() == 0 else []


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return '(no log)'


class _ServerProcess(fixtures.Fixture):
    """One server process, started and stopped by this fixture only."""

    name = 'server'

    def __init__(self) -> None:
        super().__init__()
        self.proc: subprocess.Popen | None = None
        self.start_seconds: list[float] = []
        self.stop_seconds: list[float] = []

    # Subclasses give the command line, environment and readiness check.
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict | None:
        return None

    def _ready(self) -> bool:
        raise NotImplementedError

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, '%s.out' % self.name)

    @property
    def pid(self) -> int | None:
        """The server's process id (of its last start)."""
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        """Whether the server process runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> float:
        """Start the server and wait until it serves; return the seconds."""
        if self.alive():
            raise RuntimeError('%s is already running' % self.name)
        started = time.monotonic()
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(
                self._argv(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self._env(),
                start_new_session=True)
        deadline = started + START_TIMEOUT
        while not self._ready():
            if not self.alive():
                raise RuntimeError('%s exited with status %s:\n%s' % (
                    self.name, self.proc.returncode, self._diagnostics()))
            if time.monotonic() > deadline:
                raise RuntimeError('%s did not start within %.0f s:\n%s' % (
                    self.name, START_TIMEOUT, self._diagnostics()))
            time.sleep(0.1)
        took = time.monotonic() - started
        self.start_seconds.append(took)
        return took

    def stop(self) -> float:
        """Stop the server gracefully (SIGTERM); kill it if it hangs."""
        started = time.monotonic()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        took = time.monotonic() - started
        self.stop_seconds.append(took)
        return took

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def restart(self, down_seconds: float = 0.0) -> float:
        """Stop, stay down ``down_seconds``, start; return the start time."""
        self.stop()
        if down_seconds > 0:
            time.sleep(down_seconds)
        return self.start()

    def _diagnostics(self) -> str:
        return _tail(self.log_path)


class PrivateRabbitMQ(_ServerProcess):
    """A RabbitMQ node of this test's own; its URL is ``.url``."""

    name = 'rabbitmq'

    def setUp(self) -> None:
        # Checked before fixtures.Fixture.setUp, which would wrap a
        # SkipTest raised in _setUp into MultipleExceptions.
        _require('a private RabbitMQ', RABBITMQ_SERVER)
        super().setUp()

    def _setUp(self) -> None:
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.node = 'cctest-%s@localhost' % uuid.uuid4().hex[:12]
        self.port = workloads.free_port(HOST)
        self.dist_port = workloads.free_port(HOST)
        self.url = 'rabbit://guest:guest@%s:%d/' % (HOST, self.port)
        # Empty files: no plugins, and none of /etc/rabbitmq's settings
        # (they name the shared node).
        self._conf_env = self._write('rabbitmq-env.conf', '')
        self._plugins = self._write('enabled_plugins', '[].\n')
        self._config = self._write('rabbitmq.conf', '\n'.join((
            # Never block publishers on a nearly full CI disk.
            'disk_free_limit.absolute = 1MB',
            'log.console = false',
            'log.file.level = info',
            '')))
        self.addCleanup(self.kill)
        self.addCleanup(self.stop)
        self.start()

    def _write(self, name: str, text: str) -> str:
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def _argv(self) -> list[str]:
        return [RABBITMQ_SERVER]

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('RABBITMQ_', 'ERL_'))}
        env.update({
            # The Erlang cookie is made under HOME.
            'HOME': self.dir,
            'RABBITMQ_CONF_ENV_FILE': self._conf_env,
            'RABBITMQ_CONFIG_FILE': self._config,
            'RABBITMQ_ENABLED_PLUGINS_FILE': self._plugins,
            'RABBITMQ_NODENAME': self.node,
            'RABBITMQ_NODE_IP_ADDRESS': HOST,
            'RABBITMQ_NODE_PORT': str(self.port),
            'RABBITMQ_DIST_PORT': str(self.dist_port),
            'RABBITMQ_MNESIA_BASE': os.path.join(self.dir, 'mnesia'),
            'RABBITMQ_LOG_BASE': os.path.join(self.dir, 'log'),
            'RABBITMQ_PID_FILE': os.path.join(self.dir, 'rabbitmq.pid'),
            'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS':
                '-kernel inet_dist_use_interface {127,0,0,1}',
            'ERL_EPMD_ADDRESS': HOST,
            # Makes the script exec the Erlang VM (no wrapper shell), so
            # SIGTERM to our child is the VM's graceful shutdown.
            'RUNNING_UNDER_SYSTEMD': 'true',
        })
        return env

    def _ready(self) -> bool:
        if not workloads.port_open(HOST, self.port):
            return False
        import kombu

        conn = kombu.Connection('amqp' + self.url[len('rabbit'):],
                                connect_timeout=2)
        try:
            conn.connect()
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False
        finally:
            conn.release()

    def _diagnostics(self) -> str:
        return '%s\n%s' % (_tail(self.log_path), _tail(os.path.join(
            self.dir, 'log', '%s.log' % self.node)))


class PrivateMariaDB(_ServerProcess):
    """A MariaDB server of this test's own.

    ``create_database()`` makes an empty database and returns its
    SQLAlchemy URL; ``url(name)`` is the URL of a database by name.
    """

    name = 'mariadb'

    def setUp(self) -> None:
        _require('a private MariaDB', MARIADB_INSTALL_DB, MARIADBD)
        super().setUp()

    def _setUp(self) -> None:
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.datadir = os.path.join(self.dir, 'data')
        self.socket = os.path.join(self.dir, 'mariadb.sock')
        self.port = workloads.free_port(HOST)
        started = time.monotonic()
        install = subprocess.run(
            [_which(MARIADB_INSTALL_DB), '--no-defaults',
             '--datadir=' + self.datadir, *_as_root(),
             '--auth-root-authentication-method=normal',
             '--skip-test-db', '--skip-name-resolve',
             *self._server_options()],
            capture_output=True, text=True, timeout=120)
        if install.returncode != 0:
            raise RuntimeError('mariadb-install-db failed (%d):\n%s%s' % (
                install.returncode, install.stdout[-2000:],
                install.stderr[-2000:]))
        self.install_seconds = time.monotonic() - started
        self.addCleanup(self.kill)
        self.addCleanup(self.stop)
        self.start()

    @staticmethod
    def _server_options() -> list[str]:
        # Small and quick: a test database holds a few hundred rows.
        return ['--innodb-buffer-pool-size=32M',
                '--innodb-log-file-size=8M']

    def _argv(self) -> list[str]:
        # --no-defaults first: /etc/mysql names port 3306 and the
        # shared server's socket.
        return [_which(MARIADBD), '--no-defaults',
                '--datadir=' + self.datadir, '--port=%d' % self.port,
                '--bind-address=' + HOST, '--socket=' + self.socket,
                '--pid-file=' + os.path.join(self.dir, 'mariadb.pid'),
                '--log-error=' + os.path.join(self.dir, 'mariadb.err'),
                *_as_root(), '--skip-log-bin', '--skip-name-resolve',
                *self._server_options()]

    def _connect(self, database: str | None = None, timeout: int = 2):
        import pymysql

        return pymysql.connect(host=HOST, port=self.port, user='root',
                               database=database, connect_timeout=timeout)

    def _ready(self) -> bool:
        try:
            self._connect().close()
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def _diagnostics(self) -> str:
        return _tail(os.path.join(self.dir, 'mariadb.err'))

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return 'mysql+pymysql://root@%s:%d/%s' % (HOST, self.port, database)

    def create_database(self, name: str | None = None) -> str:
        """Make an empty database (``cctest_<hex>``); return its URL."""
        name = name or 'cctest_' + uuid.uuid4().hex[:16]
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute('CREATE DATABASE `%s` CHARACTER SET utf8mb4'
                               % name)
        finally:
            conn.close()
        return self.url(name)
