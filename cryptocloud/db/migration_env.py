"""What every alembic ``env.py`` of cryptocloud does, in one place.

Migrations run through ``cryptocloud.db.migration`` (``cryptocloud-dbsync``),
which passes the database URL or an open connection and the schema's
version table in ``config.attributes``.  Each schema's ``env.py`` only names
its models' metadata and calls :func:`run`.
"""

from alembic import context

from cryptocloud.db import engines


def run(target_metadata) -> None:
    """Run the migrations of the schema whose tables are in the metadata."""
    if context.is_offline_mode():
        raise RuntimeError('offline (--sql) migrations are not supported; '
                           'run "cryptocloud-dbsync upgrade" against the '
                           'database')
    config = context.config

    def include_name(name, type_, parent_names):
        # Another schema may share the database (all-in-one on one SQLite
        # file); only this schema's tables are compared by autogenerate.
        if type_ == 'table':
            return name in target_metadata.tables
        return True

    def configure_and_run(connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=config.attributes['version_table'],
            include_name=include_name,
            # SQLite cannot ALTER most things; batch mode copies the table.
            render_as_batch=connection.dialect.name == 'sqlite',
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get('connection')
    if connection is not None:
        configure_and_run(connection)
        return
    url = config.attributes.get('url')
    if not url:
        raise RuntimeError('no database URL given to the migration')
    # SQLite batch operations copy a table, drop the original and rename
    # the copy; with foreign keys enforced, dropping a parent table would
    # cascade and delete every row of its children (key_versions under
    # keys, associations under vhsms).
    engine = engines.create_engine(url, max_pool_size=1,
                                   sqlite_foreign_keys=False)
    try:
        with engine.connect() as conn:
            configure_and_run(conn)
    finally:
        engine.dispose()
