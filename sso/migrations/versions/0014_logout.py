"""logout: back- and front-channel logout per client, apps reached per session, devices

Revision ID: 0014_logout
Revises: 0013_request_id
Create Date: 2026-12-02 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sso.dbtypes

revision = '0014_logout'
down_revision = "0013_request_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backchannel_logout_uri', sa.String(length=512),
                                      nullable=True))
        batch_op.add_column(sa.Column('backchannel_logout_session_required', sa.Boolean(),
                                      server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('frontchannel_logout_uri', sa.String(length=512),
                                      nullable=True))
        batch_op.add_column(sa.Column('frontchannel_logout_session_required', sa.Boolean(),
                                      server_default=sa.true(), nullable=False))
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_ids', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('end_reason', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('device_id', sa.Integer(), nullable=True))
    op.create_table(
        'user_devices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('first_seen_at', sso.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('last_seen_at', sso.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('ip', sa.String(length=45), nullable=True),
        sa.Column('user_agent', sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_user_devices_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_devices')),
        sa.UniqueConstraint('user_id', 'token_hash',
                            name=op.f('uq_user_devices_user_id')),
    )
    with op.batch_alter_table('user_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_devices_user_id'), ['user_id'], unique=False)
    op.create_table(
        'session_settings',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('new_device_alert', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_session_settings_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_session_settings')),
    )


def downgrade() -> None:
    op.drop_table('session_settings')
    with op.batch_alter_table('user_devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_devices_user_id'))
    op.drop_table('user_devices')
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.drop_column('device_id')
        batch_op.drop_column('end_reason')
        batch_op.drop_column('client_ids')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('frontchannel_logout_session_required')
        batch_op.drop_column('frontchannel_logout_uri')
        batch_op.drop_column('backchannel_logout_session_required')
        batch_op.drop_column('backchannel_logout_uri')
