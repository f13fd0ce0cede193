"""Tests of the keystore API on SQLite.

``KeystoreTests`` holds the tests; the functional tests run the same
class on MariaDB and PostgreSQL as well.
"""

import concurrent.futures
import datetime
import os
import threading
import uuid

import testtools
from oslo_db import exception as db_exc

from cryptocloud.common import exception
from cryptocloud.db import migration
from cryptocloud.tests import db as test_db
from cryptocloud.vhsm.keystore import api

GROUP = 'group-1'
PROJECT = 'project-a'
# Threads that race in the concurrency tests.
RACERS = 6


def _now() -> datetime.datetime:
    return api.utcnow()


def make_key(key_id: str | None = None, *, group_id: str = GROUP,
             project_id: str = PROJECT, name: str | None = None,
             state: str = 'ENABLED', wrapped: bytes | None = None,
             public_key: str | None = None
             ) -> tuple[api.KeyRecord, api.KeyVersionRecord]:
    """A key record and its first version, ready for create_key."""
    key_id = key_id or str(uuid.uuid4())
    now = _now()
    record = api.KeyRecord(
        key_id=key_id, group_id=group_id, project_id=project_id, name=name,
        description='test key', algorithm='SM4', purpose='ENCRYPT',
        state=state, exportable=False, latest_version=1,
        min_decryption_version=1, created_at=now, updated_at=now,
        deletion_date=None)
    version = api.KeyVersionRecord(
        key_id=key_id, version=1,
        wrapped=wrapped if wrapped is not None else os.urandom(64),
        public_key=public_key, created_at=now)
    return record, version


