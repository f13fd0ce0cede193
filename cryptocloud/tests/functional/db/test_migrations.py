"""Migrations of every schema on SQLite, MariaDB and PostgreSQL.

The migrations must build exactly the schema the models describe; a
model changed without a migration (or the reverse) fails here.  Each
test runs for every schema (keystore, control) on every backend.
"""

import sqlalchemy as sa
import testscenarios
import testtools
from oslo_db.sqlalchemy import test_migrations

from cryptocloud.db import engines
from cryptocloud.db import migration
from cryptocloud.db import models as control_models
from cryptocloud.tests import db as test_db
from cryptocloud.vhsm.keystore import models as keystore_models

KEYSTORE_TABLES = {'domain_keys', 'keys', 'key_versions'}
CONTROL_TABLES = {'nodes', 'vhsm_groups', 'vhsms', 'services',
                  'service_instances', 'associations',
                  'service_credentials', 'tasks', 'images',
                  'scaling_policies'}

# What each schema's migrations must build.
SCHEMA_TABLES = {'keystore': KEYSTORE_TABLES, 'control': CONTROL_TABLES}
SCHEMA_METADATA = {'keystore': keystore_models.metadata,
                   'control': control_models.metadata}


def schema_scenarios(schemas=tuple(SCHEMA_TABLES)) -> list[tuple[str, dict]]:
    """testscenarios scenarios that set ``self.schema``."""
    return [(name, {'schema': name}) for name in schemas]


class _Base(testscenarios.WithScenarios, testtools.TestCase):
    scenarios = testscenarios.multiply_scenarios(
        test_db.backend_scenarios(), schema_scenarios())

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(test_db.Database(self.backend))
        self.engine = engines.create_engine(self.database.url)
        self.addCleanup(self.engine.dispose)

    @property
    def version_table(self) -> str:
        return migration.SCHEMAS[self.schema].version_table

    @property
    def schema_tables(self) -> set[str]:
        return SCHEMA_TABLES[self.schema]

    def upgrade(self, revision: str = 'head') -> None:
        migration.upgrade(self.database.url, revision, schema=self.schema)

    def current(self) -> str | None:
        return migration.current(self.database.url, self.schema)

    def head(self) -> str:
        return migration.head(self.schema)

    def inspector(self) -> sa.Inspector:
        # A pooled SQLite connection answers schema PRAGMAs from the
        # schema it cached before the migration ran: start afresh.
        self.engine.dispose()
        return sa.inspect(self.engine)

    def tables(self) -> set[str]:
        return set(self.inspector().get_table_names())


class TestMigrations(_Base):
    """Upgrade from an empty database, down again, and stamp."""

    def test_upgrade_from_empty_to_head(self):
        self.assertEqual(set(), self.tables())
        self.assertIsNone(self.current())
        self.upgrade()
        self.assertEqual(self.head(), self.current())
        self.assertEqual(self.schema_tables | {self.version_table},
                         self.tables())
        # Running it again is a no-op.
        self.upgrade()
        self.assertEqual(self.head(), self.current())

    def test_downgrade_to_base_and_back(self):
        self.upgrade()
        migration.downgrade(self.database.url, 'base', schema=self.schema)
        self.assertIsNone(self.current())
        self.assertEqual({self.version_table}, self.tables())
        self.upgrade()
        self.assertEqual(self.schema_tables | {self.version_table},
                         self.tables())

    def test_stamp(self):
        migration.stamp(self.database.url, 'head', schema=self.schema)
        self.assertEqual(self.head(), self.current())
        self.assertEqual({self.version_table}, self.tables())


class TestSchemasShareOneDatabase(_Base):
    """Both schemas in one database keep separate histories."""

    scenarios = test_db.backend_scenarios()

    def test_keystore_and_control_together(self):
        for schema in SCHEMA_TABLES:
            migration.upgrade(self.database.url, schema=schema)
        expected = set()
        for schema, tables in SCHEMA_TABLES.items():
            self.assertEqual(migration.head(schema),
                             migration.current(self.database.url, schema))
            expected |= tables | {migration.SCHEMAS[schema].version_table}
        self.assertEqual(expected, self.tables())
        migration.downgrade(self.database.url, 'base', schema='control')
        self.assertIsNone(migration.current(self.database.url, 'control'))
        self.assertEqual(migration.head('keystore'),
                         migration.current(self.database.url, 'keystore'))
        self.assertTrue(KEYSTORE_TABLES <= self.tables())


