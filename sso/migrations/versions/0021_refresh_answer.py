"""a refresh token's row keeps the sealed answer that issued it

Revision ID: 0021_refresh_answer
Revises: 0020_import_lifetimes
Create Date: 2026-12-03 18:00:00.000000

The answer a refresh gave was written onto the used token's row by an UPDATE of its own; it
now goes into the new token's INSERT (``answer``), and the used row's ``successor``, set by
the claim itself, names the new token by its hash. Rows used before this revision keep the
sealed answer in ``successor``, and are still read that way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021_refresh_answer'
down_revision = '0020_import_lifetimes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answer', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_column('answer')
