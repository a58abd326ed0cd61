"""dynamic client registration: initial and registration access tokens

Revision ID: 0018_admin_registration
Revises: 0015_ciba
Create Date: 2026-12-02 05:06:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sso.dbtypes

revision = '0018_admin_registration'
down_revision = '0015_ciba'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registration_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('for_user_id', sa.Integer(), nullable=True),
    sa.Column('label', sa.String(length=128), nullable=True),
    sa.Column('created_by', sa.String(length=128), nullable=True),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.Column('used_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_registration_tokens_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['for_user_id'], ['users.id'], name=op.f('fk_registration_tokens_for_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registration_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_registration_tokens_token_hash'))
    )
    with op.batch_alter_table('registration_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registration_tokens_client_id'), ['client_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('registration_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registration_tokens_client_id'))

    op.drop_table('registration_tokens')
