"""Protocol routes. Each one parses, hands over to a module, and commits at most once."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from .. import database
from ..flow import passage
from ..flow import pending as pending_flows
from ..web import csrf_exempt, origin
from . import authorize as authorize_module
from . import consent as consent_module
from . import documents, endpoints, logout
from .server import CORS, CORS_ENDPOINTS, NO_STORE, query_client

bp = Blueprint("oidc", __name__)


def _document(body: bytes) -> Response:
    status, headers, body = documents.answer(
        body, documents.DOCUMENTS[request.path][1], request.headers.get("If-None-Match"),
        secure=bool(current_app.config["SESSION_COOKIE_SECURE"]))
    return Response(body, status=status, headers=headers)


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def discovery() -> Response:
    return _document(current_app.extensions["sso_discovery"])


@bp.get("/jwks.json")
def jwks() -> Response:
    return _document(current_app.extensions["sso_keys"].jwks())


@bp.route("/authorize", methods=["GET", "POST"])
@csrf_exempt
def authorize() -> Response:
    params = request.form if request.method == "POST" else request.args
    with database.request_writes():
        return authorize_module.handle(params)


@bp.get("/authorize/resume")
def resume() -> Response:
    return authorize_module.resume(request.args.get("flow"))


@bp.post("/authorize/cancel")
def cancel() -> Response:
    """The user gave up on a sign-in page: the app learns ``access_denied``."""
    return passage.abort(pending_flows.get(request.form.get("flow")), door="cancel")


@bp.route("/consent", methods=["GET", "POST"])
def consent() -> Response:
    pending = pending_flows.get(request.values.get("flow"))
    session = passage.current_session()
    if pending is None or session is None:
        return pending_flows.expired_page()
    client = query_client(pending.params.get("client_id"))
    if client is None:
        return pending_flows.expired_page()
    scopes = client.get_allowed_scope(pending.params.get("scope")).split()
    if request.method == "POST":
        if request.form.get("decision") == "allow":
            consent_module.grant(session.user_id, client.client_id, scopes, origin())
            return passage.finish(pending_flows.Target(pending), door="consent")
        consent_module.deny(session.user_id, client.client_id, origin())
        return passage.abort(pending, door="consent-deny")
    html = render_template("oidc/consent.html", client=client, scopes=scopes,
                           user=session.user, flow=pending.flow_id)
    return Response(html, mimetype="text/html")


def _form_only() -> Response | None:
    return endpoints.form_refusal(request.mimetype, bool(request.args), request.form,
                               request.headers)


@bp.post("/token")
@csrf_exempt
def token() -> Response:
    return _form_only() or endpoints.token(request.form, request.headers)


@bp.post("/bc-authorize")
@csrf_exempt
def backchannel_authentication() -> Response:
    """CIBA's backchannel authentication endpoint (CIBA Core §7)."""
    from . import ciba  # noqa: PLC0415

    return _form_only() or ciba.authenticate(request.form)


@bp.route("/userinfo", methods=["GET", "POST"])
@csrf_exempt
def userinfo() -> Response:
    return endpoints.userinfo()


@bp.post("/introspect")
@csrf_exempt
def introspect() -> Response:
    return _form_only() or endpoints.introspection(request.form, request.headers)


@bp.post("/revoke")
@csrf_exempt
def revoke() -> Response:
    return _form_only() or endpoints.revoke()


@bp.route("/logout", methods=["GET", "POST"])
@csrf_exempt
def end_session() -> Response:
    """RP-initiated logout; a GET or a cross-site POST only ever shows the confirmation."""
    params = request.form if request.method == "POST" else request.args
    return logout.handle(MultiDict(params))


@bp.post("/logout/confirm")
def end_session_confirm() -> Response:
    return logout.confirm(MultiDict(request.form))


@bp.after_request
def _api_headers(response: Response) -> Response:
    if request.endpoint in ("oidc.token", "oidc.userinfo", "oidc.introspect", "oidc.revoke",
                            "oidc.backchannel_authentication"):
        for name, value in NO_STORE:
            response.headers.setdefault(name, value)
    if request.endpoint in CORS_ENDPOINTS:
        response.headers.set(*CORS)
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response


#: Endpoints that speak JSON to programs, errors included.
JSON_ENDPOINTS = ("oidc.token", "oidc.userinfo", "oidc.introspect", "oidc.revoke", "oidc.jwks",
                  "oidc.discovery", "oidc.backchannel_authentication")
