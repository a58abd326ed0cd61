"""qr phishing defences and CIBA: an app may refuse QR approvals from a phone on another
network; an app's CIBA delivery mode (poll, ping) and ping notification endpoint

Revision ID: 0015_ciba
Revises: 0017_reliability
Create Date: 2026-12-02 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015_ciba'
down_revision = '0017_reliability'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('qr_refuse_remote', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('ciba_mode', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('ciba_notification_endpoint', sa.String(length=512),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('ciba_notification_endpoint')
        batch_op.drop_column('ciba_mode')
        batch_op.drop_column('qr_refuse_remote')
