"""The control-plane database API: the only code that queries its tables.

``Connection`` is shared by every thread of cryptocloud-api or of a
conductor: each method runs in one short transaction on a pooled
connection and returns plain dicts (JSON columns decoded, a node's roles
as a list, timestamps as naive UTC datetimes).

State changes are conditional UPDATEs naming the states an event may
start from (``transition``), and tasks are claimed with a lease
(``claim_task``), so several conductors may run at once: the database
decides which of two racing writers wins, on every backend.

Rows hold no secrets (credentials are SHA-256 hashes), and the engine is
built with ``hide_parameters`` anyway, so SQL errors never quote values.
"""

# Connection has a method called list; later annotations must not see it.
from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from typing import TypeVar

import sqlalchemy as sa
from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exc
from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.db import engines
from cryptocloud.db import migration
from cryptocloud.db import models

LOG = logging.getLogger(__name__)

SCHEMA = 'control'

KINDS = ('vhsm_groups', 'vhsms', 'services', 'service_instances',
         'associations', 'service_credentials', 'tasks', 'nodes', 'images',
         'scaling_policies')

# Names used in messages and in exception kwargs ('kind').
SINGULAR = {
    'vhsm_groups': 'vhsm_group',
    'vhsms': 'vhsm',
    'services': 'service',
    'service_instances': 'service_instance',
    'associations': 'association',
    'service_credentials': 'service_credential',
    'tasks': 'task',
    'nodes': 'node',
    'images': 'image',
    'scaling_policies': 'scaling_policy',
}

ROLES = frozenset({'device', 'service'})

# A PENDING task this old was never picked up (its cast was lost, or the
# conductor died before claiming it): recovery may run it.
ORPHAN_PENDING_SECONDS = 10

_TABLES: dict[str, sa.Table] = {
    table.name: table for table in models.metadata.sorted_tables}
_NODES = _TABLES['nodes']
_VHSMS = _TABLES['vhsms']
_INSTANCES = _TABLES['service_instances']
_TASKS = _TABLES['tasks']
# Workload tables whose rows carry the load figures of their node's probes.
_LOAD_KINDS = ('vhsms', 'service_instances')
# Workload tables placed on nodes, and the node column that caps each.
_CAPACITY = {'vhsms': ('vhsm_capacity', 'vHSM'),
             'service_instances': ('instance_capacity',
                                   'service instance')}
# Ids per IN (...) list: well under every backend's parameter limit.
_IN_CHUNK = 500

# Ids the database assigns; every other kind gets a fresh UUID string.
_INTEGER_IDS = frozenset({'nodes', 'associations'})
# Credential ids are 32 hex digits (a UUID without dashes).
_HEX_IDS = frozenset({'service_credentials'})

# Set by the API itself, never through create/update values.
_READ_ONLY = frozenset({'id', 'created_at', 'updated_at'})

_F = TypeVar('_F', bound=Callable)


