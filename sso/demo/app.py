"""A small business app that signs in through the provider, as any relying party would.

It uses Authlib's Flask OAuth client and nothing of the provider's internals except its page
translations: discovery, the code flow with PKCE (S256), ``state`` and ``nonce``, ID-token
validation against the JWKS, userinfo, and RP-initiated logout (``id_token_hint``,
``post_logout_redirect_uri``, ``state``). ``sso demo`` runs it three times (ERP, CRM,
inventory); ``sso demo-app`` runs one. With ``receives_events`` it also takes the provider's
Security Event Tokens at ``/sso/events`` (:mod:`.events`) and lists the accounts they created.
"""

from __future__ import annotations

import secrets
import time
from functools import wraps
from html import escape
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Flask,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from .. import i18n
from ..i18n import gettext as _
from .events import (
    MAX_BYTES,
    MEDIA_TYPE,
    KeyCache,
    LocalAccounts,
    SETRejected,
    read_capped,
    verify,
)
from .logout import (
    BACKCHANNEL_PATH,
    FRONTCHANNEL_PATH,
    EndedSessions,
    LogoutRejected,
    verify_logout_token,
)

SCOPE = "openid profile email phone offline_access roles"
#: The provider's cookies live on the same host (cookies ignore ports), so each app names its own.
COOKIE_PREFIX = "demo_app_"
SESSION_USER = "user"
SESSION_CSRF = "csrf"
#: Where an app that ``receives_events`` takes Security Event Tokens (its events endpoint).
EVENTS_PATH = "/sso/events"


def _blurb(client_id: str) -> str:
    """One line about what the app is for (the three demo apps; others get none)."""
    return {
        "erp": _("Finance, purchasing and approvals."),
        "crm": _("Customers, leads and sales pipeline."),
        "inventory": _("Stock levels, goods receipts and counts."),
    }.get(client_id, "")


