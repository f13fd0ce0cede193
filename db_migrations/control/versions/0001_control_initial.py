"""Control plane: nodes, vHSM groups, services, instances, tasks.

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
# migrations never import the models, which keep changing.  JSON values
# and a node's roles are plain text here; the models' types only encode
# and decode them.
_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')
_TABLE_ARGS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4',
               'mysql_collate': 'utf8mb4_bin'}


def _timestamps(updated: bool = True) -> list[sa.Column]:
    columns = [sa.Column('created_at', _DATETIME, nullable=False)]
    if updated:
        columns.append(sa.Column('updated_at', _DATETIME, nullable=False))
    return columns


def upgrade() -> None:
    op.create_table(
        'nodes',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('hostname', sa.String(255), nullable=False),
        sa.Column('address', sa.String(255), nullable=False),
        sa.Column('roles', sa.String(32), nullable=False),
        sa.Column('vhsm_capacity', sa.Integer, nullable=False),
        sa.Column('instance_capacity', sa.Integer, nullable=False),
        sa.Column('enabled', sa.Boolean, nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('last_heartbeat', _DATETIME, nullable=True),
        sa.Column('load', sa.Text, nullable=True),
        *_timestamps(),
        sa.UniqueConstraint('hostname', name='uniq_nodes0hostname'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_nodes_state', 'nodes', ['state'])

    op.create_table(
        'vhsm_groups',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('name', sa.String(255), nullable=True),
        sa.Column('project_id', sa.String(64), nullable=False),
        sa.Column('target_size', sa.Integer, nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('status_reason', sa.Text, nullable=True),
        *_timestamps(),
        **_TABLE_ARGS,
    )
    op.create_index('ix_vhsm_groups_project_id', 'vhsm_groups',
                    ['project_id'])
    op.create_index('ix_vhsm_groups_state', 'vhsm_groups', ['state'])

    op.create_table(
        'vhsms',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('group_id', sa.String(36), nullable=False),
        sa.Column('node_id', sa.Integer, nullable=True),
        sa.Column('host', sa.String(255), nullable=True),
        sa.Column('port', sa.Integer, nullable=True),
        sa.Column('status_port', sa.Integer, nullable=True),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('status_reason', sa.Text, nullable=True),
        sa.Column('workload_ref', sa.String(255), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(['group_id'], ['vhsm_groups.id'],
                                name='fk_vhsms_group_id'),
        sa.ForeignKeyConstraint(['node_id'], ['nodes.id'],
                                name='fk_vhsms_node_id'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_vhsms_group_id', 'vhsms', ['group_id'])
    op.create_index('ix_vhsms_node_id', 'vhsms', ['node_id'])
    op.create_index('ix_vhsms_state', 'vhsms', ['state'])

    op.create_table(
        'services',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('name', sa.String(255), nullable=True),
        sa.Column('project_id', sa.String(64), nullable=False),
        sa.Column('group_id', sa.String(36), nullable=False),
        sa.Column('target_instances', sa.Integer, nullable=False),
        sa.Column('replicas', sa.Integer, nullable=False),
        sa.Column('algorithms', sa.Text, nullable=True),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('status_reason', sa.Text, nullable=True),
        sa.Column('endpoint_host', sa.String(255), nullable=True),
        sa.Column('endpoint_port', sa.Integer, nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(['group_id'], ['vhsm_groups.id'],
                                name='fk_services_group_id'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_services_project_id', 'services', ['project_id'])
    op.create_index('ix_services_group_id', 'services', ['group_id'])
    op.create_index('ix_services_state', 'services', ['state'])

    op.create_table(
        'service_instances',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('service_id', sa.String(36), nullable=False),
        sa.Column('node_id', sa.Integer, nullable=True),
        sa.Column('host', sa.String(255), nullable=True),
        sa.Column('port', sa.Integer, nullable=True),
        sa.Column('role', sa.String(16), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('status_reason', sa.Text, nullable=True),
        sa.Column('workload_ref', sa.String(255), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'],
                                name='fk_service_instances_service_id'),
        sa.ForeignKeyConstraint(['node_id'], ['nodes.id'],
                                name='fk_service_instances_node_id'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_service_instances_service_id', 'service_instances',
                    ['service_id'])
    op.create_index('ix_service_instances_node_id', 'service_instances',
                    ['node_id'])
    op.create_index('ix_service_instances_state', 'service_instances',
                    ['state'])

    op.create_table(
        'associations',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('vhsm_id', sa.String(36), nullable=False),
        sa.Column('instance_id', sa.String(36), nullable=False),
        *_timestamps(updated=False),
        sa.UniqueConstraint('vhsm_id', 'instance_id',
                            name='uniq_associations0vhsm_id0instance_id'),
        sa.ForeignKeyConstraint(['vhsm_id'], ['vhsms.id'],
                                ondelete='CASCADE',
                                name='fk_associations_vhsm_id'),
        sa.ForeignKeyConstraint(['instance_id'], ['service_instances.id'],
                                ondelete='CASCADE',
                                name='fk_associations_instance_id'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_associations_instance_id', 'associations',
                    ['instance_id'])

    op.create_table(
        'service_credentials',
        sa.Column('id', sa.String(32), primary_key=True),
        sa.Column('service_id', sa.String(36), nullable=False),
        sa.Column('project_id', sa.String(64), nullable=False),
        sa.Column('secret_sha256', sa.String(64), nullable=False),
        *_timestamps(updated=False),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'],
                                ondelete='CASCADE',
                                name='fk_service_credentials_service_id'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_service_credentials_service_id',
                    'service_credentials', ['service_id'])
    op.create_index('ix_service_credentials_project_id',
                    'service_credentials', ['project_id'])

    op.create_table(
        'tasks',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('request_id', sa.String(255), nullable=True),
        sa.Column('project_id', sa.String(64), nullable=True),
        sa.Column('user_id', sa.String(64), nullable=True),
        sa.Column('action', sa.String(64), nullable=False),
        sa.Column('resource_type', sa.String(32), nullable=True),
        sa.Column('resource_id', sa.String(36), nullable=True),
        sa.Column('params', sa.Text, nullable=True),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('error', sa.Text, nullable=True),
        sa.Column('owner', sa.String(255), nullable=True),
        sa.Column('lease_expires_at', _DATETIME, nullable=True),
        *_timestamps(),
        sa.Column('started_at', _DATETIME, nullable=True),
        sa.Column('finished_at', _DATETIME, nullable=True),
        **_TABLE_ARGS,
    )
    op.create_index('ix_tasks_state_lease_expires_at', 'tasks',
                    ['state', 'lease_expires_at'])
    op.create_index('ix_tasks_project_id', 'tasks', ['project_id'])
    op.create_index('ix_tasks_resource_id', 'tasks', ['resource_id'])


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes.
    for table in ('tasks', 'service_credentials', 'associations',
                  'service_instances', 'services', 'vhsms', 'vhsm_groups',
                  'nodes'):
        op.drop_table(table)
