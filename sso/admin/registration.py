"""Dynamic client registration (RFC 7591) behind initial access tokens, and the client
configuration endpoint (RFC 7592).

A super admin issues an initial access token in the console (shown once; optionally for an
app admin, who then administers every app registered with it). A program registers an app
with ``POST /connect/register`` and ``Authorization: Bearer <initial access token>``; the metadata
goes through the same service and validation as the console and ``sso clients create``. The
answer carries the client's secret (once) and a registration access token, with which
``GET /connect/register/<client_id>`` reads the registration, ``PUT`` replaces it and
``DELETE`` removes the app.

``PUT`` (RFC 7592 §2.2) takes the client's full metadata, checked by the same service and
rules as registering; a field left out is reset to its default or removed. ``client_id`` must
be the client's; a ``client_secret``, if sent, must be the current secret; the four fields the
server issues (``registration_access_token``, ``registration_client_uri``,
``client_secret_expires_at``, ``client_id_issued_at``) must not be sent. Whether the client is
public or confidential cannot change (register a new client instead). The secret is kept (no
new one is issued: the console's *New secret* rotates it with an overlap), and so is the
registration access token (RFC 7592 §3 allows either). What the console sets beyond the
registration metadata (activation, second factor, events, Chinese name, token lifetimes) stays
as it is. A disabled app may read and delete its registration but not change it (403).
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, jsonify, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from ..audit import record
from ..dbtypes import utcnow
from ..errors import speaks_json
from ..extensions import db
from ..oidc.models import Client
from ..oidc.protector import BearerError
from ..security import hash_token, new_token
from ..users.models import User
from ..web import csrf_exempt, origin
from . import AdminError, service
from . import remit as remits
from .models import APP_ADMIN, RegistrationToken
from .remit import Remit

INITIAL = "initial"
REGISTRATION = "client"
MAX_HOURS = 24 * 30

bp = Blueprint("registration", __name__)


class RegistrationError(Exception):
    """RFC 7591 §3.2.2: ``invalid_redirect_uri`` or ``invalid_client_metadata``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


# Initial access tokens (the console's side).


def issue_initial_token(remit: Remit, *, hours: int, label: str | None,
                        for_login: str | None) -> str:
    """A new initial access token, valid ``hours`` and usable once; only super admins."""
    from .operations import ReadOnly, audit  # noqa: PLC0415

    if not remit.super_admin:
        raise ReadOnly()
    if not 1 <= hours <= MAX_HOURS:
        raise AdminError("hours: 1 to 720")
    for_user: User | None = None
    if for_login:
        for_user = service.find_user(for_login.strip()[:254])
    raw = new_token("ssoi_")
    db.session.add(RegistrationToken(
        token_hash=hash_token(raw), kind=INITIAL, for_user_id=for_user.id if for_user else None,
        label=(label or "").strip()[:128] or None, created_by=remit.actor,
        expires_at=utcnow() + timedelta(hours=hours)))
    audit(remit, "registration_token.issue", user_id=for_user.id if for_user else None,
          hours=hours, label=label)
    db.session.commit()
    return raw


def initial_tokens() -> list[RegistrationToken]:
    return list(db.session.scalars(select(RegistrationToken).where(
        RegistrationToken.kind == INITIAL).order_by(RegistrationToken.created_at.desc())
        .limit(200)))


def revoke_initial_token(remit: Remit, token_id: int) -> None:
    from .operations import OutOfRemit, ReadOnly, audit  # noqa: PLC0415

    if not remit.super_admin:
        raise ReadOnly()
    row = db.session.get(RegistrationToken, token_id)
    if row is None or row.kind != INITIAL:
        raise OutOfRemit()
    db.session.delete(row)
    audit(remit, "registration_token.revoke", token=token_id)
    db.session.commit()


# The endpoints' side.


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _sep, value = header.strip().partition(" ")
    if not header:
        raise BearerError(401, None)
    if scheme.lower() != "bearer" or not value.strip():
        raise BearerError(400, "invalid_request", "Send 'Authorization: Bearer <token>'.")
    return value.strip()[:200]


