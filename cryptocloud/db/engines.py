"""SQLAlchemy engines for cryptocloud's databases.

One factory for every schema (the vHSM keystore now, the control plane
later) so that all of them get the same behaviour:

* ``hide_parameters``: bound values never appear in SQL error messages or
  logs, because some of them are sealed or wrapped key blobs.  This is
  why the engine is built here with plain SQLAlchemy instead of
  ``oslo_db.sqlalchemy.engines.create_engine``, which cannot pass it.
* oslo.db's exception filters, so callers catch ``DBDuplicateEntry``,
  ``DBDeadlock`` and ``DBConnectionError`` whatever the backend.
* ``pool_pre_ping`` so a connection the server closed is replaced
  instead of failing a request.
* SQLite in WAL mode with a busy timeout, so that several vHSM processes
  can share one database file, and ``BEGIN IMMEDIATE`` for writers (see
  :func:`writer`).
* MySQL/MariaDB in strict mode with a 4-byte UTF-8 connection.
"""

import contextlib
import time
from collections.abc import Iterator

import sqlalchemy as sa
from oslo_db import exception as db_exc
from oslo_db.sqlalchemy import exc_filters
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

# Milliseconds a SQLite connection waits for another process's write lock
# before it gives up with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30000

_WRITE_OPTION = 'cryptocloud_write'


def create_engine(url: str | sa.engine.URL, *, max_pool_size: int = 10,
                  pool_timeout: int = 10, connect_retries: int = 0,
                  retry_interval: float = 1.0,
                  sqlite_foreign_keys: bool = True) -> sa.engine.Engine:
    """Build an engine and check that the database answers.

    The first connection is tried ``connect_retries + 1`` times,
    ``retry_interval`` seconds apart; the last error is raised as
    ``oslo_db.exception.DBConnectionError``.  Migrations pass
    ``sqlite_foreign_keys=False`` (see ``db_migrations``).
    """
    url = sa.engine.make_url(url)
    backend = url.get_backend_name()
    kwargs: dict = {'pool_pre_ping': True, 'hide_parameters': True}
    if backend == 'sqlite':
        kwargs['connect_args'] = {'check_same_thread': False,
                                  'timeout': SQLITE_BUSY_TIMEOUT_MS / 1000}
        if url.database in (None, '', ':memory:'):
            # One shared connection, or every session would see its own
            # empty in-memory database.
            kwargs['poolclass'] = sa.pool.StaticPool
        else:
            kwargs['pool_size'] = max_pool_size
            kwargs['pool_timeout'] = pool_timeout
    else:
        kwargs['pool_size'] = max_pool_size
        kwargs['max_overflow'] = max_pool_size
        kwargs['pool_timeout'] = pool_timeout
        # Servers drop idle connections (MariaDB wait_timeout); recycle
        # well before that instead of pinging a dead one first.
        kwargs['pool_recycle'] = 3600
        if backend == 'mysql' and 'charset' not in url.query:
            url = url.update_query_dict({'charset': 'utf8mb4'})
    engine = sa.create_engine(url, **kwargs)
    if backend == 'sqlite':
        _setup_sqlite(engine, sqlite_foreign_keys)
    elif backend == 'mysql':
        _setup_mysql(engine)
    exc_filters.register_engine(engine)
    _wait_for_database(engine, connect_retries, retry_interval)
    return engine


@contextlib.contextmanager
def reader(engine: sa.engine.Engine) -> Iterator[sa.engine.Connection]:
    """A connection for a short read-only transaction."""
    with engine.connect() as conn:
        yield conn


@contextlib.contextmanager
def writer(engine: sa.engine.Engine) -> Iterator[sa.engine.Connection]:
    """A connection inside a write transaction, committed on success.

    On SQLite the transaction takes the write lock when it begins: a
    deferred transaction that reads first and writes later gets
    SQLITE_BUSY at once (without waiting for the busy timeout) when
    another process wrote in between, so it must not read first.
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


def _wait_for_database(engine: sa.engine.Engine, retries: int,
                       interval: float) -> None:
    attempt = 0
    while True:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql('SELECT 1')
            return
        except (db_exc.DBError, sa.exc.DBAPIError) as exc:
            if attempt >= retries:
                engine.dispose()
                if isinstance(exc, db_exc.DBConnectionError):
                    raise
                raise db_exc.DBConnectionError(exc) from exc
            attempt += 1
            LOG.warning('Cannot connect to database %s (%s); retry %d of '
                        '%d in %.0f s.', safe_url(engine.url),
                        type(exc).__name__, attempt, retries, interval)
            time.sleep(interval)


def safe_url(url: str | sa.engine.URL) -> str:
    """The URL with its password masked, fit for messages and logs."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _setup_sqlite(engine: sa.engine.Engine, foreign_keys: bool) -> None:
    @sa.event.listens_for(engine, 'connect')
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy (below) decide when transactions begin; pysqlite
        # would otherwise open them on its own and never IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute('PRAGMA busy_timeout = %d'
                           % SQLITE_BUSY_TIMEOUT_MS)
            if engine.url.database not in (None, '', ':memory:'):
                # WAL lets readers run while one process writes; the mode
                # is stored in the file, so this is a no-op after the
                # first connection.
                cursor.execute('PRAGMA journal_mode = WAL')
            cursor.execute('PRAGMA foreign_keys = %s'
                           % ('ON' if foreign_keys else 'OFF'))
        finally:
            cursor.close()

    @sa.event.listens_for(engine, 'begin')
    def _on_begin(conn):
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql('BEGIN IMMEDIATE')
        else:
            conn.exec_driver_sql('BEGIN')


def _setup_mysql(engine: sa.engine.Engine) -> None:
    @sa.event.listens_for(engine, 'connect')
    def _on_connect(dbapi_conn, _record):
        # Strict mode: an over-long value is an error, never silently cut.
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SET SESSION sql_mode = 'TRADITIONAL'")
        finally:
            cursor.close()
