"""Replicas (which primary a replica stands by for, hot or cold) and the
proxy's frontend port of each service.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('service_instances') as batch:
        batch.add_column(sa.Column('replica_of', sa.String(36),
                                   nullable=True))
    with op.batch_alter_table('services') as batch:
        batch.add_column(sa.Column('standby', sa.String(8), nullable=False,
                                   server_default='cold'))
        batch.add_column(sa.Column('frontend_port', sa.Integer,
                                   nullable=True))
        batch.create_unique_constraint('uniq_services0frontend_port',
                                       ['frontend_port'])


def downgrade() -> None:
    with op.batch_alter_table('services') as batch:
        batch.drop_constraint('uniq_services0frontend_port', type_='unique')
        batch.drop_column('frontend_port')
        batch.drop_column('standby')
    with op.batch_alter_table('service_instances') as batch:
        batch.drop_column('replica_of')
