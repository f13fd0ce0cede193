"""Schema migrations (alembic) of cryptocloud's databases.

Each database cryptocloud owns is a *schema* here: a directory of alembic
scripts inside the installed ``db_migrations`` package and the name of
its version table: ``keystore`` (a vHSM group's keys) and ``control``
(the control plane).  Adding a database is one more entry in
``SCHEMAS`` and one more directory.

The alembic configuration is built in code, so ``cryptocloud-dbsync``
works from any directory and needs no ``alembic.ini``.
"""

import dataclasses
import os

import sqlalchemy as sa
from alembic import command
from alembic import config as alembic_config
from alembic import migration as alembic_migration
from alembic import script as alembic_script

import db_migrations
from cryptocloud.db import engines


@dataclasses.dataclass(frozen=True)
class Schema:
    """Where one database's migrations live and how they are tracked."""

    name: str
    # Directory under the db_migrations package.
    directory: str
    # A table per schema, so two schemas may even share one database
    # (all-in-one on a single SQLite file) without mixing their history.
    version_table: str


SCHEMAS: dict[str, Schema] = {
    'keystore': Schema('keystore', 'keystore', 'alembic_version_keystore'),
    'control': Schema('control', 'control', 'alembic_version_control'),
}


def get_schema(schema: str) -> Schema:
    """The schema called ``schema``, or ValueError naming the known ones."""
    try:
        return SCHEMAS[schema]
    except KeyError:
        raise ValueError('unknown database schema %r; known: %s'
                         % (schema, ', '.join(sorted(SCHEMAS)))) from None


def script_location(schema: str) -> str:
    """Absolute path of the schema's alembic script directory."""
    base = os.path.dirname(os.path.abspath(db_migrations.__file__))
    return os.path.join(base, get_schema(schema).directory)


def alembic_config_for(schema: str, url: str | None = None,
                       connection: sa.engine.Connection | None = None
                       ) -> alembic_config.Config:
    """An alembic Config for ``schema``; env.py reads the attributes."""
    info = get_schema(schema)
    cfg = alembic_config.Config()
    cfg.set_main_option('script_location', script_location(schema))
    # Passed as attributes, not main options: a URL is not run through
    # configparser interpolation (a '%' in a password would break it).
    cfg.attributes['url'] = url
    cfg.attributes['connection'] = connection
    cfg.attributes['version_table'] = info.version_table
    cfg.attributes['schema'] = info.name
    return cfg


def upgrade(url: str, revision: str = 'head',
            schema: str = 'keystore') -> None:
    """Upgrade the database at ``url`` to ``revision``."""
    command.upgrade(alembic_config_for(schema, url), revision)


def downgrade(url: str, revision: str, schema: str = 'keystore') -> None:
    """Downgrade the database at ``url`` to ``revision`` (tests only)."""
    command.downgrade(alembic_config_for(schema, url), revision)


def stamp(url: str, revision: str, schema: str = 'keystore') -> None:
    """Record ``revision`` as current without running any migration."""
    command.stamp(alembic_config_for(schema, url), revision)


def head(schema: str = 'keystore') -> str:
    """The newest revision of ``schema``'s migration scripts."""
    scripts = alembic_script.ScriptDirectory(script_location(schema))
    return scripts.get_current_head()


def current_revision(connection: sa.engine.Connection,
                     schema: str = 'keystore') -> str | None:
    """The revision recorded in the database behind ``connection``."""
    ctx = alembic_migration.MigrationContext.configure(
        connection,
        opts={'version_table': get_schema(schema).version_table})
    return ctx.get_current_revision()


def current(url: str, schema: str = 'keystore') -> str | None:
    """The revision the database at ``url`` is at (None when empty)."""
    engine = engines.create_engine(url, max_pool_size=1)
    try:
        with engine.connect() as conn:
            return current_revision(conn, schema)
    finally:
        engine.dispose()