def create_demo_app(
    name: str,
    port: int,
    issuer: str,
    client_id: str,
    client_secret: str,
    *,
    host: str = "127.0.0.1",
    accent: str = "#1f5fbf",
    scope: str = SCOPE,
    secret_key: str | None = None,
    neighbours: list[dict[str, Any]] | None = None,
    receives_events: bool = False,
    accounts_file: str | None = None,
    logout_channel: str | None = None,
    ciba: bool = False,
) -> Flask:
    """Build one relying-party app served at ``http://{host}:{port}``.

    ``neighbours`` (name and url of the other demo apps) are linked from the page so a signed-in
    user can see single sign-on at work. ``receives_events`` serves :data:`EVENTS_PATH`; the
    local accounts the events create are kept in ``accounts_file`` (JSON), else in memory.
    ``logout_channel`` "back" serves :data:`BACKCHANNEL_PATH`, "front" serves
    :data:`FRONTCHANNEL_PATH` (:mod:`.logout`): a session ended at the provider signs the
    browser out of this app too. ``ciba`` serves the call-centre pages (:mod:`.ciba`), for an
    app the provider registered as a CIBA client (poll mode).
    """
    from .. import _template_folder  # noqa: PLC0415

    base_url = f"http://{host}:{port}"
    app = Flask(f"sso.demo.{client_id}", template_folder=_template_folder())
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_hex(32),
        SESSION_COOKIE_NAME=f"{COOKIE_PREFIX}{client_id}",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        DEMO_NAME=name,
        DEMO_CLIENT_ID=client_id,
        DEMO_BASE_URL=base_url,
        DEMO_ISSUER=issuer.rstrip("/"),
        DEMO_ACCENT=accent,
        DEMO_NEIGHBOURS=list(neighbours or []),
        DEMO_RECEIVES_EVENTS=receives_events,
        DEMO_CIBA=ciba,
    )
    local_accounts = LocalAccounts(accounts_file)
    app.extensions["demo_local_accounts"] = local_accounts
    ended_sessions = EndedSessions()
    app.extensions["demo_ended_sessions"] = ended_sessions
    i18n.init_app(app)
    oauth = OAuth(app)
    provider = oauth.register(
        "provider",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        client_kwargs={"scope": scope, "code_challenge_method": "S256", "timeout": 10},
    )
    # The provider's keys, refetched for an unknown kid at most once a minute (events and
    # logout tokens alike).
    jwks = KeyCache(lambda: provider.fetch_jwk_set(force=True))
    app.extensions["demo_jwks"] = jwks

    @app.before_request
    def canonical_host() -> Response | None:
        # The flow's state lives in this app's cookie, which the browser only sends back to
        # the host it was set for: send "localhost" visitors to the registered address first.
        if request.host != urlsplit(base_url).netloc and request.path not in (
                EVENTS_PATH, BACKCHANNEL_PATH):
            return redirect(base_url + request.full_path.rstrip("?"))
        return None

    @app.before_request
    def ended_at_the_provider() -> None:
        # The provider said this sign-in's session ended (back- or front-channel logout).
        user = session.get(SESSION_USER)
        if user is not None and ended_sessions.ended(user.get("sid")):
            session.pop(SESSION_USER, None)
            session["signed_out_by_provider"] = True

    @app.context_processor
    def page_globals() -> dict[str, Any]:
        if SESSION_CSRF not in session:
            session[SESSION_CSRF] = secrets.token_urlsafe(24)
        return {"app_name": _(name), "blurb": _blurb(client_id), "accent": accent,
                "issuer": app.config["DEMO_ISSUER"], "csrf": session[SESSION_CSRF],
                "neighbours": app.config["DEMO_NEIGHBOURS"]}

    @app.get("/logo.svg")
    def logo() -> Response:
        """The app's logo (its ``logo_uri`` at the provider): its initial on its colour."""
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40">'
               f'<rect width="40" height="40" rx="9" fill="{escape(accent)}"/>'
               f'<text x="20" y="27" font-family="sans-serif" font-size="20" font-weight="700" '
               f'fill="#fff" text-anchor="middle">{escape(name[:1])}</text></svg>')
        response = Response(svg, mimetype="image/svg+xml")
        response.headers["Cache-Control"] = "public, max-age=3600"
        response.headers["Content-Security-Policy"] = "default-src 'none'"
        return response

    @app.get("/")
    def home() -> Any:
        notice = None
        if request.args.get("state"):
            try:
                provider.validate_logout_response()
                notice = _("You are signed out of %(app)s and of the company sign-in.",
                           app=_(name))
            except OAuthError:
                notice = _("This sign-out response does not belong to this browser; "
                           "nothing was changed.")
        if session.pop("signed_out_by_provider", False) and notice is None:
            notice = _("You were signed out of %(app)s because your company sign-in ended.",
                       app=_(name))
        user = session.get(SESSION_USER)
        provisioned = local_accounts.records() if receives_events and user else None
        return render_template("demo/home.html", user=user, notice=notice,
                               provisioned=provisioned)

    def backchannel_logout() -> tuple[Response | str, int]:
        """Back-Channel Logout 1.0 §2.5: a logout token, validated; 200, or 400 if refused."""
        token = request.form.get("logout_token", "")
        if not token or len(token) > MAX_BYTES:
            return jsonify(error="invalid_request", error_description="no logout_token"), 400
        try:
            claims = verify_logout_token(token, jwks,
                                         app.config["DEMO_ISSUER"], client_id)
        except LogoutRejected as rejected:
            return jsonify(error="invalid_request", error_description=str(rejected)), 400
        ended_sessions.end(str(claims.get("sid") or ""), claims.get("jti"))
        response = Response("", 200)
        response.headers["Cache-Control"] = "no-store"
        return response, 200

    def frontchannel_logout() -> Response:
        """Front-Channel Logout 1.0 §2: loaded in the provider's logout page, with iss, sid."""
        sid = request.args.get("sid", "")
        if request.args.get("iss") == app.config["DEMO_ISSUER"] and sid:
            ended_sessions.end(sid)
            user = session.get(SESSION_USER)
            if user is not None and user.get("sid") == sid:
                session.pop(SESSION_USER, None)
        response = Response("<!doctype html><title>Signed out</title>", mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; frame-ancestors {app.config['DEMO_ISSUER']}")
        return response

    if logout_channel == "back":
        app.add_url_rule(BACKCHANNEL_PATH, view_func=backchannel_logout, methods=["POST"])
    elif logout_channel == "front":
        app.add_url_rule(FRONTCHANNEL_PATH, view_func=frontchannel_logout, methods=["GET"])

    def set_error(code: str, description: str) -> tuple[Response, int]:
        """An RFC 8935 §2.4 error: the provider does not retry it."""
        return jsonify(err=code, description=description), 400

    def security_events() -> tuple[Response | str, int]:
        """Receive a pushed SET (RFC 8935): verify it, act on it, answer 202."""
        if request.mimetype != MEDIA_TYPE:
            return set_error("invalid_request", f"The media type must be {MEDIA_TYPE}.")
        if (request.content_length or 0) > MAX_BYTES:
            return set_error("invalid_request", "The SET is too large.")
        body = read_capped(request.stream)
        if body is None:
            return set_error("invalid_request", "The SET is too large.")
        try:
            claims = verify(body, jwks,
                            app.config["DEMO_ISSUER"], client_id)
        except SETRejected as rejected:
            return set_error(rejected.code, rejected.description)
        local_accounts.apply(claims)  # a jti seen before is accepted and ignored
        return "", 202

    if receives_events:
        app.add_url_rule(EVENTS_PATH, view_func=security_events, methods=["POST"])

    if ciba:
        from .ciba import add_call_centre  # noqa: PLC0415

        add_call_centre(app, provider, client_id, client_secret, jwks)

    @app.get("/login")
    def login() -> Response:
        session.pop(SESSION_USER, None)
        return provider.authorize_redirect(
            f"{base_url}/callback", ui_locales=i18n.current_locale()
        )

    @app.get("/callback")
    def callback() -> Any:
        token = provider.authorize_access_token()
        claims = dict(token["userinfo"])  # the validated ID token's claims
        userinfo = provider.userinfo(token=token)
        if userinfo.get("sub") != claims["sub"]:
            raise OAuthError(error="invalid_userinfo",
                             description="userinfo is about another subject")
        session[SESSION_USER] = {
            "sub": claims["sub"],
            "name": userinfo.get("name") or claims.get("name"),
            "username": userinfo.get("preferred_username"),
            "email": userinfo.get("email"),
            "phone": userinfo.get("phone_number"),
            "roles": list(userinfo.get("roles", claims.get("roles", []))),
            "amr": list(claims.get("amr", [])),
            "acr": claims.get("acr"),
            "auth_time": claims.get("auth_time"),
            "signed_in_at": int(time.time()),
            "id_token": token["id_token"],
            "sid": claims.get("sid"),
            "has_refresh_token": bool(token.get("refresh_token")),
        }
        return redirect(url_for("home"))

    def require_csrf(view: Any) -> Any:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            sent = request.form.get("csrf", "")
            if not sent or not secrets.compare_digest(sent, session.get(SESSION_CSRF, "")):
                abort(400)
            return view(*args, **kwargs)

        return checked

    @app.post("/logout")
    @require_csrf
    def logout() -> Response:
        user = session.pop(SESSION_USER, None)
        if user is None:
            return redirect(url_for("home"))
        return provider.logout_redirect(
            post_logout_redirect_uri=f"{base_url}/",
            id_token_hint=user["id_token"],
            ui_locales=i18n.current_locale(),
        )

    @app.get("/lang/<code>")
    def language(code: str) -> Response:
        response = redirect(url_for("home"))
        if chosen := i18n.normalise(code):
            response.set_cookie(i18n.LANG_COOKIE, chosen, max_age=365 * 24 * 3600,
                                samesite="Lax", httponly=True)
        return response

    @app.errorhandler(OAuthError)
    def oauth_error(error: OAuthError) -> tuple[str, int]:
        return render_template(
            "demo/error.html",
            message=_("Sign-in did not complete."),
            code=error.error, description=error.description,
        ), 400

    @app.errorhandler(requests.RequestException)
    def provider_unreachable(error: requests.RequestException) -> tuple[str, int]:
        return render_template(
            "demo/error.html",
            message=_("The company sign-in service cannot be reached. Please try again shortly."),
            code=None, description=None,
        ), 502

    @app.errorhandler(400)
    def bad_request(error: Exception) -> tuple[str, int]:
        return render_template(
            "demo/error.html", message=_("The request was not valid. Please start again."),
            code=None, description=None,
        ), 400

    return app
