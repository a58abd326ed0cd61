"""Apps (clients): list, register, settings, secret rotation, disable, delete."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, request, url_for
from werkzeug.wrappers import Response

from ...i18n import gettext as _
from ...oidc import clients
from ...oidc.keys import ALGORITHMS
from ...web import origin
from .. import AdminError, operations
from ..remit import Remit
from .access import admin_page, message, page
from .blueprint import bp

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
ACTIVATIONS = ("auto", "approval", "invite")


def _lines(name: str) -> list[str]:
    return [line.strip() for line in request.form.get(name, "").splitlines() if line.strip()]


def _settings() -> dict[str, Any]:
    """The registration form as the CLI's options (the service validates them)."""
    form = request.form
    return {
        "name": form.get("name", "").strip()[:128],
        "redirect_uris": _lines("redirect_uris")[:20],
        "post_logout_redirect_uris": _lines("post_logout_redirect_uris")[:20],
        "public": form.get("public") == "1",
        "grant_types": [g for g in form.getlist("grant_type") if g in GRANT_TYPES] or None,
        "scope": form.get("scope", "").strip()[:1000] or None,
        "first_party": form.get("first_party") == "1",
        "id_token_alg": form.get("id_token_alg", "RS256"),
        "client_id": form.get("client_id", "").strip()[:64] or None,
        "activation": form.get("activation") or None,
        "events_endpoint": form.get("events_endpoint", "").strip()[:512] or None,
        "mfa_required": form.get("mfa_required") == "1",
        "name_zh": form.get("name_zh", "").strip()[:128] or None,
        "logo_uri": form.get("logo_uri", "").strip()[:512] or None,
        "lifetimes": _lifetimes(),
    }


def _lifetimes() -> dict[str, str]:
    """The token lifetimes the form sends (the service checks them)."""
    return {name: request.form.get(name, "").strip()[:12] for name in clients.LIFETIMES}


def _lifetime_context() -> dict[str, Any]:
    """What the forms' token lifetime fields show: label, bounds and the current default."""
    config = current_app.config
    labels = {"access_token_ttl": _("Access token"), "id_token_ttl": _("ID token"),
              "refresh_token_ttl": _("Refresh token")}
    grace = int(config["KEY_RETIREMENT_GRACE"])
    fields = [(name, labels[name], low, high if name == "refresh_token_ttl" else min(high, grace))
              for name, (_label, low, high) in clients.LIFETIMES.items()]
    defaults = {"access_token_ttl": config["ACCESS_TOKEN_TTL"],
                "id_token_ttl": config["ID_TOKEN_TTL"],
                "refresh_token_ttl": _("%(session)s (%(offline)s offline)",
                                       session=config["REFRESH_TOKEN_TTL"],
                                       offline=config["OFFLINE_REFRESH_TOKEN_TTL"])}
    return {"lifetime_fields": fields, "lifetime_defaults": defaults}


def _form_page(status: int = 200, **context: Any) -> Response:
    return page("admin/app_new.html", status=status, grant_types=GRANT_TYPES,
                activations=ACTIVATIONS, algorithms=ALGORITHMS, **_lifetime_context(),
                **context)


@bp.get("/apps")
@admin_page
def apps(remit: Remit) -> Response:
    q = request.args.get("q", "")[:128]
    return page("admin/apps.html", rows=operations.visible_clients(remit, q), q=q,
                notice=request.args.get("notice"))