def _token(kind: str, client_id: str | None = None) -> RegistrationToken:
    row = db.session.scalar(select(RegistrationToken).where(
        RegistrationToken.token_hash == hash_token(_bearer())))
    now = utcnow()
    if (row is None or row.kind != kind or (row.expires_at and row.expires_at <= now)
            or (kind == INITIAL and row.used_at is not None)
            or (client_id is not None and row.client_id != client_id)):
        record("registration.refused", "failure", origin=origin(), client_id=client_id,
               kind=kind)
        db.session.commit()
        raise BearerError(401, "invalid_token", "The access token is invalid or expired.")
    return row


def _str_list(metadata: dict[str, Any], name: str) -> list[str]:
    value = metadata.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistrationError("invalid_client_metadata", f"{name}: a list of strings")
    return value[:20]


def _settings(metadata: dict[str, Any]) -> dict[str, Any]:
    """RFC 7591 metadata as the console's settings (the service validates them)."""
    name = metadata.get("client_name")
    if not isinstance(name, str) or not name.strip():
        raise RegistrationError("invalid_client_metadata", "client_name: required")
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in ("client_secret_basic", "client_secret_post", "none"):
        raise RegistrationError("invalid_client_metadata",
                                "token_endpoint_auth_method: client_secret_basic, "
                                "client_secret_post or none")
    alg = metadata.get("id_token_signed_response_alg", "RS256")
    if alg not in ("RS256", "ES256"):
        raise RegistrationError("invalid_client_metadata",
                                "id_token_signed_response_alg: RS256 or ES256")
    scope = metadata.get("scope")
    logo = metadata.get("logo_uri")
    if scope is not None and not isinstance(scope, str):
        raise RegistrationError("invalid_client_metadata", "scope: a string")
    if logo is not None and not isinstance(logo, str):
        raise RegistrationError("invalid_client_metadata", "logo_uri: a string")
    return {
        "name": name.strip()[:128],
        "redirect_uris": _str_list(metadata, "redirect_uris"),
        "post_logout_redirect_uris": _str_list(metadata, "post_logout_redirect_uris"),
        "public": method == "none",
        "grant_types": _str_list(metadata, "grant_types") or None,
        "scope": scope, "first_party": False, "id_token_alg": alg, "client_id": None,
        "activation": None, "events_endpoint": None, "mfa_required": False,
        "name_zh": None, "logo_uri": logo,
    }


def describe(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "response_types": ["code"] if "authorization_code" in client.grant_types else [],
        "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        **({"logo_uri": client.logo_uri} if client.logo_uri else {}),
        "registration_client_uri": url_for("registration.client", client_id=client.client_id,
                                           _external=True),
    }


def _json(payload: dict[str, Any], status: int) -> Response:
    response = jsonify(payload)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.post("/connect/register")
@csrf_exempt
def register() -> Response:
    """RFC 7591 §3.1: register a client with an initial access token."""
    initial = _token(INITIAL)
    metadata = request.get_json(silent=True)
    if not isinstance(metadata, dict):
        return _json({"error": "invalid_client_metadata",
                      "error_description": "send the metadata as a JSON object"}, 400)
    try:
        settings = _settings(metadata)
        client, secret = service.create_client(**settings)
    except RegistrationError as error:
        db.session.rollback()
        return _json({"error": error.error, "error_description": error.description}, 400)
    except AdminError as error:
        db.session.rollback()
        return _json({"error": _error_code(error), "error_description": str(error)}, 400)
    initial.used_at = utcnow()
    raw = new_token("ssog_")
    db.session.add(RegistrationToken(token_hash=hash_token(raw), kind=REGISTRATION,
                                     client_id=client.client_id, created_by="registration"))
    if initial.for_user_id is not None:
        owner = db.session.get(User, initial.for_user_id)
        if owner is not None:
            remits.grant(owner, APP_ADMIN, client.client_id, actor="registration")
    record("client.register", origin=origin(), client_id=client.client_id,
           actor=initial.created_by, initial_token=initial.id, for_user=initial.for_user_id)
    db.session.commit()
    body = {**describe(client), "registration_access_token": raw,
            **({"client_secret": secret, "client_secret_expires_at": 0} if secret else {})}
    return _json(body, 201)