class TestKeystoreConstraints(_Base):
    """The keystore's unique name, listing index and cascade exist."""

    scenarios = testscenarios.multiply_scenarios(
        test_db.backend_scenarios(), schema_scenarios(['keystore']))

    def test_unique_name_and_listing_index(self):
        self.upgrade()
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


class TestControlConstraints(_Base):
    """The control schema's unique keys, indexes and cascades exist."""

    scenarios = testscenarios.multiply_scenarios(
        test_db.backend_scenarios(), schema_scenarios(['control']))

    def test_unique_keys_and_indexes(self):
        self.upgrade()
        inspector = self.inspector()

        def uniques(table):
            return {tuple(u['column_names'])
                    for u in inspector.get_unique_constraints(table)}

        def indexes(table):
            return {tuple(i['column_names'])
                    for i in inspector.get_indexes(table)}

        self.assertIn(('hostname',), uniques('nodes'))
        self.assertIn(('vhsm_id', 'instance_id'), uniques('associations'))
        self.assertIn(('service_id',), uniques('scaling_policies'))
        self.assertIn(('project_id',), indexes('scaling_policies'))
        self.assertIn(('state', 'lease_expires_at'), indexes('tasks'))
        self.assertIn(('project_id',), indexes('tasks'))
        for table in ('vhsm_groups', 'services'):
            self.assertIn(('project_id',), indexes(table))
        for table in ('nodes', 'vhsm_groups', 'vhsms', 'services',
                      'service_instances'):
            self.assertIn(('state',), indexes(table), table)
        for table, column in (('vhsms', 'group_id'), ('vhsms', 'node_id'),
                              ('services', 'group_id'),
                              ('service_instances', 'service_id'),
                              ('service_instances', 'node_id'),
                              ('associations', 'instance_id'),
                              ('service_credentials', 'service_id')):
            self.assertIn((column,), indexes(table), table)

    def test_foreign_keys(self):
        self.upgrade()
        inspector = self.inspector()
        found = {}
        for table in self.schema_tables:
            for fk in inspector.get_foreign_keys(table):
                found[(table, fk['constrained_columns'][0])] = (
                    fk['referred_table'],
                    (fk['options'].get('ondelete') or '').upper() or None)
        self.assertEqual({
            ('vhsms', 'group_id'): ('vhsm_groups', None),
            ('vhsms', 'node_id'): ('nodes', None),
            ('services', 'group_id'): ('vhsm_groups', None),
            ('service_instances', 'service_id'): ('services', None),
            ('service_instances', 'node_id'): ('nodes', None),
            ('associations', 'vhsm_id'): ('vhsms', 'CASCADE'),
            ('associations', 'instance_id'): ('service_instances',
                                              'CASCADE'),
            ('service_credentials', 'service_id'): ('services', 'CASCADE'),
            ('scaling_policies', 'service_id'): ('services', 'CASCADE'),
        }, found)


class TestMySQLTableOptions(_Base):
    """Tables on MariaDB are InnoDB with a binary collation."""

    scenarios = testscenarios.multiply_scenarios(
        test_db.backend_scenarios(['mysql']), schema_scenarios())

    def test_tables_are_innodb_utf8mb4_bin(self):
        self.upgrade()
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                'SELECT table_name, engine, table_collation FROM '
                'information_schema.tables WHERE table_schema = DATABASE()'
            ).all()
        for name, engine, collation in rows:
            self.assertEqual('InnoDB', engine, name)
            if name in self.schema_tables:
                self.assertEqual('utf8mb4_bin', collation, name)


class TestModelsMigrationsSync(test_migrations.ModelsMigrationsSync,
                               _Base):
    """The models and the migrated schema match on every backend."""

    def get_engine(self):
        return self.engine

    def get_metadata(self):
        return SCHEMA_METADATA[self.schema]

    def db_sync(self, engine):
        self.upgrade()

    def include_object(self, object_, name, type_, reflected, compare_to):
        # Alembic's own bookkeeping table is not part of the models.
        return not (type_ == 'table' and name == self.version_table)
