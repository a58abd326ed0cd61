"""Scan-to-sign-in: start a QR session for a desktop, let a signed-in phone scan, approve or
deny it, and let the desktop consume the approval. No Flask here: views pass what they know.

Every transition is written to the audit log with both devices' IP address and user agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from .. import audit, flow, notify, outbox
from ..audit import Origin
from ..extensions import db
from ..oidc.public import Client, encode_set, policy_of, update_policy
from ..oidc.public import get as get_client
from ..sessions.models import SECOND_FACTOR_PROOFS, Proof, SSOSession
from ..users.models import User
from . import proximity
from .store import (
    APPROVED,
    BLOCKED,
    CONSUMED,
    FAR_REFUSED,
    MISSING,
    PENDING,
    WRONG_SECRET,
    Created,
    Outcome,
    QRSession,
    QRStore,
)

QR_SCOPE = "qr.approve"
#: The proof (and ``amr`` value) of a sign-in approved by a phone (RFC 8176 has none for it).
AMR_QR = "qr"
TOO_OLD = "too_old"
#: The audit outcome of what an attack looks like (a desktop's "Not me", "This wasn't me", a
#: code used twice): the security team's query is ``outcome = 'alarm'``.
ALARM = "alarm"
#: The phone's proofs that travel to the desktop: second factors, not a remembered browser.
CARRIED_PROOFS = SECOND_FACTOR_PROOFS - {"device"}


@dataclass(frozen=True)
class StepUp:
    """The phone must do more before it may approve: sign in again or pass a flow step."""

    reason: str
    interaction: flow.Interaction | None = None


def app_policy(client_id: str) -> flow.AppPolicy:
    """The policy of the app the desktop signs in to, as the flow's steps read it."""
    client = get_client(client_id) if client_id else None
    return policy_of(client) if client is not None else flow.AppPolicy()


def set_number_matching(client_id: str, enabled: bool, origin: Origin | None = None) -> None:
    """Turn number matching on or off for one app (``sso qr number-matching``)."""
    client = get_client(client_id)
    if client is None:
        raise LookupError(client_id)
    update_policy(client, origin=origin, qr_number_matching=bool(enabled))


def _details(qr: QRSession | None, phone: Origin | None = None) -> dict[str, Any]:
    if qr is None:
        return {}
    return {
        "qr": qr.id[:8], "desktop_ip": qr.desktop_ip, "desktop_ua": qr.desktop_ua[:255],
        "phone_ip": (phone.ip if phone else qr.phone_ip) or None,
        "phone_ua": ((phone.user_agent if phone else qr.phone_ua) or "")[:255] or None,
    }


def start(store: QRStore, *, client_id: str, client_name: str, acr_values: str,
          desktop: Origin) -> Created:
    created = store.create(
        client_id=client_id, client_name=client_name, desktop_ip=desktop.ip or "",
        desktop_ua=desktop.user_agent or "", acr_values=acr_values,
        number_matching=app_policy(client_id).qr_number_matching,
    )
    audit.record("qr.create", origin=desktop, client_id=client_id or None,
                 **_details(created.session))
    return created


def check_phone(qr: QRSession, phone_session: SSOSession, now: datetime, max_age: int,
                freshness: int | None = None) -> StepUp | None:
    """Whether this phone session may approve a sign-in to the QR's app, or what it owes.

    The session must be recent, and must satisfy the MFA the app requires: the flow's "mfa"
    step is asked the same question it answers for a browser signing in to that app.
    """
    if (now - phone_session.auth_time).total_seconds() > max_age:
        return StepUp(TOO_OLD)
    request = flow.Request(
        flow_id="", started_at=datetime.fromtimestamp(qr.created_at, UTC),
        client_id=qr.client_id, client_name=qr.client_name, scopes=(),
        acr_values=tuple(qr.acr_values.split()), policy=app_policy(qr.client_id),
        # Bounded reach: an app that needs a second factor gets one proved within the
        # freshness, so a phone whose factor is older verifies again on the phone first.
        max_age=freshness,
    )
    interaction, _effects = flow.decide(request, phone_session, now, only={"mfa"})
    return StepUp("mfa", interaction) if interaction is not None else None


