"""admin console: admin remits, client secret overlap and disabling, audit actor, list indexes

Revision ID: 0016_admin
Revises: 0014_logout
Create Date: 2026-12-02 04:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sso.dbtypes

revision = '0016_admin'
down_revision = "0014_logout"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('granted_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.Column('granted_by', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_admin_grants_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_admin_grants_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_grants')),
    sa.UniqueConstraint('user_id', 'role', 'client_id', name=op.f('uq_admin_grants_user_id'))
    )
    with op.batch_alter_table('admin_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_grants_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_secret_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_expires_at', sso.dbtypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('disabled_at', sso.dbtypes.UTCDateTime(), nullable=True))

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor', sa.String(length=128), nullable=True))
        batch_op.create_index('ix_audit_events_event_id', ['event', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_user_id_id', ['user_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_client_id_id', ['client_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_actor_id', ['actor', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_ip_id', ['ip', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_outcome_id', ['outcome', 'id'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index('ix_users_status_username', ['status', 'username'], unique=False)
        batch_op.create_index('ix_users_username_prefix', ['username'], unique=False,
                              postgresql_ops={'username': 'varchar_pattern_ops'})
        batch_op.create_index('ix_users_email_prefix', ['email'], unique=False,
                              postgresql_ops={'email': 'varchar_pattern_ops'})
        batch_op.create_index('ix_users_phone_prefix', ['phone'], unique=False,
                              postgresql_ops={'phone': 'varchar_pattern_ops'})


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_phone_prefix')
        batch_op.drop_index('ix_users_email_prefix')
        batch_op.drop_index('ix_users_username_prefix')
        batch_op.drop_index('ix_users_status_username')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_outcome_id')
        batch_op.drop_index('ix_audit_events_ip_id')
        batch_op.drop_index('ix_audit_events_actor_id')
        batch_op.drop_index('ix_audit_events_client_id_id')
        batch_op.drop_index('ix_audit_events_user_id_id')
        batch_op.drop_index('ix_audit_events_event_id')
        batch_op.drop_column('actor')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('disabled_at')
        batch_op.drop_column('previous_secret_expires_at')
        batch_op.drop_column('previous_secret_hash')

    with op.batch_alter_table('admin_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_grants_user_id'))

    op.drop_table('admin_grants')
