"""app accounts: per-app activation of users

Revision ID: 0007_apps
Revises: 0004_outbox
Create Date: 2026-11-29 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sso.dbtypes

revision = '0007_apps'
down_revision = '0006_accounts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('requested_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.Column('activated_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.Column('decided_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.Column('decided_by', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_app_accounts_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_app_accounts_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_accounts')),
    sa.UniqueConstraint('user_id', 'client_id', name=op.f('uq_app_accounts_user_id'))
    )
    with op.batch_alter_table('app_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_app_accounts_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_app_accounts_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('app_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_app_accounts_user_id'))
        batch_op.drop_index(batch_op.f('ix_app_accounts_client_id'))

    op.drop_table('app_accounts')
