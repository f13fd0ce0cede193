"""Pressure-based scaling: per-workload load and scaling policies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 00:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# Frozen copies of the model definitions at this revision (see 0001).
_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')
_TABLE_ARGS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4',
               'mysql_collate': 'utf8mb4_bin'}
_WORKLOAD_TABLES = ('vhsms', 'service_instances')


def upgrade() -> None:
    for table in _WORKLOAD_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('load', sa.Text, nullable=True))
            batch.add_column(sa.Column('load_updated_at', _DATETIME,
                                       nullable=True))
    op.create_table(
        'scaling_policies',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('service_id', sa.String(36), nullable=False),
        sa.Column('project_id', sa.String(64), nullable=False),
        sa.Column('metric', sa.String(32), nullable=False),
        sa.Column('lower', sa.Double, nullable=False),
        sa.Column('upper', sa.Double, nullable=False),
        sa.Column('add_instances', sa.Integer, nullable=False),
        sa.Column('remove_instances', sa.Integer, nullable=False),
        sa.Column('add_vhsms', sa.Integer, nullable=False),
        sa.Column('remove_vhsms', sa.Integer, nullable=False),
        sa.Column('min_instances', sa.Integer, nullable=False),
        sa.Column('max_instances', sa.Integer, nullable=False),
        sa.Column('min_vhsms', sa.Integer, nullable=False),
        sa.Column('max_vhsms', sa.Integer, nullable=True),
        sa.Column('cooldown_seconds', sa.Integer, nullable=False),
        sa.Column('window_seconds', sa.Integer, nullable=False),
        sa.Column('enabled', sa.Boolean, nullable=False),
        sa.Column('generation', sa.Integer, nullable=False),
        sa.Column('pressure', sa.Text, nullable=True),
        sa.Column('evaluated_at', _DATETIME, nullable=True),
        sa.Column('last_decision', sa.String(16), nullable=True),
        sa.Column('last_reason', sa.Text, nullable=True),
        sa.Column('last_scaled_at', _DATETIME, nullable=True),
        sa.Column('last_task_id', sa.String(36), nullable=True),
        sa.Column('created_at', _DATETIME, nullable=False),
        sa.Column('updated_at', _DATETIME, nullable=False),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'],
                                ondelete='CASCADE',
                                name='fk_scaling_policies_service_id'),
        sa.UniqueConstraint('service_id',
                            name='uniq_scaling_policies0service_id'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_scaling_policies_project_id', 'scaling_policies',
                    ['project_id'])


def downgrade() -> None:
    op.drop_index('ix_scaling_policies_project_id',
                  table_name='scaling_policies')
    op.drop_table('scaling_policies')
    for table in reversed(_WORKLOAD_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('load_updated_at')
            batch.drop_column('load')
