"""The demo's CIBA client: a call-centre page where an operator signs a caller in through the
caller's phone (OpenID Connect CIBA Core 1.0, poll mode), as any confidential CIBA client would.

The operator types the caller's username and a binding message (read out on the call); the app
asks the provider's ``backchannel_authentication_endpoint`` (client_secret_basic), shows
"waiting for approval on the phone" and polls the token endpoint at the ``interval`` the
provider gave (one poll per page load, the page reloads itself with a meta refresh: no script,
a CSP of ``default-src 'none'``). When the phone approves, the ID token is verified against the
provider's JWKS and its claims are shown; a denial or expiry shows the CIBA error.

Only an operator signed in to the app (through the provider) may ask. Requests wait in the
app's memory, each bound to the operator's browser (its session cookie): ``auth_req_id`` never
reaches the browser.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import requests
from flask import Flask, abort, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response

from ..i18n import gettext as _

GRANT_TYPE = "urn:openid:params:grant-type:ciba"
PATH = "/call-centre"
SCOPE = "openid profile email"
ALGORITHMS = ["RS256", "ES256"]
#: The requests one app keeps at most (the oldest finished ones go first).
MAX_REQUESTS = 1000
SESSION_TICKETS = "ciba_tickets"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")


class IDTokenRejected(Exception):
    pass


def verify_id_token(token: str, jwks: Any, issuer: str, audience: str) -> dict[str, Any]:
    """The claims of a valid ID token of ``issuer`` for ``audience``; ``jwks(force)`` gives
    the provider's key set (fetched again once for an unknown ``kid``)."""
    try:
        keys = KeySet.import_key_set(jwks(False))
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except JoseError:
            decoded = jwt.decode(token, KeySet.import_key_set(jwks(True)), algorithms=ALGORITHMS)
        claims = dict(decoded.claims)
        jwt.JWTClaimsRegistry(iss={"essential": True, "value": issuer},
                              sub={"essential": True}, exp={"essential": True},
                              leeway=60).validate(claims)
    except (JoseError, ValueError) as error:
        raise IDTokenRejected(str(error) or type(error).__name__) from error
    audience_claim = claims.get("aud")
    audiences = audience_claim if isinstance(audience_claim, list) else [audience_claim]
    if audience not in audiences:
        raise IDTokenRejected("the ID token is meant for another app")
    return claims


class Requests:
    """The app's CIBA requests by ticket (a random id the operator's browser holds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] = {}

    def add(self, item: dict[str, Any]) -> str:
        ticket = secrets.token_urlsafe(16)
        with self._lock:
            if len(self._items) >= MAX_REQUESTS:
                oldest = min(self._items, key=lambda t: self._items[t]["created_at"])
                del self._items[oldest]
            self._items[ticket] = item
        return ticket

    def get(self, ticket: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(ticket)

    def lock(self) -> threading.Lock:
        return self._lock


def _page(template: str, status: int = 200, refresh: int | None = None,
          **context: Any) -> Response:
    response = Response(render_template(template, refresh=refresh, **context), status,
                        mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def add_call_centre(app: Flask, provider: Any, client_id: str, client_secret: str,
                    jwks: Any) -> None:
    """Serve the call-centre pages at :data:`PATH` on a demo app registered for CIBA."""
    store = Requests()
    app.extensions["demo_ciba_requests"] = store
    issuer = app.config["DEMO_ISSUER"]

    def metadata() -> dict[str, Any]:
        return dict(provider.load_server_metadata())

    def check_csrf() -> None:
        sent = request.form.get("csrf", "")
        if not sent or not secrets.compare_digest(sent, session.get("csrf", "")):
            abort(400)

    def operator() -> dict[str, Any] | None:
        """The signed-in operator (anyone signed in to this app through the provider)."""
        return session.get("user")  # type: ignore[no-any-return]

    @app.get(PATH)
    def call_centre() -> Response:
        return _page("demo/ciba_start.html", operator=operator())

    @app.post(PATH)
    def call_centre_start() -> Response:
        check_csrf()
        if operator() is None:
            return _page("demo/ciba_start.html", 403, operator=None)
        username = request.form.get("username", "").strip()
        message = request.form.get("binding_message", "").strip()
        if not username or len(username) > 128:
            return _page("demo/ciba_start.html", 400, username=username, message=message,
                         operator=operator(), problem=_("Enter the caller's username."))
        endpoint = metadata().get("backchannel_authentication_endpoint")
        answer = requests.post(endpoint, timeout=10, auth=(client_id, client_secret), data={
            "scope": SCOPE, "login_hint": username, "binding_message": message})
        body = _json(answer)
        if answer.status_code != 200 or "auth_req_id" not in body:
            return _page("demo/ciba_start.html", 400, username=username, message=message,
                         operator=operator(),
                         problem=_("The company sign-in refused the request."),
                         code=body.get("error", str(answer.status_code)),
                         description=body.get("error_description"))
        now = time.time()
        interval = int(body.get("interval") or 5)
        ticket = store.add({
            "auth_req_id": body["auth_req_id"], "username": username, "message": message,
            "interval": interval, "created_at": now, "next_poll": now + interval,
            "expires_at": now + int(body.get("expires_in") or 120), "state": "pending",
            "claims": None, "error": None, "description": None})
        tickets = [*session.get(SESSION_TICKETS, [])[-9:], ticket]
        session[SESSION_TICKETS] = tickets
        return redirect(url_for("call_centre_request", ticket=ticket))  # type: ignore[return-value]

    def poll(item: dict[str, Any]) -> None:
        """Ask the token endpoint once if the interval has passed (CIBA §7.3, §11)."""
        now = time.time()
        if item["state"] != "pending" or now < item["next_poll"]:
            return
        item["next_poll"] = now + item["interval"]
        answer = requests.post(metadata()["token_endpoint"], timeout=10,
                               auth=(client_id, client_secret),
                               data={"grant_type": GRANT_TYPE,
                                     "auth_req_id": item["auth_req_id"]})
        body = _json(answer)
        if answer.status_code == 200 and body.get("id_token"):
            try:
                item["claims"] = verify_id_token(body["id_token"], jwks, issuer, client_id)
                item["state"] = "approved"
            except IDTokenRejected as rejected:
                item.update(state="failed", error="invalid_id_token",
                            description=str(rejected))
            return
        error = body.get("error", str(answer.status_code))
        if error == "authorization_pending":
            return
        if error == "slow_down":
            item["interval"] += 5
            item["next_poll"] = now + item["interval"]
            return
        item.update(state="failed", error=error, description=body.get("error_description"))

    @app.get(f"{PATH}/<ticket>")
    def call_centre_request(ticket: str) -> Response:
        item = store.get(ticket)
        if item is None or ticket not in session.get(SESSION_TICKETS, []):
            return _page("demo/ciba_start.html", 404, operator=operator(),
                         problem=_("This request is not known here; start a new one."))
        with store.lock():  # one poll at a time per app: the interval holds
            poll(item)
        if item["state"] == "pending":
            wait = max(1, int(item["next_poll"] - time.time() + 0.999))
            return _page("demo/ciba_wait.html", item=item, refresh=wait,
                         expires_in=max(0, int(item["expires_at"] - time.time())))
        return _page("demo/ciba_result.html", item=item,
                     claims=sorted((item["claims"] or {}).items()))


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