@bp.route("/connect/register/<client_id>", methods=["GET", "PUT", "DELETE"])
@csrf_exempt
def client(client_id: str) -> Response:
    """RFC 7592 §2.1 read, §2.2 update and §2.3 delete, with the registration access token."""
    _token(REGISTRATION, client_id[:64])
    found = db.session.get(Client, client_id[:64])
    if found is None:
        raise BearerError(401, "invalid_token", "The access token is invalid or expired.")
    if request.method == "DELETE":
        service.delete_client(found.client_id)
        record("client.unregister", origin=origin(), client_id=client_id[:64])
        db.session.commit()
        return Response(status=204)
    if request.method == "PUT":
        return _update(found)
    return _json(describe(found), 200)


#: RFC 7592 §2.2: what the server issues, which an update request must not carry.
ISSUED = ("registration_access_token", "registration_client_uri", "client_secret_expires_at",
          "client_id_issued_at")


def _update(found: Client) -> Response:
    """RFC 7592 §2.2: replace the registration with the metadata sent."""
    if found.disabled_at is not None:
        record("registration.refused", "failure", origin=origin(), client_id=found.client_id,
               kind="update", reason="disabled")
        db.session.commit()
        return _json({"error": "access_denied",
                      "error_description": "the app is disabled; an admin must enable it"},
                     403)
    metadata = request.get_json(silent=True)
    try:
        if not isinstance(metadata, dict):
            raise RegistrationError("invalid_client_metadata",
                                    "send the metadata as a JSON object")
        sent = [name for name in ISSUED if name in metadata]
        if sent:
            raise RegistrationError("invalid_client_metadata",
                                    f"{', '.join(sent)}: issued by the server, not sent")
        if metadata.get("client_id") != found.client_id:
            raise RegistrationError("invalid_client_metadata",
                                    "client_id: required, and must be this client's")
        secret = metadata.get("client_secret")
        if secret is not None and not (
                isinstance(secret, str) and found.secret_hash is not None
                and hmac.compare_digest(hash_token(secret[:200]), found.secret_hash)):
            raise RegistrationError("invalid_client_metadata",
                                    "client_secret: not this client's current secret")
        settings = _settings(metadata)
        if settings["public"] != found.is_public:
            raise RegistrationError("invalid_client_metadata",
                                    "token_endpoint_auth_method: a public client stays public "
                                    "and a confidential one confidential")
        client, changed = service.update_registration(
            found.client_id, name=settings["name"], redirect_uris=settings["redirect_uris"],
            post_logout_redirect_uris=settings["post_logout_redirect_uris"],
            grant_types=settings["grant_types"], scope=settings["scope"],
            id_token_alg=settings["id_token_alg"], logo_uri=settings["logo_uri"])
    except (RegistrationError, AdminError) as error:
        db.session.rollback()
        code = error.error if isinstance(error, RegistrationError) else _error_code(error)
        record("registration.refused", "failure", origin=origin(), client_id=found.client_id,
               kind="update", error=code)
        db.session.commit()
        return _json({"error": code, "error_description": str(error)}, 400)
    record("client.register_update", origin=origin(), client_id=client.client_id,
           actor="registration", changed=changed)
    db.session.commit()
    return _json(describe(client), 200)


def _error_code(error: AdminError) -> str:
    """RFC 7591 §3.2.2: a refused redirect URI is ``invalid_redirect_uri``."""
    text = str(error)
    return "invalid_redirect_uri" if "://" in text or "redirect" in text else (
        "invalid_client_metadata")


def init_app(app: Flask) -> None:
    from ..oidc.discovery import metadata_json  # noqa: PLC0415

    app.register_blueprint(bp)
    speaks_json(app, ["registration.register", "registration.client"])
    # The discovery document was built before this endpoint existed: build it again.
    app.extensions["sso_discovery"] = metadata_json(app)
