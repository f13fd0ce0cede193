"""The keystore API the vHSM engine calls.

Every method runs in one short transaction on a pooled connection, so a
``Keystore`` may be shared by all the threads of a vHSM.  Changes that two
members of a group could race on are single conditional UPDATEs
(compare-and-swap on ``latest_version`` or ``state``), never a read
followed by a write, so the database decides who wins on every backend.

Blobs (sealed domain key, wrapped key versions) are opaque here and never
appear in messages: the engine is built with ``hide_parameters`` and this
module names only identifiers in its exceptions.

All timestamps are naive UTC (see ``models``); aware datetimes passed in
are converted.
"""

import dataclasses
import datetime
import functools
import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import TypeVar

import sqlalchemy as sa
from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exc
from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.db import engines
from cryptocloud.db import migration
from cryptocloud.vhsm.keystore import models

LOG = logging.getLogger(__name__)

PENDING_DELETION = 'PENDING_DELETION'

_DOMAIN_KEYS = models.DomainKey.__table__
_KEYS = models.Key.__table__
_VERSIONS = models.KeyVersion.__table__

# Columns update_key may change.  Identity, ownership and latest_version
# (which only add_version moves) are not among them.
_UPDATABLE = frozenset({'name', 'description', 'state', 'exportable',
                        'min_decryption_version', 'deletion_date'})

_F = TypeVar('_F', bound=Callable)


@dataclasses.dataclass(frozen=True)
class KeyRecord:
    """Metadata of one tenant key as stored in the keystore."""

    key_id: str
    group_id: str
    project_id: str
    name: str | None
    description: str | None
    algorithm: str
    purpose: str
    state: str
    exportable: bool
    latest_version: int
    min_decryption_version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime
    deletion_date: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class KeyVersionRecord:
    """One version of a key: its material wrapped under the domain key."""

    key_id: str
    version: int
    wrapped: bytes = dataclasses.field(repr=False)
    public_key: str | None
    created_at: datetime.datetime


class DuplicateKeyId(exception.Conflict):
    """create_key was given a key id that already exists."""

    msg_fmt = 'Key id %(key_id)s is already in use.'


