"""branding: each app's Chinese name and logo URI

Revision ID: 0011_branding
Revises: 0008_one_door
Create Date: 2026-12-02 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011_branding'
down_revision = '0008_one_door'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_zh', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('logo_uri', sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('logo_uri')
        batch_op.drop_column('name_zh')
