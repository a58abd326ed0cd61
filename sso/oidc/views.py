"""Protocol routes. Each one parses, hands over to a module, and commits at most once."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import Blueprint, current_app, render_template, request
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ..extensions import db
from ..flow import passage
from ..flow import pending as pending_flows
from ..web import csrf_exempt, origin
from . import authorize as authorize_module
from . import consent as consent_module
from . import documents, endpoints, logout
from .server import NO_STORE, check_single_auth_method, current_request, query_client

bp = Blueprint("oidc", __name__)

CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}
#: Endpoints a single-page app calls from the browser; they use no cookies, so any origin may.
CORS_ENDPOINTS = {"oidc.discovery", "oidc.jwks", "oidc.token", "oidc.userinfo", "oidc.revoke"}


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
    """Token-style endpoints take form-encoded bodies with each parameter once (RFC 6749 §3.2)."""
    problem = None
    if request.mimetype != "application/x-www-form-urlencoded":
        problem = "Send parameters as application/x-www-form-urlencoded."
    elif request.args:
        problem = "Send parameters in the request body, not the query string."
    elif any(len(request.form.getlist(k)) > 1 for k in request.form):
        problem = "A parameter is repeated."
    elif any(len(v) > current_app.config["MAX_PARAM_LENGTH"]
             for v in request.form.values()):
        problem = "A parameter is too long."
    if problem is None:
        try:
            check_single_auth_method(current_request(request.form))
        except InvalidRequestError as error:
            problem = str(error.description)
    if problem is None:
        return None
    return endpoints._oauth_error(InvalidRequestError(problem))


@bp.post("/token")
@csrf_exempt
def token() -> Response:
    refused = _form_only()
    if refused is None and not request.form.get("grant_type"):
        refused = endpoints._oauth_error(InvalidRequestError("Missing 'grant_type'."))
    if refused is not None:
        response = refused
    else:
        server = current_app.extensions["sso_authorization_server"]
        response = server.create_token_response(current_request(request.form))
        # client_credentials with a cached client never opens a database session.
        if db.session.registry.has():
            if response.status_code == 200:
                db.session.commit()
            else:
                db.session.rollback()
    return response


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
    return _form_only() or endpoints.introspect()


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
        response.headers.update(CORS_HEADERS)
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response


#: Endpoints that speak JSON to programs, errors included.
JSON_ENDPOINTS = ("oidc.token", "oidc.userinfo", "oidc.introspect", "oidc.revoke", "oidc.jwks",
                  "oidc.discovery", "oidc.backchannel_authentication")