def utcnow() -> datetime.datetime:
    """The current time as the keystore stores it (naive UTC)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _naive_utc(value: datetime.datetime | None) -> datetime.datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(datetime.UTC).replace(tzinfo=None)


def _retry_on_deadlock(func: _F) -> _F:
    # InnoDB may pick a transaction as a deadlock victim when two members
    # write rows of the same keys; the whole transaction was rolled back,
    # so running it again is safe.
    return oslo_db_api.wrap_db_retry(
        max_retries=5, retry_interval=0.05, max_retry_interval=1,
        retry_on_deadlock=True, jitter=True)(func)


# Seconds between two warnings that the keystore is unreachable: every
# request fails while it is, and the log must not grow with the load.
_UNREACHABLE_WARNING_INTERVAL = 10.0
_last_unreachable_warning = [-_UNREACHABLE_WARNING_INTERVAL]


def _unavailable_when_unreachable(func: _F) -> _F:
    # A keystore that restarts or fails over is a temporary condition
    # of the service (503, retry), not an internal error of the vHSM.
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except db_exc.DBConnectionError as exc:
            now = time.monotonic()
            if (now - _last_unreachable_warning[0]
                    >= _UNREACHABLE_WARNING_INTERVAL):
                _last_unreachable_warning[0] = now
                LOG.warning('The keystore database is unreachable (%s in '
                            '%s); requests that need it fail with 503 '
                            'until it answers again.',
                            type(exc.inner_exception or exc).__name__,
                            func.__name__)
            raise exception.KeystoreUnavailable(
                reason='connection lost or refused') from None
    return wrapper  # type: ignore[return-value]


_KEY_COLUMNS = (
    _KEYS.c.id, _KEYS.c.group_id, _KEYS.c.project_id, _KEYS.c.name,
    _KEYS.c.description, _KEYS.c.algorithm, _KEYS.c.purpose, _KEYS.c.state,
    _KEYS.c.exportable, _KEYS.c.latest_version,
    _KEYS.c.min_decryption_version, _KEYS.c.created_at, _KEYS.c.updated_at,
    _KEYS.c.deletion_date)


def _key_record(row) -> KeyRecord:
    return KeyRecord(
        key_id=row.id, group_id=row.group_id, project_id=row.project_id,
        name=row.name, description=row.description,
        algorithm=row.algorithm, purpose=row.purpose, state=row.state,
        exportable=bool(row.exportable), latest_version=row.latest_version,
        min_decryption_version=row.min_decryption_version,
        created_at=row.created_at, updated_at=row.updated_at,
        deletion_date=row.deletion_date)


def _key_values(record: KeyRecord) -> dict:
    return {
        'id': record.key_id, 'group_id': record.group_id,
        'project_id': record.project_id, 'name': record.name,
        'description': record.description, 'algorithm': record.algorithm,
        'purpose': record.purpose, 'state': record.state,
        'exportable': bool(record.exportable),
        'latest_version': record.latest_version,
        'min_decryption_version': record.min_decryption_version,
        'created_at': _naive_utc(record.created_at),
        'updated_at': _naive_utc(record.updated_at),
        'deletion_date': _naive_utc(record.deletion_date),
    }


def _version_values(version: KeyVersionRecord) -> dict:
    return {
        'key_id': version.key_id, 'version': version.version,
        'wrapped': bytes(version.wrapped),
        'public_key': version.public_key,
        'created_at': _naive_utc(version.created_at),
    }


# Prepared once: the same statement objects hit SQLAlchemy's compiled
# cache on every call of the hot-path reads.
_GET_KEY = sa.select(*_KEY_COLUMNS).where(
    _KEYS.c.id == sa.bindparam('key_id'),
    _KEYS.c.group_id == sa.bindparam('group_id'))
_GET_VERSION = sa.select(
    _VERSIONS.c.key_id, _VERSIONS.c.version, _VERSIONS.c.wrapped,
    _VERSIONS.c.public_key, _VERSIONS.c.created_at).where(
    _VERSIONS.c.key_id == sa.bindparam('key_id'),
    _VERSIONS.c.version == sa.bindparam('version'))
_GET_DOMAIN_KEY = sa.select(_DOMAIN_KEYS.c.sealed).where(
    _DOMAIN_KEYS.c.group_id == sa.bindparam('group_id'))


class Keystore:
    """Access to one vHSM group's keystore database; thread-safe."""

    def __init__(self, url: str, *, max_pool_size: int = 10,
                 pool_timeout: int = 10, connect_retries: int = 0) -> None:
        self._engine = engines.create_engine(
            url, max_pool_size=max_pool_size, pool_timeout=pool_timeout,
            connect_retries=connect_retries)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @_unavailable_when_unreachable
    def check_schema(self) -> None:
        """Refuse to run against a database not migrated to the head."""
        expected = migration.head('keystore')
        with engines.reader(self._engine) as conn:
            found = migration.current_revision(conn, 'keystore')
        if found != expected:
            raise exception.ConfigurationError(
                'keystore database schema is at %s, expected head %s: run '
                '"cryptocloud-dbsync upgrade"' % (found or 'base', expected))

    # -- domain key -------------------------------------------------------

    @_unavailable_when_unreachable
    def get_domain_key(self, group_id: str) -> bytes | None:
        """The group's sealed domain key, or None if none is stored yet."""
        with engines.reader(self._engine) as conn:
            sealed = conn.execute(_GET_DOMAIN_KEY,
                                  {'group_id': group_id}).scalar()
        return None if sealed is None else bytes(sealed)

    @_unavailable_when_unreachable
    def put_domain_key(self, group_id: str, sealed: bytes) -> bytes:
        """Store the sealed domain key unless a member already did.

        Returns the blob that is stored, which is the caller's own unless
        another member of the group won the race; the caller must use the
        returned one so that the whole group shares one domain key.
        """
        try:
            with engines.writer(self._engine) as conn:
                conn.execute(_DOMAIN_KEYS.insert().values(
                    group_id=group_id, sealed=bytes(sealed),
                    created_at=utcnow()))
            return bytes(sealed)
        except db_exc.DBDuplicateEntry:
            LOG.info('Another member stored the domain key of group %s '
                     'first; using that one.', group_id)
        stored = self.get_domain_key(group_id)
        if stored is None:
            # Only an operator deleting the row in between gets here.
            raise exception.Conflict(
                reason='domain key of group %s changed concurrently; retry'
                       % group_id)
        return stored

    # -- keys -------------------------------------------------------------

    @_unavailable_when_unreachable
    @_retry_on_deadlock
    def create_key(self, record: KeyRecord,
                   first_version: KeyVersionRecord) -> KeyRecord:
        """Store a new key and its first version in one transaction."""
        if first_version.key_id != record.key_id:
            raise ValueError('first_version belongs to another key')
        values = _key_values(record)
        try:
            with engines.writer(self._engine) as conn:
                conn.execute(_KEYS.insert().values(**values))
                conn.execute(_VERSIONS.insert().values(
                    **_version_values(first_version)))
        except db_exc.DBDuplicateEntry:
            raise self._create_conflict(record) from None
        return dataclasses.replace(
            record, exportable=values['exportable'],
            created_at=values['created_at'],
            updated_at=values['updated_at'],
            deletion_date=values['deletion_date'])

    def _create_conflict(self, record: KeyRecord) -> Exception:
        # Which constraint failed is read back from the data rather than
        # parsed from driver messages, which differ per backend.
        with engines.reader(self._engine) as conn:
            taken = conn.execute(
                sa.select(_KEYS.c.id).where(_KEYS.c.id == record.key_id)
            ).first()
        if taken is not None:
            return DuplicateKeyId(key_id=record.key_id)
        return exception.KeyNameExists(name=record.name)

    @_unavailable_when_unreachable
    def get_key(self, group_id: str, key_id: str) -> KeyRecord:
        """The key ``key_id`` of the group, or KeyNotFound."""
        with engines.reader(self._engine) as conn:
            row = conn.execute(_GET_KEY, {'key_id': key_id,
                                          'group_id': group_id}).first()
        if row is None:
            raise exception.KeyNotFound(key_id=key_id)
        return _key_record(row)

    @_unavailable_when_unreachable
    def list_keys(self, group_id: str, project_id: str, *, limit: int = 100,
                  marker: str | None = None,
                  state: str | None = None) -> list[KeyRecord]:
        """A page of the project's keys ordered by id, after ``marker``."""
        if limit < 1:
            raise exception.InvalidInput(reason='limit must be at least 1')
        owned = sa.and_(_KEYS.c.group_id == group_id,
                        _KEYS.c.project_id == project_id)
        query = sa.select(*_KEY_COLUMNS).where(owned)
        if state is not None:
            query = query.where(_KEYS.c.state == state)
        if marker is not None:
            query = query.where(_KEYS.c.id > marker)
        query = query.order_by(_KEYS.c.id).limit(limit)
        with engines.reader(self._engine) as conn:
            if marker is not None:
                found = conn.execute(
                    sa.select(_KEYS.c.id).where(owned,
                                                _KEYS.c.id == marker)
                ).first()
                if found is None:
                    raise exception.InvalidInput(
                        reason='marker %s is not a key of this project'
                               % marker)
            rows = conn.execute(query).all()
        return [_key_record(row) for row in rows]

    @_unavailable_when_unreachable
    def get_version(self, key_id: str, version: int) -> KeyVersionRecord:
        """One wrapped version of a key, or KeyVersionNotFound."""
        with engines.reader(self._engine) as conn:
            row = conn.execute(_GET_VERSION, {'key_id': key_id,
                                              'version': version}).first()
        if row is None:
            raise exception.KeyVersionNotFound(key_id=key_id,
                                               version=version)
        return KeyVersionRecord(
            key_id=row.key_id, version=row.version,
            wrapped=bytes(row.wrapped), public_key=row.public_key,
            created_at=row.created_at)

    @_unavailable_when_unreachable
    @_retry_on_deadlock
    def add_version(self, group_id: str, key_id: str,
                    version: KeyVersionRecord) -> KeyRecord:
        """Make ``version`` the latest, if it follows the current latest.

        Two members rotating at once both compute the same next version;
        the conditional UPDATE lets exactly one of them succeed and the
        other gets Conflict.
        """
        if version.key_id != key_id:
            raise ValueError('version belongs to another key')
        with engines.writer(self._engine) as conn:
            moved = conn.execute(
                _KEYS.update()
                .where(_KEYS.c.id == key_id,
                       _KEYS.c.group_id == group_id,
                       _KEYS.c.latest_version == version.version - 1)
                .values(latest_version=version.version,
                        updated_at=utcnow())).rowcount
            if moved != 1:
                self._raise_missing(conn, group_id, key_id)
                raise exception.Conflict(
                    reason='key %s was rotated concurrently; retry' % key_id)
            try:
                conn.execute(_VERSIONS.insert().values(
                    **_version_values(version)))
            except db_exc.DBDuplicateEntry:
                # A version row above latest_version: left behind by hand;
                # the transaction (and the UPDATE) is rolled back.
                raise exception.Conflict(
                    reason='version %d of key %s already exists'
                           % (version.version, key_id)) from None
            row = conn.execute(_GET_KEY, {'key_id': key_id,
                                          'group_id': group_id}).first()
        return _key_record(row)

    @_unavailable_when_unreachable
    @_retry_on_deadlock
    def update_key(self, group_id: str, key_id: str, values: dict, *,
                   expect_states: Iterable[str] | None = None,
                   action: str = 'update') -> KeyRecord:
        """Change a key's columns if it is in one of ``expect_states``.

        The state check is part of the UPDATE, so of two members racing
        (say, disable and schedule_deletion) only one sees its expected
        state; the other gets InvalidKeyState with the current state.
        """
        unknown = set(values) - _UPDATABLE
        if unknown:
            raise ValueError('cannot update key columns: %s'
                             % ', '.join(sorted(unknown)))
        changes = {name: _naive_utc(value)
                   if isinstance(value, datetime.datetime) else value
                   for name, value in values.items()}
        changes['updated_at'] = utcnow()
        query = _KEYS.update().where(_KEYS.c.id == key_id,
                                     _KEYS.c.group_id == group_id)
        if expect_states is not None:
            query = query.where(_KEYS.c.state.in_(list(expect_states)))
        try:
            with engines.writer(self._engine) as conn:
                if conn.execute(query.values(**changes)).rowcount != 1:
                    current = self._raise_missing(conn, group_id, key_id)
                    raise exception.InvalidKeyState(
                        key_id=key_id, state=current, action=action)
                row = conn.execute(_GET_KEY, {'key_id': key_id,
                                              'group_id': group_id}).first()
        except db_exc.DBDuplicateEntry:
            raise exception.KeyNameExists(name=values.get('name')) from None
        return _key_record(row)

    @staticmethod
    def _raise_missing(conn: sa.engine.Connection, group_id: str,
                       key_id: str) -> str:
        """KeyNotFound unless the key exists; else its current state."""
        state = conn.execute(
            sa.select(_KEYS.c.state).where(_KEYS.c.id == key_id,
                                           _KEYS.c.group_id == group_id)
        ).scalar()
        if state is None:
            raise exception.KeyNotFound(key_id=key_id)
        return state

    @_unavailable_when_unreachable
    @_retry_on_deadlock
    def purge_due(self, group_id: str, now: datetime.datetime) -> list[str]:
        """Destroy keys pending deletion whose date is <= ``now``."""
        now = _naive_utc(now)
        due = sa.and_(_KEYS.c.group_id == group_id,
                      _KEYS.c.state == PENDING_DELETION,
                      _KEYS.c.deletion_date <= now)
        with engines.writer(self._engine) as conn:
            # Lock the rows (MySQL, PostgreSQL; SQLite already holds the
            # write lock) so a concurrent cancel_deletion either finishes
            # first, and the key is kept, or finds the key gone.
            ids = list(conn.execute(
                sa.select(_KEYS.c.id).where(due).order_by(_KEYS.c.id)
                .with_for_update()).scalars())
            if not ids:
                return []
            # Versions first and explicitly: SQLite only cascades when the
            # foreign_keys pragma is on, which another client may not set.
            conn.execute(_VERSIONS.delete().where(
                _VERSIONS.c.key_id.in_(ids)))
            conn.execute(_KEYS.delete().where(_KEYS.c.id.in_(ids)))
        return ids