def utcnow() -> datetime.datetime:
    """The current time as the control database stores it (naive UTC)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value


def _retry_on_deadlock(func: _F) -> _F:
    # InnoDB may pick one of two conductors' transactions as a deadlock
    # victim; it was rolled back whole, so running it again is safe.
    return oslo_db_api.wrap_db_retry(
        max_retries=5, retry_interval=0.05, max_retry_interval=1,
        retry_on_deadlock=True, jitter=True)(func)


def _is_json(column: sa.Column) -> bool:
    return isinstance(column.type, models.JSONText)


class Connection:
    """Access to the control-plane database; thread-safe."""

    KINDS = KINDS

    def __init__(self, url: str, *, max_pool_size: int = 10,
                 pool_timeout: int = 10, connect_retries: int = 0) -> None:
        self._engine = engines.create_engine(
            url, max_pool_size=max_pool_size, pool_timeout=pool_timeout,
            connect_retries=connect_retries)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def check_schema(self) -> None:
        """Refuse to run against a database not migrated to the head."""
        expected = migration.head(SCHEMA)
        with engines.reader(self._engine) as conn:
            found = migration.current_revision(conn, SCHEMA)
        if found != expected:
            raise exception.ConfigurationError(
                'control database schema is at %s, expected head %s: run '
                '"cryptocloud-dbsync upgrade --schema control"'
                % (found or 'base', expected))

    # -- helpers ----------------------------------------------------------

    @staticmethod
    def _table(kind: str) -> sa.Table:
        try:
            return _TABLES[kind]
        except KeyError:
            raise exception.InvalidInput(
                reason='unknown kind %r; known: %s'
                       % (kind, ', '.join(KINDS))) from None

    @staticmethod
    def _key(kind: str, id: Any) -> Any:
        """The id as the column compares it, or NotFound when it cannot be.

        Comparing an integer column with a non-numeric string is an error
        on PostgreSQL, so such ids are found nowhere instead.
        """
        if kind in _INTEGER_IDS:
            try:
                return int(id)
            except (TypeError, ValueError):
                raise exception.ResourceNotFound(kind=SINGULAR[kind],
                                                 id=id) from None
        return str(id)

    @staticmethod
    def _values(kind: str, table: sa.Table, values: dict, *,
                what: str) -> dict:
        """Check column names and normalise datetimes of caller values."""
        unknown = sorted(set(values) - set(table.c.keys()))
        if unknown:
            raise exception.InvalidInput(
                reason='unknown %s column(s): %s'
                       % (SINGULAR[kind], ', '.join(unknown)))
        if what != 'create':
            fixed = sorted(set(values) & (_READ_ONLY | {'state'}))
            if fixed:
                raise exception.InvalidInput(
                    reason='%s cannot set %s of a %s%s'
                           % (what, ', '.join(fixed), SINGULAR[kind],
                              '; states change through transition'
                              if 'state' in fixed else ''))
        return {name: _naive_utc(value) for name, value in values.items()}

    @staticmethod
    def _row(row: sa.Row | None) -> dict | None:
        # JSON columns and roles are decoded by their column types.
        return None if row is None else dict(row._mapping)

    def _read(self, conn: sa.engine.Connection, kind: str, key: Any, *,
              lock: bool = False) -> dict | None:
        table = _TABLES[kind]
        query = sa.select(table).where(table.c.id == key)
        if lock:
            query = query.with_for_update()
        return self._row(conn.execute(query).first())

    @staticmethod
    def _not_found(kind: str, id: Any) -> exception.ResourceNotFound:
        return exception.ResourceNotFound(kind=SINGULAR[kind], id=id)

    @staticmethod
    def _reference_error(kind: str, exc: db_exc.DBReferenceError
                         ) -> exception.CryptoCloudException:
        # Inserting or updating: the row names one that does not exist.
        # Deleting: other rows still name this one.
        return exception.Conflict(
            reason='%s refers to, or is referred to by, a missing or '
                   'remaining row (%s)'
                   % (SINGULAR[kind], exc.key or exc.constraint or
                      'foreign key'))

    @staticmethod
    def _where(kind: str, table: sa.Table, filters: dict | None
               ) -> list[sa.ColumnElement]:
        """WHERE clauses for ``filters`` (a list of values means IN)."""
        clauses = []
        for name, value in sorted((filters or {}).items()):
            column = table.c.get(name)
            if column is None or _is_json(column):
                raise exception.InvalidInput(
                    reason='cannot filter %s on %r' % (kind, name))
            if kind == 'nodes' and name == 'roles':
                clauses.append(_has_roles(column, value))
                continue
            if isinstance(value, (list, tuple, set, frozenset)):
                values = [_naive_utc(v) for v in value]
                present = [v for v in values if v is not None]
                clause = column.in_(present)
                if len(present) != len(values):
                    clause = sa.or_(clause, column.is_(None))
                clauses.append(clause)
            elif value is None:
                clauses.append(column.is_(None))
            else:
                clauses.append(column == _naive_utc(value))
        return clauses

    # -- generic rows -----------------------------------------------------

    @_retry_on_deadlock
    def create(self, kind: str, values: dict) -> dict:
        """Insert a row; id (unless given) and timestamps are filled in."""
        return self._insert(kind, values)

    @_retry_on_deadlock
    def create_placed(self, kind: str, values: dict) -> dict:
        """Insert a vHSM or instance on ``values['node_id']`` if it has room.

        The node's row is locked first and its workloads of the kind
        (DELETING ones aside) are counted under that lock, so two
        conductors placing on one node at once cannot both take its last
        slot: the second gets NodeFull and places again.
        """
        if kind not in _CAPACITY:
            raise exception.InvalidInput(
                reason='a %s is not placed on a node' % SINGULAR[kind])

        def guard(conn: sa.engine.Connection, row: dict) -> None:
            node = conn.execute(
                sa.select(_NODES.c.hostname, _NODES.c[_CAPACITY[kind][0]])
                .where(_NODES.c.id == row.get('node_id'))
                .with_for_update()).first()
            if node is None:
                raise self._not_found('nodes', row.get('node_id'))
            label = _CAPACITY[kind][1]
            table = _TABLES[kind]
            used = conn.execute(
                sa.select(sa.func.count()).select_from(table)
                .where(table.c.node_id == row['node_id'],
                       table.c.state != states.DELETING)).scalar_one()
            if used >= (node[1] or 0):
                raise exception.NodeFull(host=node[0], used=used,
                                         kind=label)

        return self._insert(kind, values, guard)

    def _insert(self, kind: str, values: dict,
                guard: Callable | None = None) -> dict:
        table = self._table(kind)
        row = self._values(kind, table, values, what='create')
        row.pop('created_at', None)
        row.pop('updated_at', None)
        now = utcnow()
        row['created_at'] = now
        if 'updated_at' in table.c:
            row['updated_at'] = now
        if kind in _INTEGER_IDS:
            row.pop('id', None)
        elif row.get('id') is None:
            new = uuid.uuid4()
            row['id'] = new.hex if kind in _HEX_IDS else str(new)
        try:
            with engines.writer(self._engine) as conn:
                if guard is not None:
                    guard(conn, row)
                result = conn.execute(table.insert().values(**row))
                key = result.inserted_primary_key[0]
                return self._read(conn, kind, key)
        except db_exc.DBDuplicateEntry as exc:
            raise exception.Conflict(
                reason='a %s with the same %s already exists'
                       % (SINGULAR[kind],
                          ', '.join(exc.columns or ['id']))) from None
        except db_exc.DBReferenceError as exc:
            raise self._reference_error(kind, exc) from None

    def get(self, kind: str, id: Any) -> dict:
        """One row by id, or ResourceNotFound."""
        self._table(kind)
        key = self._key(kind, id)
        with engines.reader(self._engine) as conn:
            row = self._read(conn, kind, key)
        if row is None:
            raise self._not_found(kind, id)
        return row

    def list(self, kind: str, *, filters: dict | None = None,
             limit: int | None = None, marker: Any = None,
             sort_key: str = 'created_at',
             sort_dir: str = 'asc') -> list[dict]:
        """A page of rows ordered by (sort_key, id), after ``marker``.

        ``marker`` is the id of the last row of the previous page.  NULLs
        sort after every value ascending (and first descending) on every
        backend, so pages never skip or repeat a row.
        """
        table = self._table(kind)
        column = table.c.get(sort_key)
        if column is None or _is_json(column):
            raise exception.InvalidInput(
                reason='cannot sort %s by %r' % (kind, sort_key))
        if sort_dir not in ('asc', 'desc'):
            raise exception.InvalidInput(
                reason="sort_dir must be 'asc' or 'desc', not %r"
                       % (sort_dir,))
        if limit is not None and (isinstance(limit, bool) or
                                  not isinstance(limit, int) or limit < 0):
            raise exception.InvalidInput(
                reason='limit must be a non-negative integer')
        query = sa.select(table).where(*self._where(kind, table, filters))
        query = query.order_by(*_ordering(table, column, sort_dir))
        if limit is not None:
            query = query.limit(limit)
        with engines.reader(self._engine) as conn:
            if marker is not None:
                query = query.where(self._after_marker(
                    conn, kind, table, column, sort_dir, marker))
            rows = conn.execute(query).all()
        return [self._row(row) for row in rows]

    def _after_marker(self, conn: sa.engine.Connection, kind: str,
                      table: sa.Table, column: sa.Column, sort_dir: str,
                      marker: Any) -> sa.ColumnElement:
        try:
            key = self._key(kind, marker)
        except exception.NotFound:
            key = None
        found = None
        if key is not None:
            found = conn.execute(
                sa.select(column).where(table.c.id == key)).first()
        if found is None:
            raise exception.InvalidInput(
                reason='marker %s is not a %s' % (marker, SINGULAR[kind]))
        return _after(table, column, sort_dir, found[0], key)

    def count(self, kind: str, filters: dict | None = None) -> int:
        """How many rows match ``filters``."""
        table = self._table(kind)
        query = sa.select(sa.func.count()).select_from(table).where(
            *self._where(kind, table, filters))
        with engines.reader(self._engine) as conn:
            return conn.execute(query).scalar_one()

    @_retry_on_deadlock
    def update(self, kind: str, id: Any, values: dict) -> dict:
        """Change columns of one row (never its state: see transition)."""
        table = self._table(kind)
        changes = self._values(kind, table, values, what='update')
        key = self._key(kind, id)
        if 'updated_at' in table.c:
            changes['updated_at'] = utcnow()
        try:
            with engines.writer(self._engine) as conn:
                if changes:
                    conn.execute(table.update().where(table.c.id == key)
                                 .values(**changes))
                row = self._read(conn, kind, key)
        except db_exc.DBDuplicateEntry as exc:
            raise exception.Conflict(
                reason='a %s with the same %s already exists'
                       % (SINGULAR[kind],
                          ', '.join(exc.columns or ['id']))) from None
        except db_exc.DBReferenceError as exc:
            raise self._reference_error(kind, exc) from None
        if row is None:
            raise self._not_found(kind, id)
        return row

    @_retry_on_deadlock
    def transition(self, kind: str, id: Any,
                   machine: states.StateMachine, event: str,
                   values: dict | None = None) -> dict:
        """Apply ``event`` to the row's state, with ``values``, atomically.

        One conditional UPDATE sets the state to the machine's target for
        the state the row is in (a CASE on the current state), limited to
        the states the event may start from: of two writers racing, the
        second finds the state already moved and gets InvalidState.  When
        the target is DELETED the row is deleted instead, and the row as
        it was (with state DELETED) is returned.
        """
        table = self._table(kind)
        if 'state' not in table.c:
            raise exception.InvalidInput(
                reason='a %s has no state' % SINGULAR[kind])
        changes = self._values(kind, table, values or {}, what='transition')
        key = self._key(kind, id)
        targets = {source: target
                   for (source, name), target in machine.transitions.items()
                   if name == event}
        moves = {s: t for s, t in targets.items() if t != states.DELETED}
        removals = sorted(s for s, t in targets.items()
                          if t == states.DELETED)
        if 'updated_at' in table.c:
            changes['updated_at'] = utcnow()
        # A row may change between the failed UPDATE and the read that
        # explains it; then the event may have become allowed: try again.
        for _attempt in range(3):
            try:
                with engines.writer(self._engine) as conn:
                    done = self._apply(conn, kind, table, key, moves,
                                       removals, changes)
                    if done is not None:
                        return done
                    current = conn.execute(
                        sa.select(table.c.state)
                        .where(table.c.id == key)).scalar()
            except db_exc.DBReferenceError as exc:
                raise self._reference_error(kind, exc) from None
            if current is None:
                raise self._not_found(kind, id)
            if current not in targets:
                raise exception.InvalidState(
                    kind=SINGULAR[kind], resource_id=id, state=current,
                    action=event)
        raise exception.Conflict(
            reason='%s %s kept changing state; retry %s'
                   % (SINGULAR[kind], id, event))

    def _apply(self, conn: sa.engine.Connection, kind: str,
               table: sa.Table, key: Any, moves: dict[str, str],
               removals: list[str], changes: dict) -> dict | None:
        """The transition's writes; None when the state did not allow it."""
        if moves:
            new_state = sa.case(
                *[(table.c.state == source, sa.literal(target, sa.String))
                  for source, target in sorted(moves.items())],
                else_=table.c.state)
            updated = conn.execute(
                table.update()
                .where(table.c.id == key, table.c.state.in_(sorted(moves)))
                .values(state=new_state, **changes)).rowcount
            if updated == 1:
                return self._read(conn, kind, key)
        if removals:
            row = conn.execute(
                sa.select(table)
                .where(table.c.id == key, table.c.state.in_(removals))
                .with_for_update()).first()
            if row is not None:
                conn.execute(table.delete().where(
                    table.c.id == key, table.c.state.in_(removals)))
                gone = self._row(row)
                gone.update(changes)
                gone['state'] = states.DELETED
                return gone
        return None

    @_retry_on_deadlock
    def delete(self, kind: str, id: Any) -> None:
        """Delete one row, or ResourceNotFound."""
        table = self._table(kind)
        key = self._key(kind, id)
        try:
            with engines.writer(self._engine) as conn:
                deleted = conn.execute(
                    table.delete().where(table.c.id == key)).rowcount
        except db_exc.DBReferenceError as exc:
            raise self._reference_error(kind, exc) from None
        if deleted != 1:
            raise self._not_found(kind, id)

    @_retry_on_deadlock
    def delete_where(self, kind: str, filters: dict) -> int:
        """Delete the rows matching ``filters`` (at least one); the count."""
        table = self._table(kind)
        if not filters:
            # An empty filter would empty the table.
            raise exception.InvalidInput(
                reason='delete_where needs at least one filter')
        clauses = self._where(kind, table, filters)
        try:
            with engines.writer(self._engine) as conn:
                return conn.execute(table.delete().where(*clauses)).rowcount
        except db_exc.DBReferenceError as exc:
            raise self._reference_error(kind, exc) from None

    # -- nodes ------------------------------------------------------------

    @_retry_on_deadlock
    def register_node(self, hostname: str, address: str, roles: list[str],
                      vhsm_capacity: int, instance_capacity: int) -> dict:
        """Create or refresh the node ``hostname``; it is UP from now.

        A node registering again keeps its ``enabled`` flag: an operator
        who disabled it meant it to stay disabled across restarts.
        """
        roles = sorted(set(roles or ()))
        if not roles or not set(roles) <= ROLES:
            raise exception.InvalidInput(
                reason='node roles must be one or more of %s, not %s'
                       % (', '.join(sorted(ROLES)), roles))
        now = utcnow()
        values = {'address': address, 'roles': roles,
                  'vhsm_capacity': vhsm_capacity,
                  'instance_capacity': instance_capacity,
                  'state': states.NODE_UP, 'last_heartbeat': now,
                  'updated_at': now}
        update = _NODES.update().where(_NODES.c.hostname == hostname)
        # Two registrations of one host may race to insert; the loser
        # finds the winner's row on its second pass.
        for _attempt in range(2):
            try:
                with engines.writer(self._engine) as conn:
                    if conn.execute(update.values(**values)).rowcount != 1:
                        conn.execute(_NODES.insert().values(
                            hostname=hostname, enabled=True,
                            created_at=now, **values))
                    return self._row(conn.execute(
                        sa.select(_NODES)
                        .where(_NODES.c.hostname == hostname)).first())
            except db_exc.DBDuplicateEntry:
                LOG.debug('Node %s was registered concurrently; updating '
                          'that row.', hostname)
        raise exception.Conflict(
            reason='node %s is being registered concurrently; retry'
                   % hostname)

    @_retry_on_deadlock
    def heartbeat_node(self, hostname: str, load: dict) -> dict:
        """Record that ``hostname`` is alive with its load; it is UP."""
        now = utcnow()
        with engines.writer(self._engine) as conn:
            updated = conn.execute(
                _NODES.update()
                .where(_NODES.c.hostname == hostname,
                       _NODES.c.state.in_(
                           sorted(states.NODE_MACHINE.sources('heartbeat'))))
                .values(state=states.NODE_UP, last_heartbeat=now,
                        load=load, updated_at=now)).rowcount
            row = self._row(conn.execute(
                sa.select(_NODES)
                .where(_NODES.c.hostname == hostname)).first())
        if row is None:
            raise self._not_found('nodes', hostname)
        if updated != 1:
            raise exception.InvalidState(
                kind='node', resource_id=hostname, state=row['state'],
                action='heartbeat')
        return row

    @_retry_on_deadlock
    def mark_silent_nodes_down(self, cutoff: datetime.datetime
                               ) -> list[dict]:
        """UP nodes not heard from since ``cutoff`` go DOWN; those nodes.

        Each node changes in its own conditional UPDATE, so when two
        conductors do this at once every node is reported by one only,
        and a heartbeat that lands first keeps its node UP.
        """
        cutoff = _naive_utc(cutoff)
        down = states.NODE_MACHINE.next_state(states.NODE_UP, 'silent')
        silent = sa.and_(_NODES.c.state == states.NODE_UP,
                         sa.or_(_NODES.c.last_heartbeat.is_(None),
                                _NODES.c.last_heartbeat < cutoff))
        changed = []
        with engines.writer(self._engine) as conn:
            ids = conn.execute(sa.select(_NODES.c.id).where(silent)
                               .order_by(_NODES.c.id)).scalars().all()
            now = utcnow()
            for node_id in ids:
                moved = conn.execute(
                    _NODES.update().where(_NODES.c.id == node_id, silent)
                    .values(state=down, updated_at=now)).rowcount
                if moved == 1:
                    changed.append(self._read(conn, 'nodes', node_id))
        # The caller (the conductor's liveness task) logs and acts on them.
        return changed

    def node_usage(self) -> dict[int, dict]:
        """Per node: vHSMs and instances placed on it, except DELETING."""
        usage: dict[int, dict] = {}
        with engines.reader(self._engine) as conn:
            for node_id in conn.execute(sa.select(_NODES.c.id)).scalars():
                usage[node_id] = {'vhsms': 0, 'instances': 0}
            for table, name in ((_VHSMS, 'vhsms'),
                                (_INSTANCES, 'instances')):
                rows = conn.execute(
                    sa.select(table.c.node_id, sa.func.count())
                    .where(table.c.node_id.is_not(None),
                           table.c.state != states.DELETING)
                    .group_by(table.c.node_id)).all()
                for node_id, count in rows:
                    usage.setdefault(node_id, {'vhsms': 0, 'instances': 0})
                    usage[node_id][name] = count
        return usage

    # -- load figures and scaling ------------------------------------------

    @_retry_on_deadlock
    def record_loads(self, kind: str, loads: dict[str, dict],
                     at: datetime.datetime | None = None) -> int:
        """Store the latest load figures of workloads; how many rows took it.

        ``loads`` maps a vHSM or instance id to its figures.  One UPDATE
        statement run for every row in one transaction (executemany), so
        a heartbeat costs one round of writes whatever its size.  The
        rows' ``updated_at`` stays: a measurement is not a change.  Rows
        deleted meanwhile are skipped.
        """
        if kind not in _LOAD_KINDS:
            raise exception.InvalidInput(
                reason='a %s has no load figures' % SINGULAR.get(kind, kind))
        if not loads:
            return 0
        table = _TABLES[kind]
        at = _naive_utc(at) or utcnow()
        stmt = (table.update()
                .where(table.c.id == sa.bindparam('b_id'))
                .values(load=sa.bindparam('b_load', type_=table.c.load.type),
                        load_updated_at=sa.bindparam('b_at')))
        params = [{'b_id': str(ident), 'b_load': figures, 'b_at': at}
                  for ident, figures in sorted(loads.items())]
        with engines.writer(self._engine) as conn:
            return conn.execute(stmt, params).rowcount

    @_retry_on_deadlock
    def update_if(self, kind: str, id: Any, expected: dict, values: dict,
                  *, touch: bool = True) -> dict | None:
        """Change one row only while it still has the ``expected`` values.

        A compare-and-swap in one conditional UPDATE: None when another
        writer changed the row first, ResourceNotFound when it is gone.
        ``touch=False`` leaves ``updated_at`` alone (bookkeeping that is
        not a change of the row's meaning).
        """
        table = self._table(kind)
        if not expected:
            raise exception.InvalidInput(
                reason='update_if needs at least one expected value')
        changes = self._values(kind, table, values, what='update')
        key = self._key(kind, id)
        if touch and 'updated_at' in table.c:
            changes['updated_at'] = utcnow()
        clauses = self._where(kind, table, expected)
        with engines.writer(self._engine) as conn:
            updated = conn.execute(
                table.update().where(table.c.id == key, *clauses)
                .values(**changes)).rowcount
            row = self._read(conn, kind, key)
        if row is None:
            raise self._not_found(kind, id)
        return row if updated == 1 else None

    def task_activity(self, resource_ids: Iterable[Any], *,
                      ignore_actions: Iterable[str] = ()
                      ) -> dict[str, dict]:
        """Per resource: is a task open, and when did the last one end.

        ``{'open': bool, 'last_finished_at': datetime | None}`` for each
        id; a PENDING or RUNNING task of any action makes it open, and
        tasks of ``ignore_actions`` do not count as the last one to end.
        Two indexed queries per 500 ids, whatever the size of ``tasks``.
        """
        ids = sorted({str(i) for i in resource_ids})
        found = {i: {'open': False, 'last_finished_at': None} for i in ids}
        ignored = sorted(set(ignore_actions))
        finals = sorted(states.TASK_FINAL_STATES)
        with engines.reader(self._engine) as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start:start + _IN_CHUNK]
                busy = conn.execute(
                    sa.select(_TASKS.c.resource_id).distinct()
                    .where(_TASKS.c.resource_id.in_(chunk),
                           _TASKS.c.state.in_([states.PENDING,
                                               states.RUNNING])))
                for (ident,) in busy:
                    found[ident]['open'] = True
                query = (sa.select(_TASKS.c.resource_id,
                                   sa.func.max(_TASKS.c.finished_at))
                         .where(_TASKS.c.resource_id.in_(chunk),
                                _TASKS.c.state.in_(finals))
                         .group_by(_TASKS.c.resource_id))
                if ignored:
                    query = query.where(_TASKS.c.action.not_in(ignored))
                for ident, finished in conn.execute(query):
                    found[ident]['last_finished_at'] = finished
        return found

    # -- tasks ------------------------------------------------------------

    @_retry_on_deadlock
    def claim_task(self, task_id: str, owner: str,
                   lease_seconds: int) -> dict | None:
        """Take the task for ``owner`` for ``lease_seconds``.

        A PENDING task starts RUNNING; a RUNNING one is taken over when
        its lease expired or nobody holds it (a conductor died), or kept
        when ``owner`` already holds it.  None when another conductor
        holds a live lease or the task is finished.
        """
        now = utcnow()
        claimable = sa.or_(
            _TASKS.c.state == states.PENDING,
            sa.and_(_TASKS.c.state == states.RUNNING,
                    sa.or_(_TASKS.c.owner.is_(None),
                           _TASKS.c.owner == owner,
                           _TASKS.c.lease_expires_at.is_(None),
                           _TASKS.c.lease_expires_at <= now)))
        running = states.TASK_MACHINE.next_state(states.PENDING, 'start')
        with engines.writer(self._engine) as conn:
            claimed = conn.execute(
                _TASKS.update()
                .where(_TASKS.c.id == task_id,
                       _TASKS.c.state.in_(
                           sorted(states.TASK_MACHINE.sources('start'))),
                       claimable)
                .values(state=running, owner=owner,
                        lease_expires_at=now + datetime.timedelta(
                            seconds=lease_seconds),
                        # A resumed task keeps the time it first started.
                        started_at=sa.func.coalesce(_TASKS.c.started_at,
                                                    now),
                        updated_at=now)).rowcount
            task = self._read(conn, 'tasks', task_id)
        if task is None:
            raise self._not_found('tasks', task_id)
        return task if claimed == 1 else None

    @_retry_on_deadlock
    def renew_task_lease(self, task_id: str, owner: str,
                         lease_seconds: int) -> bool:
        """Extend ``owner``'s lease; False when it no longer holds the task.
        """
        now = utcnow()
        with engines.writer(self._engine) as conn:
            return conn.execute(
                _TASKS.update()
                .where(_TASKS.c.id == task_id,
                       _TASKS.c.state == states.RUNNING,
                       _TASKS.c.owner == owner)
                .values(lease_expires_at=now + datetime.timedelta(
                    seconds=lease_seconds), updated_at=now)).rowcount == 1

    @_retry_on_deadlock
    def finish_task(self, task_id: str, owner: str | None, *,
                    succeeded: bool, error: str | None = None) -> dict:
        """End the task SUCCEEDED or FAILED (TASK_MACHINE decides from where).

        With an ``owner``, only while that conductor holds the task (else
        TaskNotOwned); ``owner=None`` forces it (recovery, the API).
        """
        event = 'succeed' if succeeded else 'fail'
        sources = states.TASK_MACHINE.sources(event)
        now = utcnow()
        query = _TASKS.update().where(_TASKS.c.id == task_id,
                                      _TASKS.c.state.in_(sorted(sources)))
        if owner is not None:
            query = query.where(_TASKS.c.owner == owner)
        # Every source of the event leads to the same final state.
        final = {states.TASK_MACHINE.next_state(s, event) for s in sources}
        (target,) = final
        with engines.writer(self._engine) as conn:
            finished = conn.execute(query.values(
                state=target, error=error, finished_at=now,
                lease_expires_at=None, updated_at=now)).rowcount
            task = self._read(conn, 'tasks', task_id)
        if task is None:
            raise self._not_found('tasks', task_id)
        if finished != 1:
            if task['state'] not in sources:
                raise exception.InvalidState(
                    kind='task', resource_id=task_id, state=task['state'],
                    action=event)
            raise exception.TaskNotOwned(task_id=task_id,
                                         holder=task['owner'] or 'nobody',
                                         owner=owner)
        return task

    def orphaned_tasks(self, now: datetime.datetime, *,
                       pending_seconds: float = ORPHAN_PENDING_SECONDS,
                       restarted_owner: str | None = None) -> list[dict]:
        """Tasks no conductor is working on: for recovery to claim.

        PENDING ones created ``pending_seconds`` before ``now`` (their cast
        was lost) and RUNNING ones whose lease expired or that have no
        owner (their conductor died).  ``restarted_owner``: a conductor
        that has just started names itself, and the RUNNING tasks its
        previous run held are listed at once, whatever their lease says.
        """
        now = _naive_utc(now)
        stale = now - datetime.timedelta(seconds=pending_seconds)
        dead_owner = sa.or_(_TASKS.c.owner.is_(None),
                            _TASKS.c.lease_expires_at.is_(None),
                            _TASKS.c.lease_expires_at <= now)
        if restarted_owner is not None:
            dead_owner = sa.or_(dead_owner,
                                _TASKS.c.owner == restarted_owner)
        query = sa.select(_TASKS).where(sa.or_(
            sa.and_(_TASKS.c.state == states.PENDING,
                    _TASKS.c.created_at <= stale),
            sa.and_(_TASKS.c.state == states.RUNNING, dead_owner))
        ).order_by(_TASKS.c.created_at, _TASKS.c.id)
        with engines.reader(self._engine) as conn:
            return [self._row(row) for row in conn.execute(query)]


