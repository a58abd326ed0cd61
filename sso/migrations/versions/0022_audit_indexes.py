"""the audit log's single-column indexes on event, user and app go

Revision ID: 0022_audit_indexes
Revises: 0021_refresh_answer
Create Date: 2026-12-06 03:10:00.000000

Migration 0016 gave the console's filters the indexes (event, id), (user_id, id) and
(client_id, id), which serve every query the single-column indexes on event, user_id and
client_id served (a filter on the first column alone, and its keyset paging). Those three
stayed, and every audit row (one or more per token issued) paid for writing them.
"""

from __future__ import annotations

from alembic import op

revision = '0022_audit_indexes'
down_revision = '0021_refresh_answer'
branch_labels = None
depends_on = None

REDUNDANT = {"ix_audit_events_event": "event", "ix_audit_events_user_id": "user_id",
             "ix_audit_events_client_id": "client_id"}


def upgrade() -> None:
    for name in REDUNDANT:
        op.drop_index(name, table_name="audit_events")


def downgrade() -> None:
    for name, column in REDUNDANT.items():
        op.create_index(name, "audit_events", [column], unique=False)
