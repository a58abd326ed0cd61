"""signing keys in the database, private parts encrypted; the old keys/ directory imported

Revision ID: 0012_signing_keys
Revises: 0011_branding
Create Date: 2026-12-02 04:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = '0012_signing_keys'
down_revision = '0011_branding'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'signing_keys',
        sa.Column('kid', sa.String(length=64), nullable=False),
        sa.Column('alg', sa.String(length=8), nullable=False),
        sa.Column('state', sa.String(length=8), nullable=False),
        sa.Column('private_key', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('retired_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('kid', name=op.f('pk_signing_keys')),
    )
    _import_key_directory(table)


def _import_key_directory(table: sa.Table) -> None:
    """Copy the keys of ``SSO_KEYS_DIR`` (where they were kept before) into the table, so the
    provider goes on signing with the keys its relying parties know."""
    app = context.config.attributes.get('app')
    if app is None or context.is_offline_mode():
        return
    from sso.oidc.keys import read_directory
    from sso.oidc.keystore import key_encryption_box, record_values

    keys = read_directory(app.config['KEYS_DIR'])
    if not keys:
        return
    box = key_encryption_box(app.config['KEY_ENCRYPTION_KEYS'])
    rows = []
    for key in keys:
        values = record_values(box, key)
        for column in ('created_at', 'retired_at'):  # naive UTC, as UTCDateTime stores it
            if values[column] is not None:
                values[column] = values[column].replace(tzinfo=None)
        rows.append(values)
    op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_table('signing_keys')