@bp.route("/apps/new", methods=["GET", "POST"])
@admin_page
def app_new(remit: Remit) -> Response:
    if not remit.super_admin:
        raise operations.ReadOnly()
    if request.method == "GET":
        return _form_page(values={"id_token_alg": "RS256", "activation": "auto",
                                  "grant_type": ["authorization_code", "refresh_token"],
                                  "scope": "openid profile email"})
    settings = _settings()
    values = {**settings, "grant_type": request.form.getlist("grant_type"),
              "redirect_uris": request.form.get("redirect_uris", "")[:5000],
              "post_logout_redirect_uris": request.form.get("post_logout_redirect_uris",
                                                            "")[:5000]}
    if settings["id_token_alg"] not in ALGORITHMS:
        return _form_page(400, values=values, error=_("ID-token algorithm: RS256 or ES256"))
    if not settings["name"]:
        return _form_page(400, values=values, error=_("name: required"))
    try:
        client, secret = operations.register_client(remit, settings, origin())
    except AdminError as error:
        return _form_page(400, values=values, error=message(error))
    return page("admin/app_secret.html", client=client, secret=secret, created=True)


def _app_page(remit: Remit, client_id: str, status: int = 200, **context: Any) -> Response:
    client = operations.client(remit, client_id)
    return page("admin/app.html", status=status, client=client, activations=ACTIVATIONS,
                pending=operations.pending_accounts_of(client.client_id),
                changeable=remit.may_change_app(client.client_id),
                notice=request.args.get("notice"), **_lifetime_context(), **context)


@bp.get("/apps/<client_id>")
@admin_page
def app(remit: Remit, client_id: str) -> Response:
    return _app_page(remit, client_id)


def _done(remit: Remit, client_id: str, notice: str, action: Any) -> Response:
    try:
        action()
    except AdminError as error:
        return _app_page(remit, client_id, status=400, error=message(error))
    return redirect(url_for("admin.app", client_id=client_id,  # type: ignore[return-value]
                            notice=notice))


@bp.post("/apps/<client_id>/settings")
@admin_page
def app_settings(remit: Remit, client_id: str) -> Response:
    form = request.form
    activation = form.get("activation", "")
    if activation not in ACTIVATIONS:
        return _app_page(remit, client_id, status=400,
                         error=_("activation: auto, approval or invite"))
    lifetimes = _lifetimes()
    try:
        operations.update_client(
            remit, client_id, activation=activation,
            events_endpoint=form.get("events_endpoint", "").strip()[:512],
            name_zh=form.get("name_zh", "").strip()[:128],
            logo_uri=form.get("logo_uri", "").strip()[:512],
            mfa_required=form.get("mfa_required") == "1",
            number_matching=form.get("number_matching") == "1", lifetimes=lifetimes,
            origin=origin())
    except AdminError as error:
        return _app_page(remit, client_id, status=400, error=message(error),
                         entered_lifetimes=lifetimes)
    return redirect(url_for("admin.app", client_id=client_id,  # type: ignore[return-value]
                            notice=_("Saved.")))


@bp.post("/apps/<client_id>/rotate")
@admin_page
def app_rotate(remit: Remit, client_id: str) -> Response:
    raw = request.form.get("overlap_hours", "24").strip()
    if not raw.isdigit() or len(raw) > 4:
        return _app_page(remit, client_id, status=400,
                         error=_("overlap: 0 to 720 hours"))
    try:
        secret = operations.rotate_secret(remit, client_id, int(raw), origin())
    except AdminError as error:
        return _app_page(remit, client_id, status=400, error=message(error))
    return page("admin/app_secret.html", client=operations.client(remit, client_id),
                secret=secret, created=False, overlap_hours=int(raw))


@bp.post("/apps/<client_id>/enabled")
@admin_page
def app_enabled(remit: Remit, client_id: str) -> Response:
    enable = request.form.get("enabled") == "1"
    return _done(remit, client_id, _("Saved."), lambda: operations.set_client_enabled(
        remit, client_id, enable, origin()))


@bp.post("/apps/<client_id>/delete")
@admin_page
def app_delete(remit: Remit, client_id: str) -> Response:
    try:
        operations.delete_client(remit, client_id, request.form.get("confirm", "")[:64],
                                 origin())
    except AdminError as error:
        return _app_page(remit, client_id, status=400, error=message(error))
    return redirect(url_for("admin.apps",  # type: ignore[return-value]
                            notice=_("The app was deleted.")))
