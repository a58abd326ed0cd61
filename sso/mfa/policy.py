"""Who must use a second factor, and the sign-in flow step that asks for it (DESIGN.md §3.3).

A second factor is required when any of these holds: the user turned it on (is enrolled), an
admin requires it of the user, the user is a provider admin (``MFA_REQUIRED_FOR_ADMINS``), the
app requires it (client setting ``mfa_required``), one of the user's roles in the app requires
it, or the request asks for it with ``acr_values=urn:sso:loa:2``. Other ``acr_values`` are
voluntary (OIDC Core §3.1.2.1) and ignored; the ID token's ``acr`` tells what was done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Select, bindparam, select

from .. import audit, driversql
from ..audit import Origin
from ..extensions import db
from ..flow import Interaction, Request
from ..oidc.public import Client, update_policy
from ..sessions.models import ACR_MULTI_FACTOR, SECOND_FACTOR_PROOFS, Proof, SSOSession
from ..users.models import AppRole, User, effective_role_ids
from . import service
from .models import RoleRequirement, TotpAuthenticator, UserRequirement

STEP_ORDER = 30
STEP_NAME = "mfa"


@dataclass(frozen=True)
class Requirement:
    required: bool
    #: The request itself demands a fresh second factor (acr_values, prompt=login, max_age),
    #: so a remembered device does not stand in for a code.
    explicit: bool
    #: The user has an authenticator (read with the other facts, in the same statement).
    enrolled: bool = False


def user_required(user: User) -> bool:
    """Required of the user whatever the app: by an admin, or as a provider admin."""
    if user.is_admin and current_app.config["MFA_REQUIRED_FOR_ADMINS"]:
        return True
    return db.session.get(UserRequirement, user.id) is not None


def stored_facts_read(user_id: Any, client_id: Any) -> tuple[Any, Any, Any]:
    """The step's facts about the user at the app, as columns (``user_id`` and ``client_id``
    SQL expressions): whether the user is enrolled, is required by an admin, and holds a role
    of the app that requires a second factor. The step table's ``reads`` of ``mfa``."""
    enrolled = select(TotpAuthenticator.user_id).where(
        TotpAuthenticator.user_id == user_id).exists()
    by_admin = select(UserRequirement.user_id).where(
        UserRequirement.user_id == user_id).exists()
    # The user's effective roles: direct and inherited from groups (and their parents).
    by_role = (
        select(RoleRequirement.role_id)
        .join(AppRole, AppRole.id == RoleRequirement.role_id)
        .where(RoleRequirement.role_id.in_(effective_role_ids(user_id)),
               AppRole.client_id == client_id)
        .exists()
    )
    return enrolled, by_admin, by_role


#: Built once: the flow asks on every authorization whose facts were not read with the
#: session (a step-up checked on its own, a scan-to-sign-in approval).
_STORED_FACTS: Select[tuple[bool, bool, bool]] = select(
    *stored_facts_read(bindparam("facts_user"), bindparam("facts_client")))


def _stored_facts(user_id: int, request: Request) -> tuple[bool, bool, bool]:
    """The facts of :func:`stored_facts_read`: read with the session, or now in one
    statement."""
    row = request.stored_for(STEP_NAME, user_id)
    if row is None:
        (row,) = driversql.one_statement(_STORED_FACTS, {"facts_user": user_id,
                                                         "facts_client": request.client_id})
    return bool(row[0]), bool(row[1]), bool(row[2])


def requirement(user: User, request: Request) -> Requirement:
    asked = ACR_MULTI_FACTOR in request.acr_values
    enrolled, by_admin, by_role = _stored_facts(user.id, request)
    required = (
        asked
        or request.policy.mfa_required
        or enrolled
        or by_admin
        or (user.is_admin and current_app.config["MFA_REQUIRED_FOR_ADMINS"])
        or by_role
    )
    explicit = asked or "login" in request.prompts or request.max_age is not None
    return Requirement(required, explicit, enrolled)


def remember_allowed(request: Request, explicit: bool) -> bool:
    return (current_app.config["MFA_REMEMBER_DAYS"] > 0
            and request.policy.remember_device and not explicit)


def second_factor_step(request: Request, session: SSOSession | None, now: datetime
                       ) -> Interaction | None:
    """A second factor, proven recently enough for this request, when one is needed."""
    if session is None:
        return None
    user = session.user
    need = requirement(user, request)
    if not need.required:
        return None
    if not need.enrolled:
        return Interaction("mfa.enrol", "interaction_required",
                           "The user must set up two-step verification.")
    remember = remember_allowed(request, need.explicit)
    accepted = SECOND_FACTOR_PROOFS if remember else SECOND_FACTOR_PROOFS - {"device"}
    proof = session.second_factor(accepted)
    if proof is not None and _fresh(proof, request, now):
        return None
    return Interaction("mfa.verify", "interaction_required",
                       "The user must enter a verification code.",
                       args={"remember": "1"} if remember else {})


def _fresh(proof: Proof, request: Request, now: datetime) -> bool:
    if proof.at >= request.started_at:
        return True  # proven during this very request: never ask twice (max_age=0)
    if "login" in request.prompts and proof.at < request.started_at:
        return False
    return request.max_age is None or (now - proof.at).total_seconds() <= request.max_age


# Admin settings.


def require_for_user(user: User, required: bool, *, origin: Origin | None = None) -> None:
    row = db.session.get(UserRequirement, user.id)
    if required and row is None:
        db.session.add(UserRequirement(user_id=user.id))
    elif not required and row is not None:
        db.session.delete(row)
    audit.record("mfa.policy.user", origin=origin, user_id=user.id, required=required)


def require_for_role(role: AppRole, required: bool, *, origin: Origin | None = None) -> None:
    row = db.session.get(RoleRequirement, role.id)
    if required and row is None:
        db.session.add(RoleRequirement(role_id=role.id))
    elif not required and row is not None:
        db.session.delete(row)
    audit.record("mfa.policy.role", origin=origin, client_id=role.client_id, role=role.name,
                 required=required)


def set_client_policy(client: Client, *, required: bool | None = None,
                      remember_device: bool | None = None,
                      origin: Origin | None = None) -> None:
    """Require a second factor at an app, and/or let remembered browsers stand in for it."""
    changes: dict[str, Any] = {}
    if required is not None:
        changes["mfa_required"] = required
    if remember_device is not None:
        changes["remember_device"] = remember_device
    update_policy(client, origin=origin, **changes)


def status(user: User) -> dict[str, Any]:
    """What the account page shows."""
    record = service.authenticator(user.id)
    return {
        "enrolled": record is not None,
        "confirmed_at": record.confirmed_at if record else None,
        "recovery_codes_left": service.remaining_recovery_codes(user.id) if record else 0,
        "required": user_required(user),
    }
