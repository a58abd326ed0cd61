"""The authorization endpoint: validate, run the flow, issue the code (DESIGN.md §3).

An invalid client or redirect URI is answered with an error page and never redirected to;
any other error goes back to the app's redirect URI with ``error``, ``state`` and ``iss``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError
from flask import current_app, g, redirect, render_template, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from .. import audit, database, flow
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import passage
from ..flow import pending as pending_flows
from ..sessions.models import SSOSession
from ..web import origin
from . import grants
from .clients import policy_of
from .grants import token_service
from .models import Client
from .server import query_client

log = logging.getLogger(__name__)

#: Parameters kept with a pending request, to replay it when the flow resumes.
KNOWN_PARAMS = (
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method", "prompt", "max_age", "login_hint",
    "ui_locales", "id_token_hint", "acr_values", "response_mode", "display", "claims_locales",
)
SUPPORTED_PROMPTS = frozenset({"none", "login", "consent", "select_account"})
UNSUPPORTED = {
    "request": ("request_not_supported", "Request objects are not supported."),
    "request_uri": ("request_uri_not_supported", "'request_uri' is not supported."),
    "registration": ("registration_not_supported", "'registration' is not supported."),
}
RESUME_ENDPOINT = "oidc.resume"


class _Error(OAuth2Error):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description=description, error=error)


def issuer() -> str:
    return current_app.config["ISSUER"]  # type: ignore[no-any-return]


def redirect_to_client(redirect_uri: str, params: list[tuple[str, str]]) -> Response:
    """Send the browser back to the app, always naming ourselves (RFC 9207)."""
    return redirect(add_params_to_uri(redirect_uri, [*params, ("iss", issuer())]), code=302)


def _trusted_redirect_uri(params: MultiDict[str, str]) -> str | None:
    """The redirect URI an error may go to: only one the named client registered."""
    if len(params.getlist("client_id")) != 1 or len(params.getlist("redirect_uri")) > 1:
        return None
    client = query_client(params.get("client_id"))
    if client is None:
        return None
    requested = params.get("redirect_uri")
    if requested:
        return requested if client.check_redirect_uri(requested) else None
    return client.get_default_redirect_uri()


def error_response(error: OAuth2Error, params: MultiDict[str, str],
                   redirect_uri: str | None = None) -> Response:
    redirect_uri = redirect_uri or error.redirect_uri
    if redirect_uri:
        body = [("error", str(error.error))]
        if error.description:
            body.append(("error_description", str(error.description)))
        state = params.get("state") if len(params.getlist("state")) == 1 else None
        if state:
            body.append(("state", state))
        audit.record("authorize.error", audit.FAILURE, origin=origin(),
                     client_id=params.get("client_id"), error=str(error.error))
        db.session.commit()
        return redirect_to_client(redirect_uri, body)
    html = render_template(
        "oidc/error.html", error=error.error, description=error.description,
    )
    return Response(html, status=400, mimetype="text/html")


def _precheck(params: MultiDict[str, str]) -> None:
    """Refuse duplicated, oversized and unsupported parameters before anything else."""
    limit = current_app.config["MAX_PARAM_LENGTH"]
    for key in params:
        values = params.getlist(key)
        if len(values) > 1:
            raise InvalidRequestError(f"Parameter '{printable(key)}' is repeated.")
        if len(values[0]) > limit:
            raise InvalidRequestError(f"Parameter '{printable(key)}' is too long.")
        if key in UNSUPPORTED:
            raise _Error(*UNSUPPORTED[key])
    if params.get("response_mode", "query") != "query":
        raise InvalidRequestError("Only 'response_mode=query' is supported.")
    if not params.get("response_type"):
        raise InvalidRequestError("Missing 'response_type'.")
    if params["response_type"] != "code":
        raise _Error("unsupported_response_type", "Only 'response_type=code' is supported.")


def printable(name: str) -> str:
    """A parameter name fit for ``error_description`` (RFC 6749 restricts its characters)."""
    return name if name.isascii() and name.replace("_", "").isalnum() and len(name) < 40 else "?"


def _prompts(params: MultiDict[str, str]) -> frozenset[str]:
    prompts = frozenset(params.get("prompt", "").split())
    if not prompts <= SUPPORTED_PROMPTS:
        raise InvalidRequestError("Unsupported 'prompt' value.")
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("'prompt=none' cannot be combined with other values.")
    return prompts


def _max_age(params: MultiDict[str, str]) -> int | None:
    raw = params.get("max_age")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 10:
        raise InvalidRequestError("'max_age' must be a non-negative integer.")
    return int(raw)


def _expected_subject(params: MultiDict[str, str], client: Client) -> str | None:
    hint = params.get("id_token_hint")
    if not hint:
        return None
    claims = token_service().decode_id_token_hint(hint)
    audience = claims.get("aud") if claims else None
    audiences = audience if isinstance(audience, list) else [audience]
    if claims is None or client.client_id not in audiences:
        raise InvalidRequestError("'id_token_hint' is not an ID token this provider issued "
                                  "to this client.")
    return str(claims["sub"])


@dataclass(frozen=True)
class CodeOwed:
    """A request decided without effects that is owed a code: the browser's user is signed
    in and no step owes a page (:func:`issue` answers it)."""

    code_request: grants.CodeRequest
    session: SSOSession
    #: What the steps' decisions cause, run by :func:`issue` before the code is written.
    effects: tuple[flow.Effect, ...]
    pending: pending_flows.Pending | None


#: Any other answer: an error or a page still owed. It may need Flask's request (a page is
#: rendered, a pending flow started) and runs what it causes when called.
Deferred = Callable[[], Response]


def handle(params: MultiDict[str, str], pending: pending_flows.Pending | None = None
           ) -> Response:
    """Answer one authorization request, fresh from the app or resumed after a step."""
    if len(params.getlist("ui_locales")) == 1:
        g.ui_locales = params["ui_locales"]
    outcome = decide(params, passage.browser_secret(), pending)
    return issue(outcome) if isinstance(outcome, CodeOwed) else outcome()


def decide(params: MultiDict[str, str], session_secret: str | None,
           pending: pending_flows.Pending | None = None) -> CodeOwed | Deferred:
    """What the request is owed, decided for the browser whose SSO session cookie holds
    ``session_secret``, with nothing written: the checks, the session and the steps. (The
    one write a decision can make is the session's read ending it once it has timed out.)
    ``sso.oidc.direct`` answers a :class:`CodeOwed` in front of Flask and leaves the rest to
    the Flask route; both call :func:`issue`, and the route calls the :data:`Deferred`."""
    try:
        _precheck(params)
    except OAuth2Error as error:
        return partial(error_response, error, params, _trusted_redirect_uri(params))
    code_request = None
    try:
        code_request = grants.code_request(params)
        client: Client = code_request.client
        prompts = _prompts(params)
        max_age = _max_age(params)
        expected_subject = _expected_subject(params, client)
        if params.get("scope", "").strip() and not code_request.scope:
            raise InvalidScopeError("None of the requested scopes is allowed for this client.")
    except OAuth2Error as error:
        trusted = error.redirect_uri or (code_request.redirect_uri if code_request else None)
        return partial(error_response, error, params, trusted)

    now = utcnow()
    flow_request = flow.Request(
        flow_id=pending.flow_id if pending else "",
        started_at=pending.started_at if pending else now,
        client_id=client.client_id,
        client_name=client.name,
        scopes=tuple(code_request.scope.split()),
        prompts=prompts,
        max_age=max_age,
        login_hint=params.get("login_hint"),
        expected_subject=expected_subject,
        acr_values=tuple(params.get("acr_values", "").split()),
        policy=policy_of(client),
    )
    session, flow_request = passage.current_session_for(flow_request, session_secret)
    interaction, effects = flow.decide(flow_request, session, now)
    if interaction is None:
        assert session is not None  # the identify step guarantees it  # noqa: S101
        return CodeOwed(code_request, session, tuple(effects), pending)
    return partial(_owe_page, interaction, effects, code_request, flow_request, pending)


def _owe_page(interaction: flow.Interaction, effects: list[flow.Effect],
              code_request: grants.CodeRequest, flow_request: flow.Request,
              pending: pending_flows.Pending | None) -> Response:
    """The page still owed (or, for ``prompt=none``, its error), after what the decisions
    cause has run."""
    flow.run_effects(effects)
    params, client_id = code_request.params, code_request.client.client_id
    # The nonce's replay check: a signed-in user's is made by the statement that writes
    # the code (grants.issue_code), anyone else's here, before any page.
    if grants.nonce_used(client_id, params.get("nonce")):
        return error_response(InvalidRequestError(grants.NONCE_REPLAYED), params,
                              code_request.redirect_uri)
    if not flow_request.interactive:
        return error_response(_Error(interaction.error, interaction.description or
                                     "The user must interact with the provider."),
                              params, code_request.redirect_uri)
    if pending is None:
        stored = {k: params[k] for k in KNOWN_PARAMS if k in params}
        pending = pending_flows.start(stored, RESUME_ENDPOINT, flow_request.client_name,
                                      pending_flows.origin_of(code_request.redirect_uri))
    return redirect(url_for(interaction.endpoint, flow=pending.flow_id, **interaction.args))


def issue(owed: CodeOwed) -> Response:
    """Run what the decisions cause, write the code and send the browser back to the app
    with it. Needs no Flask request."""
    flow.run_effects(owed.effects)
    code_request, session = owed.code_request, owed.session
    signed_in = grants.SignedIn(session.user, session, session.acr)
    try:
        location = grants.issue_code(code_request, signed_in)
    except OAuth2Error as error:
        db.session.rollback()
        return error_response(error, code_request.params, code_request.redirect_uri)
    database.commit_last()
    if owed.pending is not None:
        passage.answered(owed.pending)
    return redirect(_with_issuer(location), code=302)


def _with_issuer(location: str) -> str:
    """The code's redirect with ``iss`` (RFC 9207): appended to the query
    :func:`.grants.issue_code` has just built, which is what parsing and encoding it again
    gives (a registered redirect URI has no fragment), without doing so."""
    if "?" not in location or "#" in location:
        return add_params_to_uri(location, [("iss", issuer())])  # type: ignore[no-any-return]
    return f"{location}&{urlencode([('iss', issuer())])}"


def resume(flow_id: str | None) -> Response:
    """Continue a pending request after a sign-in page's exit; an aborted one goes back to
    the app with its error."""
    pending = pending_flows.get(flow_id)
    if pending is None:
        return pending_flows.expired_page()
    params = MultiDict(pending.params)
    if pending.aborted is None:
        return handle(params, pending)
    passage.answered(pending)
    redirect_uri = _trusted_redirect_uri(params)
    if redirect_uri is None:
        return pending_flows.expired_page()
    error, description = pending.aborted
    return error_response(_Error(error, description), params, redirect_uri)
