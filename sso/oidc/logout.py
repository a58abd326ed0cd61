"""RP-Initiated Logout 1.0 (``end_session_endpoint``).

A ``post_logout_redirect_uri`` is followed only if it exactly matches one the client registered;
the client is named by the ``id_token_hint``'s audience or ``client_id`` (which must agree).
With a valid hint for the browser's own session the user is signed out at once; otherwise we
ask first, so a link on another site cannot sign people out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from flask import current_app, redirect, render_template
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ..flow import passage
from ..i18n import gettext as _
from ..security import same
from ..web import allow_form_action, allow_frame
from . import singlelogout
from .grants import token_service
from .models import Client
from .server import query_client

PARAMS = ("id_token_hint", "logout_hint", "client_id", "post_logout_redirect_uri", "state",
          "ui_locales")


@dataclass
class LogoutRequest:
    client: Client | None
    redirect_uri: str | None
    state: str | None
    hint: dict[str, Any] | None


class LogoutError(Exception):
    pass


def parse(params: MultiDict[str, str]) -> LogoutRequest:
    limit = current_app.config["MAX_PARAM_LENGTH"]
    for key in PARAMS:
        values = params.getlist(key)
        if len(values) > 1 or (values and len(values[0]) > limit):
            raise LogoutError(_("The sign-out request is malformed."))
    hint = None
    client = None
    if raw := params.get("id_token_hint"):
        hint = token_service().decode_id_token_hint(raw)
        if hint is None:
            raise LogoutError(_("The sign-out request names an ID token this provider did not "
                                "issue."))
        audience = hint.get("aud")
        client = query_client(audience[0] if isinstance(audience, list) else audience)
    if client_id := params.get("client_id"):
        named = query_client(client_id)
        if named is None or (client is not None and client.client_id != named.client_id):
            raise LogoutError(_("The sign-out request names an unknown application."))
        client = named
    redirect_uri = params.get("post_logout_redirect_uri") or None
    if redirect_uri and (client is None or not any(
            same(redirect_uri, registered) for registered in client.post_logout_redirect_uris)):
        raise LogoutError(_("The application asked to return to an address it has not "
                            "registered."))
    return LogoutRequest(client, redirect_uri, params.get("state") or None, hint)


def _hint_matches_session(request: LogoutRequest) -> bool:
    session = passage.current_session()
    if session is None or request.hint is None:
        return False
    if request.hint.get("sid"):
        return bool(request.hint["sid"] == session.id)
    return bool(request.hint.get("sub") == session.user.subject)


def handle(params: MultiDict[str, str]) -> Response:
    try:
        request = parse(params)
    except LogoutError as error:
        return _error_page(str(error))
    if passage.current_session() is None:
        return _finish(request)
    if _hint_matches_session(request):
        return sign_out(request)
    if request.redirect_uri:
        allow_form_action(request.redirect_uri)
    html = render_template(
        "oidc/logout_confirm.html", client=request.client,
        fields={k: params[k] for k in PARAMS if params.get(k)},
    )
    return Response(html, mimetype="text/html")


def confirm(form: MultiDict[str, str]) -> Response:
    try:
        request = parse(form)
    except LogoutError as error:
        return _error_page(str(error))
    return sign_out(request)


def sign_out(request: LogoutRequest) -> Response:
    session = passage.current_session()
    frames = singlelogout.frontchannel_uris(session) if session is not None else []
    return passage.sign_out(session, _finish(request, frames), door="logout",
                            client_id=request.client.client_id if request.client else None)


def _finish(request: LogoutRequest, frames: list[str] | None = None) -> Response:
    """Back to the app's registered URI, or the "signed out" page. Apps that take
    front-channel logout are loaded in iframes on that page first (it then goes on to the
    app by itself, as soon as they loaded or after ``FRONTCHANNEL_WAIT`` seconds)."""
    target = None
    if request.redirect_uri:
        params = [("state", request.state)] if request.state else []
        target = add_params_to_uri(request.redirect_uri, params)
        if not frames:
            return redirect(target)
    for uri in frames or []:
        allow_frame(uri)
    html = render_template("oidc/logged_out.html", frames=frames or [], target=target,
                           wait=current_app.config["FRONTCHANNEL_WAIT"])
    return Response(html, mimetype="text/html")


def _error_page(message: str) -> Response:
    html = render_template("oidc/error.html", error=None, description=message)
    return Response(html, status=400, mimetype="text/html")
