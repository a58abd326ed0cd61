"""one door: the session records each proof; typed client policy columns

The SSO session keeps its proofs (method and time) instead of ``amr``/``acr`` columns and a
separate second-factor proof table; a client's sign-in policy moves out of the untyped
``settings`` JSON into columns. Existing rows are carried over.

Revision ID: 0008_one_door
Revises: 0007_apps
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import sqlalchemy as sa
from alembic import op

import sso.dbtypes

revision = '0008_one_door'
down_revision = '0007_apps'
branch_labels = None
depends_on = None

#: amr values as they were stored, and the proof method each stood for.
_AMR_TO_PROOF = {"pwd": "pwd", "otp": "otp", "sms": "sms", "hwk": "hwk", "swk": "swk",
                 "qr": "qr"}
_SECOND = frozenset({"otp", "hwk", "swk", "sms"})


def _timestamp(value: Any) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp(), 6)


def _carry_sessions(connection: sa.engine.Connection) -> None:
    sessions = sa.table("sso_sessions", sa.column("id", sa.String), sa.column("amr", sa.JSON),
                        sa.column("auth_time", sa.DateTime), sa.column("created_at", sa.DateTime),
                        sa.column("proofs", sa.JSON))
    proofs_table = sa.table("mfa_session_proofs", sa.column("session_id", sa.String),
                            sa.column("method", sa.String),
                            sa.column("verified_at", sa.DateTime))
    second = {row.session_id: (row.method, row.verified_at)
              for row in connection.execute(sa.select(proofs_table))}
    for row in connection.execute(sa.select(sessions.c.id, sessions.c.amr, sessions.c.auth_time,
                                            sessions.c.created_at)).all():
        auth_time = _timestamp(row.auth_time)
        proofs: list[dict[str, Any]] = []
        for value in row.amr or []:
            method = _AMR_TO_PROOF.get(value)
            if method is None:
                continue
            # A second factor in the amr of a session without a proof row came with it
            # (a QR sign-in from a phone that did MFA): proved when the session began.
            at = _timestamp(row.created_at) if method in _SECOND else auth_time
            proofs.append({"m": method, "t": at})
        if row.id in second:
            method, verified_at = second[row.id]
            proofs = [p for p in proofs if p["m"] not in _SECOND or p["m"] == method]
            proofs = [p for p in proofs if p["m"] != method]
            proofs.append({"m": method, "t": _timestamp(verified_at)})
        connection.execute(sessions.update().where(sessions.c.id == row.id)
                           .values(proofs=proofs))


def _carry_clients(connection: sa.engine.Connection) -> None:
    clients = sa.table("clients", sa.column("client_id", sa.String),
                       sa.column("settings", sa.JSON), sa.column("activation", sa.String),
                       sa.column("mfa_required", sa.Boolean),
                       sa.column("remember_device", sa.Boolean),
                       sa.column("qr_number_matching", sa.Boolean),
                       sa.column("events_endpoint", sa.String))
    for row in connection.execute(sa.select(clients.c.client_id, clients.c.settings)).all():
        settings = row.settings or {}
        connection.execute(clients.update().where(clients.c.client_id == row.client_id).values(
            activation=str(settings.get("activation") or "auto")[:16],
            mfa_required=bool(settings.get("mfa_required", False)),
            remember_device=settings.get("remember_device", True) is not False,
            qr_number_matching=bool(settings.get("qr_number_matching", False)),
            events_endpoint=settings.get("events_endpoint") or None,
        ))


def upgrade() -> None:
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('proofs', sa.JSON(), nullable=True))
    _carry_sessions(op.get_bind())
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.alter_column('proofs', existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column('amr')
        batch_op.drop_column('acr')
    op.drop_table('mfa_session_proofs')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activation', sa.String(length=16), server_default='auto', nullable=False))
        batch_op.add_column(sa.Column('mfa_required', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('remember_device', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('qr_number_matching', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('events_endpoint', sa.String(length=512), nullable=True))
    _carry_clients(op.get_bind())
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('settings')


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('settings', sa.JSON(), nullable=True))
    connection = op.get_bind()
    clients = sa.table("clients", sa.column("client_id", sa.String),
                       sa.column("settings", sa.JSON), sa.column("activation", sa.String),
                       sa.column("mfa_required", sa.Boolean),
                       sa.column("remember_device", sa.Boolean),
                       sa.column("qr_number_matching", sa.Boolean),
                       sa.column("events_endpoint", sa.String))
    for row in connection.execute(sa.select(clients)).all():
        settings: dict[str, Any] = {"activation": row.activation, "mfa_required": row.mfa_required,
                                    "remember_device": row.remember_device,
                                    "qr_number_matching": row.qr_number_matching}
        if row.events_endpoint:
            settings["events_endpoint"] = row.events_endpoint
        connection.execute(clients.update().where(clients.c.client_id == row.client_id)
                           .values(settings=settings))
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.alter_column('settings', existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column('events_endpoint')
        batch_op.drop_column('qr_number_matching')
        batch_op.drop_column('remember_device')
        batch_op.drop_column('mfa_required')
        batch_op.drop_column('activation')

    op.create_table('mfa_session_proofs',
    sa.Column('session_id', sa.String(length=43), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('verified_at', sso.dbtypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sso_sessions.id'], name=op.f('fk_mfa_session_proofs_session_id_sso_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_mfa_session_proofs'))
    )
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amr', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('acr', sa.String(length=64), nullable=True))
    sessions = sa.table("sso_sessions", sa.column("id", sa.String), sa.column("amr", sa.JSON),
                        sa.column("acr", sa.String), sa.column("proofs", sa.JSON))
    values = {"pwd": "pwd", "otp": "otp", "recovery": "otp", "sms": "sms", "hwk": "hwk",
              "swk": "swk", "qr": "qr"}
    for row in connection.execute(sa.select(sessions.c.id, sessions.c.proofs)).all():
        amr = list(dict.fromkeys(values[p["m"]] for p in row.proofs or [] if p["m"] in values))
        if _SECOND.intersection(amr) and len(amr) > 1:
            amr.append("mfa")
        acr = "urn:sso:loa:2" if _SECOND.intersection(amr) else "urn:sso:loa:1"
        connection.execute(sessions.update().where(sessions.c.id == row.id)
                           .values(amr=amr, acr=acr))
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.alter_column('amr', existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column('acr', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column('proofs')