def scan(store: QRStore, qr_id: str, user: User, phone: Origin,
         trusted_networks: list[proximity.Network] | None = None) -> Outcome:
    if store.blocked_for(user.id):
        return _blocked(store, qr_id, user, phone, "qr.scan")
    qr = store.get(qr_id)
    near = proximity.compare(qr.desktop_ip if qr else "", phone.ip or "", trusted_networks or [])
    if qr is not None and qr.state == PENDING and near.far \
            and app_policy(qr.client_id).qr_refuse_remote:
        outcome = Outcome(FAR_REFUSED, qr)
        audit.record("qr.scan", audit.FAILURE, origin=phone, user_id=user.id,
                     client_id=_client(outcome), result=FAR_REFUSED,
                     desktop_network=near.desktop_network, phone_network=near.phone_network,
                     **_details(qr, phone))
        return outcome
    outcome = store.scan(qr_id, user.id, phone.ip or "", phone.user_agent or "",
                         far=near.far, desktop_net=near.desktop_network,
                         phone_net=near.phone_network)
    failed = ALARM if outcome.result in (APPROVED, CONSUMED) else audit.FAILURE
    audit.record("qr.scan", audit.SUCCESS if outcome.ok else failed, origin=phone,
                 user_id=user.id, client_id=_client(outcome), result=outcome.result,
                 **_details(outcome.session, phone))
    return outcome


def fresh_factors(phone_session: SSOSession, now: datetime, freshness: int) -> list[Proof]:
    """The phone's second factors that travel to the desktop: proved within ``freshness``
    seconds (bounded reach: an old MFA on the phone does not make a new desktop "MFA")."""
    return [proof for proof in phone_session.proofs if proof.method in CARRIED_PROOFS
            and (now - proof.at).total_seconds() <= freshness]


def approve(store: QRStore, qr_id: str, user: User, phone_session: SSOSession,
            number: int | None, phone: Origin, *, now: datetime | None = None,
            freshness: int = 600) -> Outcome:
    if store.blocked_for(user.id):
        return _blocked(store, qr_id, user, phone, "qr.approve")
    now = now or datetime.now(UTC)
    factors = [f"{proof.method}@{proof.at.timestamp():.6f}"
               for proof in fresh_factors(phone_session, now, freshness)]
    outcome = store.approve(qr_id, user.id, number, factors, phone.ip or "",
                            phone.user_agent or "")
    audit.record("qr.approve", audit.SUCCESS if outcome.ok else audit.FAILURE, origin=phone,
                 user_id=user.id, session_id=phone_session.id, client_id=_client(outcome),
                 result=outcome.result, **_details(outcome.session, phone))
    return outcome


def deny(store: QRStore, qr_id: str, user: User, phone: Origin) -> Outcome:
    outcome = store.deny(qr_id, user.id)
    audit.record("qr.deny", audit.SUCCESS if outcome.ok else audit.FAILURE, origin=phone,
                 user_id=user.id, client_id=_client(outcome), result=outcome.result,
                 **_details(outcome.session, phone))
    return outcome


def approver(store: QRStore, qr_id: str, secret: str) -> tuple[QRSession, User] | Outcome:
    """The approved code of this desktop and who approved it: what the desktop shows before
    it continues ("Signed in as ..."); else why not (the secret is checked first)."""
    qr = store.get(qr_id)
    if qr is None:
        return Outcome(MISSING)
    if not store.owns(qr_id, secret):
        return Outcome(WRONG_SECRET, qr)
    if qr.state != APPROVED or qr.user_id is None:
        return Outcome(qr.state, qr)
    user = db.session.get(User, qr.user_id)
    return (qr, user) if user is not None else Outcome(MISSING)


def reject(store: QRStore, qr_id: str, secret: str, desktop: Origin) -> Outcome:
    """The desktop's "Not me": someone else's phone approved this code (a session swap, or a
    code seen over a shoulder or a shared screen). Nobody is signed in; audited as an alarm."""
    outcome = store.reject(qr_id, secret)
    qr = outcome.session
    audit.record("qr.not_me", ALARM if outcome.ok else audit.FAILURE, origin=desktop,
                 user_id=qr.user_id if qr else None, client_id=_client(outcome),
                 result=outcome.result, **_details(qr))
    return outcome


