"""Database fixtures for tests: a fresh, empty database per test.

``Database('sqlite')`` is a temporary file.  ``Database('mysql')`` and
``Database('postgresql')`` create a uniquely named database (``cctest_``
and random hex) on a real server through an admin URL and drop it again
on cleanup:

* ``CRYPTOCLOUD_TEST_MYSQL_URL`` (default
  ``mysql+pymysql://root@127.0.0.1:3306/``)
* ``CRYPTOCLOUD_TEST_PG_URL`` (default
  ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``)

A server that cannot be reached skips the test, unless ``CI`` is set or
``CRYPTOCLOUD_TEST_REQUIRE_DB=1``: there a missing server is a failure,
so CI can never pass by skipping every database test.
"""

import os
import secrets
import unittest

import fixtures
import sqlalchemy as sa

BACKENDS = ('sqlite', 'mysql', 'postgresql')

DEFAULT_ADMIN_URLS = {
    'mysql': 'mysql+pymysql://root@127.0.0.1:3306/',
    'postgresql': 'postgresql+psycopg://postgres@127.0.0.1:5432/postgres',
}
_ADMIN_URL_ENV = {
    'mysql': 'CRYPTOCLOUD_TEST_MYSQL_URL',
    'postgresql': 'CRYPTOCLOUD_TEST_PG_URL',
}

# Seconds to wait for a server before calling it unreachable.
CONNECT_TIMEOUT = 5


def admin_url(backend: str) -> sa.engine.URL:
    """The URL through which test databases are created on ``backend``."""
    return sa.engine.make_url(os.environ.get(_ADMIN_URL_ENV[backend],
                                             DEFAULT_ADMIN_URLS[backend]))


def database_required() -> bool:
    """True when a missing database server must fail tests, not skip."""
    return bool(os.environ.get('CI')) or (
        os.environ.get('CRYPTOCLOUD_TEST_REQUIRE_DB') == '1')


def backend_scenarios(backends=BACKENDS) -> list[tuple[str, dict]]:
    """testscenarios scenarios that set ``self.backend``."""
    return [(name, {'backend': name}) for name in backends]


class DatabaseUnavailable(Exception):
    """The database server for a backend could not be reached."""


class Database(fixtures.Fixture):
    """An empty database on ``backend``; its SQLAlchemy URL is ``.url``."""

    def __init__(self, backend: str) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError('unknown test database backend %r' % backend)
        self.backend = backend
        self.url: str | None = None
        self.name: str | None = None
        self._admin: sa.engine.Engine | None = None

    def setUp(self) -> None:
        """Skip (or fail, in CI) before anything is created."""
        # Checked here rather than in _setUp: fixtures wraps whatever
        # _setUp raises in MultipleExceptions, which turns a skip into an
        # error.
        if self.backend != 'sqlite':
            self._admin = self._admin_engine()
        super().setUp()

    def _setUp(self) -> None:
        if self.backend == 'sqlite':
            tmp = self.useFixture(fixtures.TempDir())
            self.name = os.path.join(tmp.path, 'test.sqlite')
            self.url = 'sqlite:///' + self.name
            return
        admin = self._admin
        self.addCleanup(admin.dispose)
        self.name = 'cctest_' + secrets.token_hex(8)
        if self.backend == 'mysql':
            create = 'CREATE DATABASE %s CHARACTER SET utf8mb4' % self.name
        else:
            create = "CREATE DATABASE %s ENCODING 'UTF8'" % self.name
        with admin.connect() as conn:
            conn.exec_driver_sql(create)
        self.addCleanup(self._drop, admin)
        url = admin_url(self.backend).set(database=self.name)
        self.url = url.render_as_string(hide_password=False)

    def _admin_engine(self) -> sa.engine.Engine:
        url = admin_url(self.backend)
        # AUTOCOMMIT: PostgreSQL refuses CREATE/DROP DATABASE inside a
        # transaction.
        engine = sa.create_engine(
            url, isolation_level='AUTOCOMMIT', poolclass=sa.pool.NullPool,
            connect_args={'connect_timeout': CONNECT_TIMEOUT})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql('SELECT 1')
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            reason = '%s server at %s is unreachable: %s' % (
                self.backend, url.render_as_string(hide_password=True),
                (str(exc.orig).strip() or type(exc.orig).__name__)
                .splitlines()[0])
            if database_required():
                raise DatabaseUnavailable(reason) from exc
            raise unittest.SkipTest(reason) from exc
        return engine

    def _drop(self, admin: sa.engine.Engine) -> None:
        with admin.connect() as conn:
            if self.backend == 'mysql':
                conn.exec_driver_sql('DROP DATABASE IF EXISTS %s'
                                     % self.name)
                return
            # A connection a test forgot to close would make DROP fail.
            conn.exec_driver_sql(
                'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                'WHERE datname = %(name)s AND pid <> pg_backend_pid()',
                {'name': self.name})
            conn.exec_driver_sql('DROP DATABASE IF EXISTS %s WITH (FORCE)'
                                 % self.name)