def _race(calls):
    """Run the callables at the same moment; return (results, errors)."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    results, errors = [], []
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        for future in [pool.submit(run, call) for call in calls]:
            try:
                results.append(future.result())
            except Exception as exc:
                errors.append(exc)
    return results, errors


class KeystoreTests:
    """Keystore behaviour every backend must show; needs ``backend``."""

    backend = 'sqlite'

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(test_db.Database(self.backend))
        migration.upgrade(self.database.url)
        self.ks = self.new_keystore()

    def new_keystore(self) -> api.Keystore:
        """Another member's view of the same database (its own engine)."""
        ks = api.Keystore(self.database.url, max_pool_size=RACERS)
        self.addCleanup(ks.close)
        return ks

    def create(self, **kwargs) -> api.KeyRecord:
        return self.ks.create_key(*make_key(**kwargs))

    # -- schema -----------------------------------------------------------

    def test_check_schema_at_head(self):
        self.ks.check_schema()

    def test_check_schema_behind_head(self):
        migration.stamp(self.database.url, 'base')
        exc = self.assertRaises(exception.ConfigurationError,
                                self.ks.check_schema)
        self.assertIn('is at base', str(exc))
        self.assertIn('expected head %s' % migration.head(), str(exc))
        self.assertIn('cryptocloud-dbsync upgrade', str(exc))

    # -- domain key -------------------------------------------------------

    def test_domain_key_absent(self):
        self.assertIsNone(self.ks.get_domain_key(GROUP))

    def test_put_domain_key_first_wins(self):
        self.assertEqual(b'first', self.ks.put_domain_key(GROUP, b'first'))
        other = self.new_keystore()
        self.assertEqual(b'first', other.put_domain_key(GROUP, b'second'))
        self.assertEqual(b'first', self.ks.get_domain_key(GROUP))
        self.assertEqual(b'x', self.ks.put_domain_key('group-2', b'x'))

    def test_put_domain_key_race(self):
        members = [self.new_keystore() for _ in range(RACERS)]
        blobs = [os.urandom(48) for _ in range(RACERS)]
        results, errors = _race(
            [lambda m=m, b=b: m.put_domain_key(GROUP, b)
             for m, b in zip(members, blobs, strict=True)])
        self.assertEqual([], errors)
        stored = self.ks.get_domain_key(GROUP)
        self.assertIn(stored, blobs)
        self.assertEqual([stored] * RACERS, results)

    # -- create and read --------------------------------------------------

    def test_create_and_get_round_trip(self):
        record, version = make_key(name='k1', wrapped=os.urandom(2600),
                                   public_key='-----BEGIN PUBLIC KEY-----')
        created = self.ks.create_key(record, version)
        self.assertEqual(record, created)
        self.assertEqual(record, self.ks.get_key(GROUP, record.key_id))
        self.assertEqual(version, self.ks.get_version(record.key_id, 1))

    def test_create_converts_aware_timestamps(self):
        record, version = make_key()
        aware = datetime.datetime(2030, 1, 2, 12, 0, 0, 5,
                                  tzinfo=datetime.timezone(
                                      datetime.timedelta(hours=8)))
        record = api.KeyRecord(**{**record.__dict__, 'created_at': aware,
                                  'updated_at': aware})
        created = self.ks.create_key(record, version)
        naive = datetime.datetime(2030, 1, 2, 4, 0, 0, 5)
        self.assertEqual(naive, created.created_at)
        self.assertEqual(naive, self.ks.get_key(GROUP,
                                                record.key_id).created_at)

    def test_create_duplicate_id(self):
        record, version = make_key(name='original')
        self.ks.create_key(record, version)
        again, again_version = make_key(record.key_id, name='other')
        self.assertRaises(api.DuplicateKeyId, self.ks.create_key, again,
                          again_version)
        self.assertEqual(record, self.ks.get_key(GROUP, record.key_id))
        self.assertEqual(version.wrapped,
                         self.ks.get_version(record.key_id, 1).wrapped)

    def test_create_duplicate_id_same_name(self):
        record, version = make_key(name='same')
        self.ks.create_key(record, version)
        self.assertRaises(api.DuplicateKeyId, self.ks.create_key, record,
                          version)

    def test_name_unique_per_project(self):
        self.create(name='payments')
        exc = self.assertRaises(exception.KeyNameExists, self.create,
                                name='payments')
        self.assertIn('payments', str(exc))
        # Same name in another project or another group is fine.
        self.create(name='payments', project_id='project-b')
        self.create(name='payments', group_id='group-2')
        # Names differ by case on every backend.
        self.create(name='Payments')
        self.assertEqual(2, len(self.ks.list_keys(GROUP, PROJECT)))

    def test_unnamed_keys_may_repeat(self):
        self.create()
        self.create()
        self.assertEqual(2, len(self.ks.list_keys(GROUP, PROJECT)))

    def test_create_rejects_mismatched_version(self):
        record, _ = make_key()
        _, version = make_key()
        self.assertRaises(ValueError, self.ks.create_key, record, version)

    def test_get_key_missing_or_other_group(self):
        record = self.create()
        exc = self.assertRaises(exception.KeyNotFound, self.ks.get_key,
                                GROUP, str(uuid.uuid4()))
        self.assertEqual(404, exc.code)
        self.assertRaises(exception.KeyNotFound, self.ks.get_key,
                          'group-2', record.key_id)

    def test_get_version_missing(self):
        record = self.create()
        exc = self.assertRaises(exception.KeyVersionNotFound,
                                self.ks.get_version, record.key_id, 2)
        self.assertEqual({'key_id': record.key_id, 'version': 2},
                         exc.kwargs)

    # -- listing ----------------------------------------------------------

    def test_list_pages_in_id_order(self):
        ids = sorted(self.create().key_id for _ in range(7))
        self.create(project_id='project-b')
        self.create(group_id='group-2')
        seen, marker = [], None
        while True:
            page = self.ks.list_keys(GROUP, PROJECT, limit=3, marker=marker)
            self.assertLessEqual(len(page), 3)
            if not page:
                break
            seen.extend(r.key_id for r in page)
            marker = page[-1].key_id
        self.assertEqual(ids, seen)
        self.assertEqual(ids, [r.key_id for r in
                               self.ks.list_keys(GROUP, PROJECT)])

    def test_list_state_filter(self):
        enabled = self.create()
        disabled = self.create(state='DISABLED')
        self.assertEqual([disabled.key_id], [
            r.key_id for r in self.ks.list_keys(GROUP, PROJECT,
                                                state='DISABLED')])
        self.assertEqual([enabled.key_id], [
            r.key_id for r in self.ks.list_keys(GROUP, PROJECT,
                                                state='ENABLED')])

    def test_list_bad_marker(self):
        other = self.create(project_id='project-b')
        self.create()
        for marker in (other.key_id, str(uuid.uuid4())):
            self.assertRaises(exception.InvalidInput, self.ks.list_keys,
                              GROUP, PROJECT, marker=marker)
        self.assertRaises(exception.InvalidInput, self.ks.list_keys,
                          GROUP, PROJECT, limit=0)

    # -- rotation ---------------------------------------------------------

    def test_add_version(self):
        record = self.create()
        version = api.KeyVersionRecord(record.key_id, 2, os.urandom(3000),
                                       'PEM', _now())
        updated = self.ks.add_version(GROUP, record.key_id, version)
        self.assertEqual(2, updated.latest_version)
        self.assertGreaterEqual(updated.updated_at, record.updated_at)
        self.assertEqual(updated, self.ks.get_key(GROUP, record.key_id))
        self.assertEqual(version, self.ks.get_version(record.key_id, 2))

    def test_add_version_out_of_sequence(self):
        record = self.create()
        for number in (1, 3):
            version = api.KeyVersionRecord(record.key_id, number, b'w',
                                           None, _now())
            exc = self.assertRaises(exception.Conflict, self.ks.add_version,
                                    GROUP, record.key_id, version)
            self.assertIn('rotated concurrently', str(exc))
        self.assertEqual(1, self.ks.get_key(GROUP,
                                            record.key_id).latest_version)

    def test_add_version_missing_key(self):
        record = self.create()
        version = api.KeyVersionRecord(record.key_id, 2, b'w', None, _now())
        self.assertRaises(exception.KeyNotFound, self.ks.add_version,
                          'group-2', record.key_id, version)
        self.assertRaises(exception.KeyVersionNotFound, self.ks.get_version,
                          record.key_id, 2)

    def test_add_version_race_has_one_winner(self):
        record = self.create()
        members = [self.new_keystore() for _ in range(RACERS)]
        blobs = [os.urandom(32) for _ in range(RACERS)]
        results, errors = _race(
            [lambda m=m, b=b: m.add_version(
                GROUP, record.key_id,
                api.KeyVersionRecord(record.key_id, 2, b, None, _now()))
             for m, b in zip(members, blobs, strict=True)])
        self.assertEqual(1, len(results), errors)
        self.assertEqual(RACERS - 1, len(errors))
        for exc in errors:
            self.assertIsInstance(exc, exception.Conflict)
        self.assertEqual(2, results[0].latest_version)
        self.assertIn(self.ks.get_version(record.key_id, 2).wrapped, blobs)

    # -- updates ----------------------------------------------------------

    def test_update_key(self):
        record = self.create()
        deletion = _now() + datetime.timedelta(days=7)
        updated = self.ks.update_key(
            GROUP, record.key_id,
            {'state': 'PENDING_DELETION', 'deletion_date': deletion},
            expect_states=['ENABLED', 'DISABLED'], action='schedule')
        self.assertEqual('PENDING_DELETION', updated.state)
        self.assertEqual(deletion, updated.deletion_date)
        self.assertGreaterEqual(updated.updated_at, record.updated_at)
        self.assertEqual(updated, self.ks.get_key(GROUP, record.key_id))
        updated = self.ks.update_key(GROUP, record.key_id,
                                     {'description': 'new',
                                      'exportable': True})
        self.assertEqual('new', updated.description)
        self.assertTrue(updated.exportable)

    def test_update_key_wrong_state(self):
        record = self.create(state='DISABLED')
        exc = self.assertRaises(
            exception.InvalidKeyState, self.ks.update_key, GROUP,
            record.key_id, {'state': 'ENABLED'},
            expect_states={'PENDING_DELETION'}, action='cancel_deletion')
        self.assertEqual({'key_id': record.key_id, 'state': 'DISABLED',
                          'action': 'cancel_deletion'}, exc.kwargs)
        self.assertEqual(record, self.ks.get_key(GROUP, record.key_id))

    def test_update_key_missing(self):
        record = self.create()
        for group, key_id in ((GROUP, str(uuid.uuid4())),
                              ('group-2', record.key_id)):
            self.assertRaises(exception.KeyNotFound, self.ks.update_key,
                              group, key_id, {'state': 'DISABLED'},
                              expect_states=['ENABLED'])

    def test_update_key_rejects_fixed_columns(self):
        record = self.create()
        for column in ('latest_version', 'project_id', 'group_id', 'id'):
            self.assertRaises(ValueError, self.ks.update_key, GROUP,
                              record.key_id, {column: 'x'})

    def test_update_key_name_clash(self):
        self.create(name='taken')
        record = self.create(name='mine')
        self.assertRaises(exception.KeyNameExists, self.ks.update_key,
                          GROUP, record.key_id, {'name': 'taken'})

    def test_conditional_update_race_has_one_winner(self):
        record = self.create()
        members = [self.new_keystore() for _ in range(RACERS)]
        results, errors = _race(
            [lambda m=m: m.update_key(GROUP, record.key_id,
                                      {'state': 'DISABLED'},
                                      expect_states=['ENABLED'],
                                      action='disable')
             for m in members])
        self.assertEqual(1, len(results), errors)
        self.assertEqual(RACERS - 1, len(errors))
        for exc in errors:
            self.assertIsInstance(exc, exception.InvalidKeyState)
            self.assertEqual('DISABLED', exc.kwargs['state'])

    # -- purge ------------------------------------------------------------

    def _schedule(self, record, when):
        return self.ks.update_key(GROUP, record.key_id,
                                  {'state': 'PENDING_DELETION',
                                   'deletion_date': when})

    def test_purge_due(self):
        now = _now()
        due = self.create()
        self.ks.add_version(GROUP, due.key_id, api.KeyVersionRecord(
            due.key_id, 2, b'w2', None, now))
        self._schedule(due, now - datetime.timedelta(seconds=1))
        exactly_now = self.create()
        self._schedule(exactly_now, now)
        later = self.create()
        self._schedule(later, now + datetime.timedelta(days=1))
        kept = self.create()
        other_group, other_version = make_key(group_id='group-2')
        self.ks.create_key(other_group, other_version)
        self.ks.update_key('group-2', other_group.key_id,
                           {'state': 'PENDING_DELETION',
                            'deletion_date': now})

        purged = self.ks.purge_due(GROUP, now)

        self.assertEqual(sorted([due.key_id, exactly_now.key_id]), purged)
        for key_id in purged:
            self.assertRaises(exception.KeyNotFound, self.ks.get_key,
                              GROUP, key_id)
        for version in (1, 2):
            self.assertRaises(exception.KeyVersionNotFound,
                              self.ks.get_version, due.key_id, version)
        self.assertEqual(sorted([later.key_id, kept.key_id]), sorted(
            r.key_id for r in self.ks.list_keys(GROUP, PROJECT)))
        self.ks.get_key('group-2', other_group.key_id)
        self.assertEqual([], self.ks.purge_due(GROUP, now))

    def test_purge_accepts_aware_now(self):
        record = self.create()
        self._schedule(record, datetime.datetime(2030, 1, 1, 0, 0))
        before = datetime.datetime(2030, 1, 1, 7, 59,
                                   tzinfo=datetime.timezone(
                                       datetime.timedelta(hours=8)))
        self.assertEqual([], self.ks.purge_due(GROUP, before))
        after = before + datetime.timedelta(minutes=1)
        self.assertEqual([record.key_id], self.ks.purge_due(GROUP, after))


class TestKeystoreSQLite(KeystoreTests, testtools.TestCase):
    """The keystore on a SQLite file."""

    backend = 'sqlite'

    def test_wal_mode_and_busy_timeout(self):
        with self.ks._engine.connect() as conn:
            self.assertEqual('wal', conn.exec_driver_sql(
                'PRAGMA journal_mode').scalar())
            self.assertGreater(conn.exec_driver_sql(
                'PRAGMA busy_timeout').scalar(), 1000)

    def test_unreachable_database(self):
        self.assertRaises(db_exc.DBConnectionError, api.Keystore,
                          'sqlite:////nonexistent-dir/ks.sqlite',
                          connect_retries=0)
