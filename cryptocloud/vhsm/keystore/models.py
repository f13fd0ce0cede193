"""Tables of the vHSM keystore database.

The keystore holds only opaque blobs: the group's domain key sealed under
the operator master key, and each tenant key version wrapped under the
domain key.  Nothing here is ever plaintext key material.

Timestamps are naive ``datetime`` values in UTC.  Naive, because MySQL
``DATETIME`` and SQLite have no time zone and a value read back must
compare equal to the value written on every backend.

``db_migrations/keystore/versions`` must create exactly these tables; the
models-versus-migrations tests check it on every backend.
"""

import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

# MySQL's plain DATETIME drops microseconds; keep them so that a record
# read back equals the one written.
DateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')

# Binary collation on MySQL: names and ids compare and sort exactly as on
# PostgreSQL and SQLite ('Key' and 'key' are two names everywhere).
_TABLE_ARGS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4',
               'mysql_collate': 'utf8mb4_bin'}


class Base(DeclarativeBase):
    """Declarative base of the keystore schema (its own metadata)."""


class DomainKey(Base):
    """The sealed domain key of one vHSM group."""

    __tablename__ = 'domain_keys'
    __table_args__ = (_TABLE_ARGS,)

    group_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, nullable=False)


class Key(Base):
    """Metadata of one tenant key; its material is in key_versions."""

    __tablename__ = 'keys'
    __table_args__ = (
        # Several unnamed keys in a project are fine: NULLs never clash in
        # a unique constraint on any of the three backends.
        sa.UniqueConstraint('group_id', 'project_id', 'name',
                            name='uniq_keys0group_id0project_id0name'),
        # Listing a project's keys is ordered by id.
        sa.Index('ix_keys_group_id_project_id_id',
                 'group_id', 'project_id', 'id'),
        _TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    project_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(255),
                                                    nullable=True)
    algorithm: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    purpose: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    state: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    exportable: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    latest_version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    min_decryption_version: Mapped[int] = mapped_column(sa.Integer,
                                                        nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, nullable=False)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, nullable=False)
    deletion_date: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, nullable=True)


class KeyVersion(Base):
    """One version of a tenant key, wrapped under the domain key."""

    __tablename__ = 'key_versions'
    __table_args__ = (_TABLE_ARGS,)

    key_id: Mapped[str] = mapped_column(
        sa.String(36),
        sa.ForeignKey('keys.id', ondelete='CASCADE',
                      name='fk_key_versions_key_id_keys'),
        primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True,
                                         autoincrement=False)
    # BLOB on MySQL holds 64 KiB; an RSA-4096 PKCS#8 key wrapped is ~2.5 KB.
    wrapped: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    public_key: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, nullable=False)


metadata = Base.metadata
