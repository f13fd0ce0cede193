"""Tables of the control-plane database (schema ``control``).

Nodes, vHSM groups and their vHSMs, services and their instances, the
associations between instances and vHSMs, service credentials, published
images, scaling policies and tasks,
as ``docs/control-plane.md`` lists them.  Nothing secret is stored here:
service credentials are kept as SHA-256 hashes only, and task parameters
never carry secrets.

Timestamps are naive ``datetime`` values in UTC (as in the keystore), and
MySQL columns are ``DATETIME(6)`` so a value read back equals the value
written.  JSON values are kept as text holding JSON, which every backend
stores alike; ``JSONText`` encodes and decodes them.

``db_migrations/control/versions`` must create exactly these tables; the
models-versus-migrations tests check it on every backend.
"""

import datetime
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from cryptocloud.common import states

# MySQL's plain DATETIME drops microseconds; keep them so that a record
# read back equals the one written.
DateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')

# Binary collation on MySQL: ids, names and hostnames compare and sort
# exactly as on PostgreSQL and SQLite.
_TABLE_ARGS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4',
               'mysql_collate': 'utf8mb4_bin'}

# Lengths shared by several tables.
UUID_LEN = 36
PROJECT_LEN = 64
HOST_LEN = 255
NAME_LEN = 255
STATE_LEN = 16
REF_LEN = 255


class JSONText(sa.types.TypeDecorator):
    """A JSON value stored as text (portable, unlike native JSON types)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> str | None:
        """Encode the value; None stays SQL NULL."""
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, separators=(',', ':'))

    def process_result_value(self, value: str | None, dialect) -> Any:
        """Decode the stored text; SQL NULL is None."""
        if value is None:
            return None
        return json.loads(value)


class RoleList(sa.types.TypeDecorator):
    """A node's roles: a list in Python, ``device,service`` in the row."""

    impl = sa.String(32)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> str | None:
        """Join a list of roles (sorted, so one set has one spelling)."""
        if value is None or isinstance(value, str):
            return value
        return ','.join(sorted(set(value)))

    def process_result_value(self, value: str | None, dialect
                             ) -> list[str] | None:
        """Split the stored roles into a list."""
        if value is None:
            return None
        return [role for role in value.split(',') if role]


class Base(DeclarativeBase):
    """Declarative base of the control schema (its own metadata)."""


def _created_at() -> Mapped[datetime.datetime]:
    return mapped_column(DateTime, nullable=False)


def _updated_at() -> Mapped[datetime.datetime]:
    return mapped_column(DateTime, nullable=False)


class Node(Base):
    """A compute node that runs vHSMs (device) and/or instances (service)."""

    __tablename__ = 'nodes'
    __table_args__ = (
        sa.UniqueConstraint('hostname', name='uniq_nodes0hostname'),
        sa.Index('ix_nodes_state', 'state'),
        _TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True,
                                    autoincrement=True)
    hostname: Mapped[str] = mapped_column(sa.String(HOST_LEN),
                                          nullable=False)
    address: Mapped[str] = mapped_column(sa.String(HOST_LEN), nullable=False)
    roles: Mapped[list[str]] = mapped_column(RoleList, nullable=False)
    vhsm_capacity: Mapped[int] = mapped_column(sa.Integer, nullable=False,
                                               default=0)
    instance_capacity: Mapped[int] = mapped_column(sa.Integer,
                                                   nullable=False, default=0)
    # The operator's switch; liveness is ``state``.
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False,
                                          default=True)
    state: Mapped[str] = mapped_column(sa.String(STATE_LEN), nullable=False,
                                       default=states.NODE_UP)
    last_heartbeat: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, nullable=True)
    load: Mapped[Any] = mapped_column(JSONText, nullable=True)
    created_at: Mapped[datetime.datetime] = _created_at()
    updated_at: Mapped[datetime.datetime] = _updated_at()


