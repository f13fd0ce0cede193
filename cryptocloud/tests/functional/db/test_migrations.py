"""Keystore migrations on SQLite, MariaDB and PostgreSQL.

The migrations must build exactly the schema the models describe; a
model changed without a migration (or the reverse) fails here.
"""

import sqlalchemy as sa
import testscenarios
import testtools
from oslo_db.sqlalchemy import test_migrations

from cryptocloud.db import engines
from cryptocloud.db import migration
from cryptocloud.tests import db as test_db
from cryptocloud.vhsm.keystore import models

KEYSTORE_TABLES = {'domain_keys', 'keys', 'key_versions'}
VERSION_TABLE = migration.SCHEMAS['keystore'].version_table


class _Base(testscenarios.WithScenarios, testtools.TestCase):
    scenarios = test_db.backend_scenarios()

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(test_db.Database(self.backend))
        self.engine = engines.create_engine(self.database.url)
        self.addCleanup(self.engine.dispose)

    def inspector(self) -> sa.Inspector:
        # A pooled SQLite connection answers schema PRAGMAs from the
        # schema it cached before the migration ran: start afresh.
        self.engine.dispose()
        return sa.inspect(self.engine)

    def tables(self) -> set[str]:
        return set(self.inspector().get_table_names())


class TestKeystoreMigrations(_Base):
    """Upgrade from an empty database, down again, and stamp."""

    def test_upgrade_from_empty_to_head(self):
        self.assertEqual(set(), self.tables())
        self.assertIsNone(migration.current(self.database.url))
        migration.upgrade(self.database.url)
        self.assertEqual(migration.head(),
                         migration.current(self.database.url))
        self.assertEqual(KEYSTORE_TABLES | {VERSION_TABLE}, self.tables())
        # Running it again is a no-op.
        migration.upgrade(self.database.url)
        self.assertEqual(migration.head(),
                         migration.current(self.database.url))

    def test_downgrade_to_base_and_back(self):
        migration.upgrade(self.database.url)
        migration.downgrade(self.database.url, 'base')
        self.assertIsNone(migration.current(self.database.url))
        self.assertEqual({VERSION_TABLE}, self.tables())
        migration.upgrade(self.database.url)
        self.assertEqual(KEYSTORE_TABLES | {VERSION_TABLE}, self.tables())

    def test_stamp(self):
        migration.stamp(self.database.url, 'head')
        self.assertEqual(migration.head(),
                         migration.current(self.database.url))
        self.assertEqual({VERSION_TABLE}, self.tables())

    def test_unique_name_and_listing_index(self):
        migration.upgrade(self.database.url)
        inspector = self.inspector()
        uniques = [tuple(u['column_names'])
                   for u in inspector.get_unique_constraints('keys')]
        indexes = [tuple(i['column_names'])
                   for i in inspector.get_indexes('keys')]
        self.assertIn(('group_id', 'project_id', 'name'), uniques)
        self.assertIn(('group_id', 'project_id', 'id'), indexes)
        fks = inspector.get_foreign_keys('key_versions')
        self.assertEqual(1, len(fks))
        self.assertEqual('CASCADE', fks[0]['options'].get('ondelete'))


class TestMySQLTableOptions(_Base):
    """Keystore tables on MariaDB are InnoDB with a binary collation."""

    scenarios = test_db.backend_scenarios(['mysql'])

    def test_tables_are_innodb_utf8mb4_bin(self):
        migration.upgrade(self.database.url)
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                'SELECT table_name, engine, table_collation FROM '
                'information_schema.tables WHERE table_schema = DATABASE()'
            ).all()
        for name, engine, collation in rows:
            self.assertEqual('InnoDB', engine, name)
            if name in KEYSTORE_TABLES:
                self.assertEqual('utf8mb4_bin', collation, name)


class TestModelsMigrationsSync(test_migrations.ModelsMigrationsSync,
                               _Base):
    """The models and the migrated schema match on every backend."""

    def get_engine(self):
        return self.engine

    def get_metadata(self):
        return models.metadata

    def db_sync(self, engine):
        migration.upgrade(self.database.url)

    def include_object(self, object_, name, type_, reflected, compare_to):
        # Alembic's own bookkeeping table is not part of the models.
        return not (type_ == 'table' and name == VERSION_TABLE)
