"""Keystore: domain keys, tenant keys and their wrapped versions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the model definitions as they were at this revision:
# migrations never import the models, which keep changing.
_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')
_TABLE_ARGS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4',
               'mysql_collate': 'utf8mb4_bin'}


def upgrade() -> None:
    op.create_table(
        'domain_keys',
        sa.Column('group_id', sa.String(64), primary_key=True),
        sa.Column('sealed', sa.LargeBinary, nullable=False),
        sa.Column('created_at', _DATETIME, nullable=False),
        **_TABLE_ARGS,
    )
    op.create_table(
        'keys',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('group_id', sa.String(64), nullable=False),
        sa.Column('project_id', sa.String(64), nullable=False),
        sa.Column('name', sa.String(255), nullable=True),
        sa.Column('description', sa.String(255), nullable=True),
        sa.Column('algorithm', sa.String(32), nullable=False),
        sa.Column('purpose', sa.String(16), nullable=False),
        sa.Column('state', sa.String(20), nullable=False),
        sa.Column('exportable', sa.Boolean, nullable=False),
        sa.Column('latest_version', sa.Integer, nullable=False),
        sa.Column('min_decryption_version', sa.Integer, nullable=False),
        sa.Column('created_at', _DATETIME, nullable=False),
        sa.Column('updated_at', _DATETIME, nullable=False),
        sa.Column('deletion_date', _DATETIME, nullable=True),
        sa.UniqueConstraint('group_id', 'project_id', 'name',
                            name='uniq_keys0group_id0project_id0name'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_keys_group_id_project_id_id', 'keys',
                    ['group_id', 'project_id', 'id'])
    op.create_table(
        'key_versions',
        sa.Column('key_id', sa.String(36), primary_key=True),
        sa.Column('version', sa.Integer, primary_key=True,
                  autoincrement=False),
        sa.Column('wrapped', sa.LargeBinary, nullable=False),
        sa.Column('public_key', sa.Text, nullable=True),
        sa.Column('created_at', _DATETIME, nullable=False),
        sa.ForeignKeyConstraint(['key_id'], ['keys.id'], ondelete='CASCADE',
                                name='fk_key_versions_key_id_keys'),
        **_TABLE_ARGS,
    )


def downgrade() -> None:
    op.drop_table('key_versions')
    op.drop_index('ix_keys_group_id_project_id_id', table_name='keys')
    op.drop_table('keys')
    op.drop_table('domain_keys')