def consume(store: QRStore, qr_id: str, secret: str, desktop: Origin, now: datetime
            ) -> tuple[Outcome, User | None, list[Proof]]:
    """Consume an approved session; return the phone's user and the desktop's proofs: the
    scan itself, and the phone's second factors with the times they were proved."""
    outcome = store.consume(qr_id, secret)
    qr = outcome.session
    user = db.session.get(User, qr.user_id) if outcome.ok and qr and qr.user_id else None
    if outcome.ok and (user is None or user.status != "active"):
        outcome = Outcome("user_inactive", qr)
        user = None
    # A second use of a single-use code (a replayed completion) is what an attack looks like.
    failed = ALARM if qr is not None and qr.state == CONSUMED else audit.FAILURE
    audit.record("qr.consume", audit.SUCCESS if outcome.ok else failed,
                 origin=desktop, user_id=qr.user_id if qr else None,
                 client_id=_client(outcome), result=outcome.result,
                 **_details(qr))
    proofs = [Proof(AMR_QR, now), *(_carried(factor) for factor in (qr.factors if qr else ()))]
    return outcome, user, proofs


def _carried(factor: str) -> Proof:
    method, _sep, at = factor.partition("@")
    return Proof(method, datetime.fromtimestamp(float(at or 0), UTC))


def _blocked(store: QRStore, qr_id: str, user: User, phone: Origin, event: str) -> Outcome:
    outcome = Outcome(BLOCKED, store.get(qr_id))
    audit.record(event, audit.FAILURE, origin=phone, user_id=user.id,
                 client_id=_client(outcome), result=BLOCKED, **_details(outcome.session, phone))
    return outcome


def report(store: QRStore, qr_id: str, user: User, phone: Origin, *, block_seconds: int,
           issuer: str, keys: Any, now: datetime) -> Outcome:
    """"This wasn't me": the phone's user did not start this sign-in (RFC 10027: a code sent
    as a link, or read off someone's screen). Cancel it, write an alarm, pause this user's QR
    approvals, mail the user, and tell the apps that take security events."""
    outcome = store.deny(qr_id, user.id)
    if not outcome.ok:
        audit.record("qr.report", audit.FAILURE, origin=phone, user_id=user.id,
                     client_id=_client(outcome), result=outcome.result,
                     **_details(outcome.session, phone))
        return outcome
    store.block(user.id, block_seconds)
    audit.record("qr.report", ALARM, origin=phone, user_id=user.id,
                 client_id=_client(outcome), blocked_seconds=block_seconds,
                 **_details(outcome.session, phone))
    qr = outcome.session
    if user.email:
        notify.mail(user.email, "qr_reported", locale=user.locale, purpose="qr-report",
                    user_id=user.id, user=user, qr=qr, minutes=max(block_seconds // 60, 0),
                    app_name=(qr.client_name if qr else "") or "")
    tell_apps(user, qr, issuer=issuer, keys=keys, now=now)
    return outcome


#: The security event pushed to apps that registered an events endpoint (RFC 8417 SET).
REPORTED_EVENT = "urn:sso:secevent:qr:reported"


def tell_apps(user: User, qr: QRSession | None, *, issuer: str, keys: Any, now: datetime
               ) -> None:
    """Queue a signed SET for every app with an events endpoint: it carries the user's
    ``sub`` and what was refused, nothing more (no claims the app's scopes did not ask for)."""
    apps = db.session.scalars(select(Client).where(Client.events_endpoint.is_not(None))).all()
    for client in apps:
        token, jti = encode_set(
            keys, issuer=issuer, audience=client.client_id, subject=user.subject,
            events={REPORTED_EVENT: {
                "reason": "user_reported_unrecognised_sign_in",
                "client_id": (qr.client_id if qr else "") or None,
                "desktop_ip": qr.desktop_ip if qr else None,
            }}, now=now, alg=client.id_token_signed_response_alg or "RS256")
        outbox.enqueue("event", "qr-reported", str(client.events_endpoint), body_text=token,
                       payload={"jti": jti, "event": REPORTED_EVENT,
                                "client_id": client.client_id}, user_id=user.id)


def _client(outcome: Outcome) -> str | None:
    return (outcome.session.client_id or None) if outcome.session else None


