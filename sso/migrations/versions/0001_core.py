"""core: users, roles, clients, sessions, codes, tokens, audit

Revision ID: 0001_core
Revises: 
Create Date: 2026-11-22 19:01:11.976258
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sso.dbtypes

revision = '0001_core'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=254), nullable=True),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('session_id', sa.String(length=43), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_event'), ['event'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_user_id'), ['user_id'], unique=False)

    op.create_table('clients',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('redirect_uris', sa.JSON(), nullable=False),
    sa.Column('post_logout_redirect_uris', sa.JSON(), nullable=False),
    sa.Column('grant_types', sa.JSON(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('token_endpoint_auth_method', sa.String(length=32), nullable=False),
    sa.Column('first_party', sa.Boolean(), nullable=False),
    sa.Column('id_token_signed_response_alg', sa.String(length=8), nullable=False),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_clients'))
    )
    op.create_table('revoked_access_tokens',
    sa.Column('jti', sa.String(length=43), nullable=False),
    sa.Column('expires_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_revoked_access_tokens'))
    )
    with op.batch_alter_table('revoked_access_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revoked_access_tokens_expires_at'), ['expires_at'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=36), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('email_verified', sa.Boolean(), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('phone_verified', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('locale', sa.String(length=16), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('password_changed_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sa.UniqueConstraint('subject', name=op.f('uq_users_subject')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('app_roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_app_roles_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_roles')),
    sa.UniqueConstraint('client_id', 'name', name=op.f('uq_app_roles_client_id'))
    )
    with op.batch_alter_table('app_roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_app_roles_client_id'), ['client_id'], unique=False)

    op.create_table('authorization_codes',
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.String(length=43), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('redirect_uri_given', sa.Boolean(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('nonce', sa.String(length=255), nullable=True),
    sa.Column('code_challenge', sa.String(length=128), nullable=True),
    sa.Column('code_challenge_method', sa.String(length=8), nullable=True),
    sa.Column('session_id', sa.String(length=43), nullable=True),
    sa.Column('auth_time', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('acr', sa.String(length=64), nullable=True),
    sa.Column('amr', sa.JSON(), nullable=False),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('consumed_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_authorization_codes_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_authorization_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('code_hash', name=op.f('pk_authorization_codes')),
    sa.UniqueConstraint('grant_id', name=op.f('uq_authorization_codes_grant_id'))
    )
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index('ix_authorization_codes_client_nonce', ['client_id', 'nonce'], unique=False)
        batch_op.create_index(batch_op.f('ix_authorization_codes_expires_at'), ['expires_at'], unique=False)

    op.create_table('consents',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('granted_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_consents_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_consents_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'client_id', name=op.f('pk_consents'))
    )
    op.create_table('refresh_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('family_id', sa.String(length=43), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=43), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('auth_time', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('acr', sa.String(length=64), nullable=True),
    sa.Column('amr', sa.JSON(), nullable=False),
    sa.Column('access_jti', sa.String(length=43), nullable=False),
    sa.Column('access_expires_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('used_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_refresh_tokens_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_refresh_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_tokens_token_hash'))
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_tokens_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_session_id'), ['session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('sso_sessions',
    sa.Column('id', sa.String(length=43), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('auth_time', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('amr', sa.JSON(), nullable=False),
    sa.Column('acr', sa.String(length=64), nullable=False),
    sa.Column('last_seen_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('ended_at', sso.dbtypes.UTCDateTime(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sso_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_sso_sessions_token_hash'))
    )
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('user_roles',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.Column('granted_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['app_roles.id'], name=op.f('fk_user_roles_role_id_app_roles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_roles_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'role_id', name=op.f('pk_user_roles'))
    )


def downgrade() -> None:
    op.drop_table('user_roles')
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_sessions_user_id'))

    op.drop_table('sso_sessions')
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_user_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_session_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_family_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_client_id'))

    op.drop_table('refresh_tokens')
    op.drop_table('consents')
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_authorization_codes_expires_at'))
        batch_op.drop_index('ix_authorization_codes_client_nonce')

    op.drop_table('authorization_codes')
    with op.batch_alter_table('app_roles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_app_roles_client_id'))

    op.drop_table('app_roles')
    op.drop_table('users')
    with op.batch_alter_table('revoked_access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revoked_access_tokens_expires_at'))

    op.drop_table('revoked_access_tokens')
    op.drop_table('clients')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_user_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_event'))
        batch_op.drop_index(batch_op.f('ix_audit_events_client_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))

    op.drop_table('audit_events')
