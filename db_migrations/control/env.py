"""Alembic environment of the control-plane database.

Run through ``cryptocloud.db.migration`` (``cryptocloud-dbsync``), which
passes the database URL or an open connection in ``config.attributes``.
"""

from alembic import context

from cryptocloud.db import engines
from cryptocloud.db import models

config = context.config
target_metadata = models.metadata


def _include_name(name, type_, parent_names):
    # The keystore may share the database (all-in-one on one SQLite
    # file); only this schema's tables are compared by autogenerate.
    if type_ == 'table':
        return name in target_metadata.tables
    return True


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.attributes['version_table'],
        include_name=_include_name,
        # SQLite cannot ALTER most things; batch mode copies the table.
        render_as_batch=connection.dialect.name == 'sqlite',
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the given connection, or one made from the URL."""
    connection = config.attributes.get('connection')
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.attributes.get('url')
    if not url:
        raise RuntimeError('no database URL given to the migration')
    # SQLite batch operations copy a table, drop the original and rename
    # the copy; with foreign keys enforced, dropping ``vhsms`` would
    # cascade and delete every row of ``associations``.
    engine = engines.create_engine(url, max_pool_size=1,
                                   sqlite_foreign_keys=False)
    try:
        with engine.connect() as conn:
            _configure_and_run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError('offline (--sql) migrations are not supported; '
                       'run "cryptocloud-dbsync upgrade" against the '
                       'database')
run_migrations_online()
