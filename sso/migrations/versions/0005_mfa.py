"""two-step verification: TOTP, recovery codes, devices, policy

Revision ID: 0005_mfa
Revises: 0004_outbox
Create Date: 2026-11-29 18:22:22.945041
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sso.dbtypes

revision = '0005_mfa'
down_revision = '0004_outbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mfa_devices',
    sa.Column('id', sa.String(length=22), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.Column('expires_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_devices_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mfa_devices'))
    )
    with op.batch_alter_table('mfa_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mfa_devices_user_id'), ['user_id'], unique=False)

    op.create_table('mfa_recovery_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('used_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_recovery_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mfa_recovery_codes'))
    )
    with op.batch_alter_table('mfa_recovery_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mfa_recovery_codes_user_id'), ['user_id'], unique=False)

    op.create_table('mfa_totp',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('secret_encrypted', sa.Text(), nullable=False),
    sa.Column('confirmed_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.Column('last_step', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_totp_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_mfa_totp'))
    )
    op.create_table('mfa_user_requirements',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_user_requirements_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_mfa_user_requirements'))
    )
    op.create_table('mfa_role_requirements',
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['app_roles.id'], name=op.f('fk_mfa_role_requirements_role_id_app_roles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('role_id', name=op.f('pk_mfa_role_requirements'))
    )
    op.create_table('mfa_session_proofs',
    sa.Column('session_id', sa.String(length=43), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('verified_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sso_sessions.id'], name=op.f('fk_mfa_session_proofs_session_id_sso_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_mfa_session_proofs'))
    )


def downgrade() -> None:
    op.drop_table('mfa_session_proofs')
    op.drop_table('mfa_role_requirements')
    op.drop_table('mfa_user_requirements')
    op.drop_table('mfa_totp')
    with op.batch_alter_table('mfa_recovery_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mfa_recovery_codes_user_id'))

    op.drop_table('mfa_recovery_codes')
    with op.batch_alter_table('mfa_devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mfa_devices_user_id'))

    op.drop_table('mfa_devices')
