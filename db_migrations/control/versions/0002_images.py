"""Published images, and the image each group and service pins.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 00:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')
_TABLE_ARGS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4',
               'mysql_collate': 'utf8mb4_bin'}


def upgrade() -> None:
    op.create_table(
        'images',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('repository', sa.String(255), nullable=False),
        sa.Column('tag', sa.String(128), nullable=False),
        sa.Column('digest', sa.String(80), nullable=False),
        sa.Column('reference', sa.String(255), nullable=False),
        sa.Column('version', sa.String(128), nullable=True),
        sa.Column('revision', sa.String(64), nullable=True),
        sa.Column('size', sa.BigInteger, nullable=True),
        sa.Column('created_at', _DATETIME, nullable=False),
        sa.Column('updated_at', _DATETIME, nullable=False),
        sa.UniqueConstraint('kind', 'digest',
                            name='uniq_images0kind0digest'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_images_kind_created_at', 'images',
                    ['kind', 'created_at'])
    for table in ('vhsm_groups', 'services'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('image_ref', sa.String(255),
                                       nullable=True))


def downgrade() -> None:
    for table in ('services', 'vhsm_groups'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('image_ref')
    op.drop_index('ix_images_kind_created_at', table_name='images')
    op.drop_table('images')