class VHSMGroup(Base):
    """A group of vHSMs sharing one domain key and one keystore."""

    __tablename__ = 'vhsm_groups'
    __table_args__ = (
        sa.Index('ix_vhsm_groups_project_id', 'project_id'),
        sa.Index('ix_vhsm_groups_state', 'state'),
        _TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(sa.String(UUID_LEN), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(NAME_LEN),
                                             nullable=True)
    project_id: Mapped[str] = mapped_column(sa.String(PROJECT_LEN),
                                            nullable=False)
    target_size: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # The image its workloads run from, pinned by digest when the row
    # was created (null: none was published; the process driver needs
    # none).
    image_ref: Mapped[str | None] = mapped_column(sa.String(REF_LEN),
                                                  nullable=True)
    state: Mapped[str] = mapped_column(sa.String(STATE_LEN), nullable=False,
                                       default=states.CREATING)
    status_reason: Mapped[str | None] = mapped_column(sa.Text,
                                                      nullable=True)
    created_at: Mapped[datetime.datetime] = _created_at()
    updated_at: Mapped[datetime.datetime] = _updated_at()


class VHSM(Base):
    """One vHSM workload of a group, placed on a device node."""

    __tablename__ = 'vhsms'
    __table_args__ = (
        sa.Index('ix_vhsms_group_id', 'group_id'),
        sa.Index('ix_vhsms_node_id', 'node_id'),
        sa.Index('ix_vhsms_state', 'state'),
        _TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(sa.String(UUID_LEN), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        sa.String(UUID_LEN),
        sa.ForeignKey('vhsm_groups.id', name='fk_vhsms_group_id'),
        nullable=False)
    # Null until the scheduler has picked a node.
    node_id: Mapped[int | None] = mapped_column(
        sa.Integer, sa.ForeignKey('nodes.id', name='fk_vhsms_node_id'),
        nullable=True)
    host: Mapped[str | None] = mapped_column(sa.String(HOST_LEN),
                                             nullable=True)
    port: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    status_port: Mapped[int | None] = mapped_column(sa.Integer,
                                                    nullable=True)
    state: Mapped[str] = mapped_column(sa.String(STATE_LEN), nullable=False,
                                       default=states.BUILDING)
    status_reason: Mapped[str | None] = mapped_column(sa.Text,
                                                      nullable=True)
    workload_ref: Mapped[str | None] = mapped_column(sa.String(REF_LEN),
                                                     nullable=True)
    # The latest load figures its node reported ({requests_per_s,
    # in_flight, p95_ms, cpu}) and when they arrived.
    load: Mapped[Any] = mapped_column(JSONText, nullable=True)
    load_updated_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, nullable=True)
    created_at: Mapped[datetime.datetime] = _created_at()
    updated_at: Mapped[datetime.datetime] = _updated_at()


class Service(Base):
    """A crypto service: instances in front of one vHSM group."""

    __tablename__ = 'services'
    __table_args__ = (
        sa.UniqueConstraint('frontend_port',
                            name='uniq_services0frontend_port'),
        sa.Index('ix_services_project_id', 'project_id'),
        sa.Index('ix_services_group_id', 'group_id'),
        sa.Index('ix_services_state', 'state'),
        _TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(sa.String(UUID_LEN), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(NAME_LEN),
                                             nullable=True)
    project_id: Mapped[str] = mapped_column(sa.String(PROJECT_LEN),
                                            nullable=False)
    group_id: Mapped[str] = mapped_column(
        sa.String(UUID_LEN),
        sa.ForeignKey('vhsm_groups.id', name='fk_services_group_id'),
        nullable=False)
    target_instances: Mapped[int] = mapped_column(sa.Integer,
                                                  nullable=False)
    replicas: Mapped[int] = mapped_column(sa.Integer, nullable=False,
                                          default=0)
    algorithms: Mapped[Any] = mapped_column(JSONText, nullable=True)
    # 'cold': replicas are prepared, started on failover; 'hot': running.
    standby: Mapped[str] = mapped_column(sa.String(8), nullable=False,
                                         default='cold',
                                         server_default='cold')
    # The image its workloads run from, pinned by digest when the row
    # was created (null: none was published; the process driver needs
    # none).
    image_ref: Mapped[str | None] = mapped_column(sa.String(REF_LEN),
                                                  nullable=True)
    state: Mapped[str] = mapped_column(sa.String(STATE_LEN), nullable=False,
                                       default=states.CREATING)
    status_reason: Mapped[str | None] = mapped_column(sa.Text,
                                                      nullable=True)
    endpoint_host: Mapped[str | None] = mapped_column(sa.String(HOST_LEN),
                                                      nullable=True)
    endpoint_port: Mapped[int | None] = mapped_column(sa.Integer,
                                                      nullable=True)
    # The proxy's port for this service ([proxy] driver = haproxy).
    frontend_port: Mapped[int | None] = mapped_column(sa.Integer,
                                                      nullable=True)
    created_at: Mapped[datetime.datetime] = _created_at()
    updated_at: Mapped[datetime.datetime] = _updated_at()


class ServiceInstance(Base):
    """One instance (primary or replica) of a service, on a service node."""

    __tablename__ = 'service_instances'
    __table_args__ = (
        sa.Index('ix_service_instances_service_id', 'service_id'),
        sa.Index('ix_service_instances_node_id', 'node_id'),
        sa.Index('ix_service_instances_state', 'state'),
        _TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(sa.String(UUID_LEN), primary_key=True)
    service_id: Mapped[str] = mapped_column(
        sa.String(UUID_LEN),
        sa.ForeignKey('services.id', name='fk_service_instances_service_id'),
        nullable=False)
    # Null until the scheduler has picked a node.
    node_id: Mapped[int | None] = mapped_column(
        sa.Integer,
        sa.ForeignKey('nodes.id', name='fk_service_instances_node_id'),
        nullable=True)
    host: Mapped[str | None] = mapped_column(sa.String(HOST_LEN),
                                             nullable=True)
    port: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    # 'primary' (serves) or 'replica' (stands by for ``replica_of``).
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False,
                                      default='primary')
    replica_of: Mapped[str | None] = mapped_column(sa.String(UUID_LEN),
                                                   nullable=True)
    state: Mapped[str] = mapped_column(sa.String(STATE_LEN), nullable=False,
                                       default=states.BUILDING)
    status_reason: Mapped[str | None] = mapped_column(sa.Text,
                                                      nullable=True)
    workload_ref: Mapped[str | None] = mapped_column(sa.String(REF_LEN),
                                                     nullable=True)
    # The latest load figures its node reported ({requests_per_s,
    # in_flight, p95_ms, cpu}) and when they arrived.
    load: Mapped[Any] = mapped_column(JSONText, nullable=True)
    load_updated_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, nullable=True)
    created_at: Mapped[datetime.datetime] = _created_at()
    updated_at: Mapped[datetime.datetime] = _updated_at()


class Association(Base):
    """A service instance reaches this vHSM."""

    __tablename__ = 'associations'
    __table_args__ = (
        # Also serves as the index of the vhsm_id foreign key.
        sa.UniqueConstraint('vhsm_id', 'instance_id',
                            name='uniq_associations0vhsm_id0instance_id'),
        sa.Index('ix_associations_instance_id', 'instance_id'),
        _TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True,
                                    autoincrement=True)
    # An association means nothing once either end is gone, so deleting
    # a vHSM or an instance row takes its associations with it.
    vhsm_id: Mapped[str] = mapped_column(
        sa.String(UUID_LEN),
        sa.ForeignKey('vhsms.id', ondelete='CASCADE',
                      name='fk_associations_vhsm_id'),
        nullable=False)
    instance_id: Mapped[str] = mapped_column(
        sa.String(UUID_LEN),
        sa.ForeignKey('service_instances.id', ondelete='CASCADE',
                      name='fk_associations_instance_id'),
        nullable=False)
    created_at: Mapped[datetime.datetime] = _created_at()


class ServiceCredential(Base):
    """A tenant credential of a service: only the SHA-256 of its secret."""

    __tablename__ = 'service_credentials'
    __table_args__ = (
        sa.Index('ix_service_credentials_service_id', 'service_id'),
        sa.Index('ix_service_credentials_project_id', 'project_id'),
        _TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    # Credentials die with their service.
    service_id: Mapped[str] = mapped_column(
        sa.String(UUID_LEN),
        sa.ForeignKey('services.id', ondelete='CASCADE',
                      name='fk_service_credentials_service_id'),
        nullable=False)
    project_id: Mapped[str] = mapped_column(sa.String(PROJECT_LEN),
                                            nullable=False)
    secret_sha256: Mapped[str] = mapped_column(sa.String(64),
                                               nullable=False)
    created_at: Mapped[datetime.datetime] = _created_at()


class Image(Base):
    """A vHSM or crypto-service image published to the registry."""

    __tablename__ = 'images'
    __table_args__ = (
        sa.UniqueConstraint('kind', 'digest', name='uniq_images0kind0digest'),
        sa.Index('ix_images_kind_created_at', 'kind', 'created_at'),
        _TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(sa.String(UUID_LEN), primary_key=True)
    # 'vhsm' or 'cryptoservice'
    kind: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    repository: Mapped[str] = mapped_column(sa.String(NAME_LEN),
                                            nullable=False)
    tag: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    digest: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    # registry/repository@digest: what compute nodes pull.
    reference: Mapped[str] = mapped_column(sa.String(REF_LEN),
                                           nullable=False)
    version: Mapped[str | None] = mapped_column(sa.String(128),
                                                nullable=True)
    revision: Mapped[str | None] = mapped_column(sa.String(64),
                                                 nullable=True)
    size: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    created_at: Mapped[datetime.datetime] = _created_at()
    updated_at: Mapped[datetime.datetime] = _updated_at()


class Task(Base):
    """One mutating request and its progress through a conductor."""

    __tablename__ = 'tasks'
    __table_args__ = (
        # Recovery looks for PENDING tasks and RUNNING ones whose lease
        # expired; the leading column also serves filters on state.
        sa.Index('ix_tasks_state_lease_expires_at',
                 'state', 'lease_expires_at'),
        sa.Index('ix_tasks_project_id', 'project_id'),
        sa.Index('ix_tasks_resource_id', 'resource_id'),
        _TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(sa.String(UUID_LEN), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(sa.String(REF_LEN),
                                                   nullable=True)
    project_id: Mapped[str | None] = mapped_column(sa.String(PROJECT_LEN),
                                                   nullable=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(PROJECT_LEN),
                                                nullable=True)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    resource_type: Mapped[str | None] = mapped_column(sa.String(32),
                                                      nullable=True)
    resource_id: Mapped[str | None] = mapped_column(sa.String(UUID_LEN),
                                                    nullable=True)
    params: Mapped[Any] = mapped_column(JSONText, nullable=True)
    state: Mapped[str] = mapped_column(sa.String(STATE_LEN), nullable=False,
                                       default=states.PENDING)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # The conductor host holding the task, while its lease lasts.
    owner: Mapped[str | None] = mapped_column(sa.String(HOST_LEN),
                                              nullable=True)
    lease_expires_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, nullable=True)
    created_at: Mapped[datetime.datetime] = _created_at()
    updated_at: Mapped[datetime.datetime] = _updated_at()
    started_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, nullable=True)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, nullable=True)


class ScalingPolicy(Base):
    """How the balancer scales one service with its business pressure."""

    __tablename__ = 'scaling_policies'
    __table_args__ = (
        # Also serves as the index of the service_id foreign key.
        sa.UniqueConstraint('service_id',
                            name='uniq_scaling_policies0service_id'),
        sa.Index('ix_scaling_policies_project_id', 'project_id'),
        _TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(sa.String(UUID_LEN), primary_key=True)
    # A policy means nothing without its service.
    service_id: Mapped[str] = mapped_column(
        sa.String(UUID_LEN),
        sa.ForeignKey('services.id', ondelete='CASCADE',
                      name='fk_scaling_policies_service_id'),
        nullable=False)
    project_id: Mapped[str] = mapped_column(sa.String(PROJECT_LEN),
                                            nullable=False)
    # requests_per_s, in_flight, p95_ms or cpu: per instance, averaged.
    metric: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    lower: Mapped[float] = mapped_column(sa.Double, nullable=False)
    upper: Mapped[float] = mapped_column(sa.Double, nullable=False)
    add_instances: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    remove_instances: Mapped[int] = mapped_column(sa.Integer,
                                                  nullable=False)
    add_vhsms: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    remove_vhsms: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    min_instances: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    max_instances: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    min_vhsms: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # Null: vHSMs are never added (add_vhsms is 0).
    max_vhsms: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    cooldown_seconds: Mapped[int] = mapped_column(sa.Integer,
                                                  nullable=False)
    window_seconds: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False,
                                          default=True)
    # Bumped by every evaluation and every change of the policy: the
    # compare-and-swap that lets one conductor only act on a pass.
    generation: Mapped[int] = mapped_column(sa.Integer, nullable=False,
                                            default=0)
    # The pressure points of the current evaluation window (JSON).
    pressure: Mapped[Any] = mapped_column(JSONText, nullable=True)
    evaluated_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, nullable=True)
    last_decision: Mapped[str | None] = mapped_column(sa.String(16),
                                                      nullable=True)
    last_reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    last_scaled_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, nullable=True)
    last_task_id: Mapped[str | None] = mapped_column(sa.String(UUID_LEN),
                                                     nullable=True)
    created_at: Mapped[datetime.datetime] = _created_at()
    updated_at: Mapped[datetime.datetime] = _updated_at()


metadata = Base.metadata
