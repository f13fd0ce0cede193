"""Tests of the migration helpers on SQLite."""

import os
import shutil

import fixtures
import sqlalchemy as sa
import testtools
from alembic import command
from alembic import script as alembic_script
from oslo_db import exception as db_exc

import db_migrations
from cryptocloud.db import engines
from cryptocloud.db import migration
from cryptocloud.tests import db as test_db


class TestMigrationHelpers(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.url = self.useFixture(test_db.Database('sqlite')).url

    def test_script_location_is_the_installed_package(self):
        location = migration.script_location('keystore')
        self.assertTrue(os.path.isabs(location))
        self.assertEqual(
            os.path.join(os.path.dirname(db_migrations.__file__),
                         'keystore'), location)
        for name in ('env.py', 'script.py.mako', 'versions'):
            self.assertTrue(os.path.exists(os.path.join(location, name)),
                            name)

    def test_one_linear_history(self):
        scripts = alembic_script.ScriptDirectory(
            migration.script_location('keystore'))
        self.assertEqual(1, len(scripts.get_heads()))
        self.assertEqual('0001', migration.head('keystore'))

    def test_upgrade_current_stamp(self):
        self.assertIsNone(migration.current(self.url))
        migration.upgrade(self.url, 'head', schema='keystore')
        self.assertEqual(migration.head(), migration.current(self.url))
        migration.stamp(self.url, 'base')
        self.assertIsNone(migration.current(self.url, 'keystore'))
        migration.stamp(self.url, 'head')
        self.assertEqual(migration.head(), migration.current(self.url))

    def test_own_version_table(self):
        migration.upgrade(self.url)
        engine = engines.create_engine(self.url)
        self.addCleanup(engine.dispose)
        tables = sa.inspect(engine).get_table_names()
        self.assertIn('alembic_version_keystore', tables)
        self.assertNotIn('alembic_version', tables)

    def test_works_from_any_directory(self):
        self.useFixture(_Chdir('/'))
        migration.upgrade(self.url)
        self.assertEqual(migration.head(), migration.current(self.url))

    def test_control_schema_has_its_own_history(self):
        scripts = alembic_script.ScriptDirectory(
            migration.script_location('control'))
        self.assertEqual(1, len(scripts.get_heads()))
        self.assertEqual('0004', migration.head('control'))
        migration.upgrade(self.url, schema='control')
        self.assertEqual('0004', migration.current(self.url, 'control'))
        self.assertIsNone(migration.current(self.url, 'keystore'))
        engine = engines.create_engine(self.url)
        self.addCleanup(engine.dispose)
        tables = sa.inspect(engine).get_table_names()
        self.assertIn('alembic_version_control', tables)
        self.assertNotIn('alembic_version_keystore', tables)

    def test_unknown_schema(self):
        exc = self.assertRaises(ValueError, migration.upgrade, self.url,
                                schema='nope')
        self.assertIn('keystore', str(exc))
        self.assertIn('control', str(exc))


_BATCH_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = '9999'
down_revision = '%s'


def upgrade():
    with op.batch_alter_table('keys', recreate='always') as batch:
        batch.add_column(sa.Column('extra', sa.Integer, nullable=True))
"""


class TestSQLiteBatchMigration(testtools.TestCase):
    """A later batch migration of ``keys`` must keep ``key_versions``."""

    def test_recreating_keys_keeps_versions(self):
        url = self.useFixture(test_db.Database('sqlite')).url
        migration.upgrade(url)
        engine = engines.create_engine(url)
        self.addCleanup(engine.dispose)
        with engines.writer(engine) as conn:
            conn.exec_driver_sql(
                "INSERT INTO keys VALUES ('k', 'g', 'p', NULL, NULL, 'SM4', "
                "'ENCRYPT', 'ENABLED', 0, 1, 1, '2030-01-01', "
                "'2030-01-01', NULL)")
            conn.exec_driver_sql(
                "INSERT INTO key_versions VALUES ('k', 1, x'00', NULL, "
                "'2030-01-01')")
        scripts = self.useFixture(fixtures.TempDir()).path
        shutil.copytree(migration.script_location('keystore'), scripts,
                        dirs_exist_ok=True)
        with open(os.path.join(scripts, 'versions', '9999_batch.py'),
                  'w') as f:
            f.write(_BATCH_REVISION % migration.head())
        cfg = migration.alembic_config_for('keystore', url)
        cfg.set_main_option('script_location', scripts)
        command.upgrade(cfg, 'head')
        engine.dispose()
        with engines.reader(engine) as conn:
            self.assertEqual(1, conn.exec_driver_sql(
                'SELECT count(*) FROM key_versions').scalar())


class TestEngines(testtools.TestCase):

    def setUp(self):
        super().setUp()
        url = self.useFixture(test_db.Database('sqlite')).url
        migration.upgrade(url)
        self.engine = engines.create_engine(url)
        self.addCleanup(self.engine.dispose)

    def test_parameters_never_in_errors(self):
        blob = b'SEALED-BLOB-MARKER'
        with engines.writer(self.engine) as conn:
            conn.execute(sa.text(
                "INSERT INTO domain_keys VALUES ('g', :b, '2030-01-01')"),
                {'b': blob})
        try:
            with engines.writer(self.engine) as conn:
                conn.execute(sa.text(
                    "INSERT INTO domain_keys VALUES ('g', :b, "
                    "'2030-01-01')"), {'b': blob})
        except db_exc.DBDuplicateEntry as exc:
            text = '%s %r %s' % (exc, exc, exc.inner_exception)
        else:
            self.fail('duplicate insert succeeded')
        self.assertNotIn('SEALED-BLOB-MARKER', text)
        self.assertNotIn(blob.hex(), text)

    def test_safe_url_masks_password(self):
        self.assertEqual(
            'mysql+pymysql://u:***@db/ks',
            engines.safe_url('mysql+pymysql://u:secret@db/ks'))

    def test_retries_then_connection_error(self):
        self.assertRaises(db_exc.DBConnectionError, engines.create_engine,
                          'sqlite:////nonexistent-dir/x.sqlite',
                          connect_retries=2, retry_interval=0.01)


class _Chdir(fixtures.Fixture):
    """Run in another working directory, then return."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def _setUp(self) -> None:
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.path)