def _has_roles(column: sa.Column, value: Any) -> sa.ColumnElement:
    """Nodes having every role in ``value`` (a role or a list of them)."""
    wanted = [value] if isinstance(value, str) else list(value)
    clauses = []
    for role in wanted:
        if role not in ROLES:
            raise exception.InvalidInput(
                reason='unknown node role %r; known: %s'
                       % (role, ', '.join(sorted(ROLES))))
        # Stored sorted and comma-separated: the role alone, first, last
        # or in between.  Matched as text, bypassing the list type.
        text = sa.type_coerce(column, sa.String)
        clauses.append(sa.or_(text == role, text.like(role + ',%'),
                              text.like('%,' + role),
                              text.like('%,' + role + ',%')))
    return sa.and_(*clauses)


def _ordering(table: sa.Table, column: sa.Column,
              sort_dir: str) -> list[sa.ColumnElement]:
    """ORDER BY for (column, id), NULLs last ascending on every backend."""
    descending = sort_dir == 'desc'
    order = []
    if column.nullable:
        nulls = sa.case((column.is_(None), 1), else_=0)
        order.append(nulls.desc() if descending else nulls.asc())
    if column is not table.c.id:
        order.append(column.desc() if descending else column.asc())
    order.append(table.c.id.desc() if descending else table.c.id.asc())
    return order


def _after(table: sa.Table, column: sa.Column, sort_dir: str,
           value: Any, key: Any) -> sa.ColumnElement:
    """Rows after the one with (``value``, ``key``) in the ordering."""
    ident = table.c.id
    beyond = (ident < key) if sort_dir == 'desc' else (ident > key)
    if column is ident:
        return beyond
    if sort_dir == 'asc':
        if value is None:
            return sa.and_(column.is_(None), beyond)
        return sa.or_(column > value,
                      sa.and_(column == value, beyond),
                      column.is_(None))
    if value is None:
        return sa.or_(column.is_not(None),
                      sa.and_(column.is_(None), beyond))
    return sa.or_(column < value, sa.and_(column == value, beyond))
