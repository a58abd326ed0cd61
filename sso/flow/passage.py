"""The passage's exits: every sign-in page leaves through :func:`finish` or :func:`abort`.

Whatever a method checked (a password, a code, a scanned QR code, a consent, an admin's
decision), its page ends here, so what every exit must do happens in one place: the SSO
session is opened or stepped up with the new proofs, its cookie secret replaced (session
fixation), the CSRF token rotated, the exit audited, and the browser sent on to the pending
request, a safe path on this site, or the account page. A page that serves a pending request
already allows the app's origin as a form target (:func:`sso.flow.pending.get`), so the
redirect chain after its form POST is not blocked by the page's own CSP.

Each call names its ``door`` (the method, for the audit log and for the test that checks
every door has a browser test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from flask import Flask, current_app, g, redirect, request, session
from sqlalchemy import bindparam
from werkzeug.wrappers import Response

from .. import audit
from ..dbtypes import utcnow
from ..errors import render_error
from ..extensions import db
from ..i18n import gettext as _
from ..sessions import devices
from ..sessions import service as sessions
from ..sessions.models import Proof, SSOSession
from ..users.models import User
from ..web import StaleForm, origin
from . import Request, Step, StoredFacts, registry
from .pending import Pending, Target, drop, expired_page, get, mark_aborted

SESSION_COOKIE = "sso_session"


def session_cookie_name() -> str:
    # The __Host- prefix pins the cookie to this host, path / and HTTPS (RFC 6265bis §4.1.3).
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    return f"__Host-{SESSION_COOKIE}" if secure else SESSION_COOKIE


def browser_secret() -> str | None:
    """The secret of this browser's SSO session, as its cookie holds it."""
    return request.cookies.get(session_cookie_name())


def current_session() -> SSOSession | None:
    """The live SSO session of this browser (looked up once per request)."""
    if "sso_session" not in g:
        g.sso_session = sessions.find_by_secret(browser_secret())
    return g.sso_session  # type: ignore[no-any-return]


#: The bind parameter of the app's client id in the columns the steps read (Step.reads).
_CLIENT_PARAM = "stored_client"


@dataclass(frozen=True)
class _StoredRead:
    """The session read with every step's :attr:`~sso.flow.Step.reads`, and how many of its
    extra columns each step has, in table order."""

    statement: Any
    counts: tuple[tuple[str, int], ...]

    def split(self, values: tuple[Any, ...]) -> dict[str, tuple[Any, ...]]:
        by_step, at = {}, 0
        for name, count in self.counts:
            by_step[name] = tuple(values[at:at + count])
            at += count
        return by_step


def _stored_read_of(steps: Sequence[Step]) -> _StoredRead | None:
    counts, columns = [], []
    for step in steps:
        if step.reads is not None:
            read = step.reads(sessions.USER_OF_SECRET, bindparam(_CLIENT_PARAM))
            counts.append((step.name, len(read)))
            columns.extend(column.label(f"{step.name}_{index}")
                           for index, column in enumerate(read))
    if not columns:
        return None
    return _StoredRead(sessions.reading_along(columns), tuple(counts))


def current_session_for(flow_request: Request, secret: str | None
                        ) -> tuple[SSOSession | None, Request]:
    """The live SSO session of the browser whose cookie holds ``secret``
    (:func:`browser_secret`), read in one statement with the facts the steps decide on for
    its user and ``flow_request``'s app (their :attr:`~sso.flow.Step.reads`); returns the
    session and the request carrying those facts. Where the session was read earlier in
    this request, the request goes on without them and the steps read their own. Needs no
    Flask request (``sso.oidc.direct`` answers a signed-in authorization without one)."""
    if "sso_session" in g:
        return g.sso_session, flow_request
    read: _StoredRead | None = registry().stored_read
    if read is None:
        g.sso_session = sessions.find_by_secret(secret)
        return g.sso_session, flow_request
    found, values = sessions.find_by_secret_along(
        secret, read.statement, {_CLIENT_PARAM: flow_request.client_id})
    g.sso_session = found
    if found is None:
        return None, flow_request
    return found, replace(flow_request,
                          stored=StoredFacts(found.user_id, read.split(values)))


def _set_session_cookie(response: Response, secret: str) -> None:
    config = current_app.config
    response.set_cookie(
        session_cookie_name(), secret, max_age=config["SESSION_TTL"], path="/",
        secure=config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax",
    )


def _clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        session_cookie_name(), path="/", secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True, samesite="Lax",
    )


DEVICE_COOKIE = "sso_device"


def device_cookie_name() -> str:
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    return f"__Host-{DEVICE_COOKIE}" if secure else DEVICE_COOKIE


def _recognise_device(response: Response, user: User, sso_session: SSOSession) -> None:
    """Remember this browser for the account (a long-lived device cookie); a browser the
    account has not used before is announced to the new-device listeners."""
    config = current_app.config
    fresh = devices.recognise(user, request.cookies.get(device_cookie_name()), sso_session,
                              origin(), utcnow())
    if fresh is not None:
        response.set_cookie(
            device_cookie_name(), fresh, max_age=int(config["DEVICE_COOKIE_DAYS"]) * 86400,
            path="/", secure=config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax")


def _rotate_csrf() -> None:
    """A new CSRF token after every exit: a token seen before the exit is worth nothing."""
    session["csrf"] = None


def finish(target: Target, *, door: str, user: User | None = None,
           proofs: list[Proof] | None = None) -> Response:
    """The interaction is done: record what the user proved (if anything) and go on.

    With ``user`` and ``proofs`` the browser's SSO session is opened, or stepped up if it is
    the same user's. Without them (a consent given, an approval that arrived) the session
    stays as it is and only the flow moves on. The caller commits nothing: this commits.
    """
    response = redirect(target.url())
    if user is not None and proofs:
        previous = current_session()
        sso_session, secret = sessions.sign_in(
            user, proofs, lifetime=current_app.config["SESSION_TTL"], origin=origin(),
            previous=previous, now=utcnow(),
        )
        g.sso_session = sso_session
        _set_session_cookie(response, secret)
        _recognise_device(response, user, sso_session)
        audit.record("signin", origin=origin(), user_id=user.id, session_id=sso_session.id,
                     door=door, amr=sso_session.amr, client=target.client_name)
    else:
        signed_in = current_session()
        audit.record("flow.continue", origin=origin(),
                     user_id=signed_in.user_id if signed_in else None, door=door,
                     client=target.client_name)
    db.session.commit()
    _rotate_csrf()
    return response  # type: ignore[return-value]


def abort(pending: Pending | None, *, door: str, error: str = "access_denied",
          description: str = "The user declined.") -> Response:
    """The user or the policy gave up on the pending request: the app hears ``error``.

    The answer itself is the protocol's (it knows the app's redirect URI and ``state``): the
    flow is marked aborted and resumed, and the protocol answers with the error.
    """
    if pending is None:
        return expired_page()
    signed_in = current_session()
    audit.record("flow.abort", audit.FAILURE, origin=origin(),
                 user_id=signed_in.user_id if signed_in else None, door=door, error=error,
                 client=pending.client_name)
    db.session.commit()
    mark_aborted(pending, error, description)
    _rotate_csrf()
    return redirect(pending.resume_url())  # type: ignore[return-value]


def sign_out(sso_session: SSOSession | None, destination: Response, *, door: str,
             client_id: str | None = None) -> Response:
    """End the browser's SSO session and send it to ``destination`` (a page or a redirect
    to the app's registered post-logout URI, which the caller checked)."""
    if sso_session is not None:
        sessions.end_session(sso_session, reason=door, origin=origin())
        audit.record("signout", origin=origin(), user_id=sso_session.user_id,
                     session_id=sso_session.id, client_id=client_id, door=door)
        db.session.commit()
        g.sso_session = None
    _clear_session_cookie(destination)
    _rotate_csrf()
    return destination


def _stale_form(error: StaleForm) -> Response:
    """A form from a tab left open across a sign-in in another tab: the browser is signed in
    now, so its pending request simply goes on (what the form would have led to); anything
    else gets the "form expired" page. Only a request this browser itself started can be
    resumed, so nothing is done that the browser did not ask for."""
    pending = get(request.values.get("flow"))
    if pending is not None and current_session() is not None and pending.aborted is None:
        return redirect(pending.resume_url())  # type: ignore[return-value]
    return render_error(400, message=_("The form expired. Go back, reload the page and try "
                                       "again."))


def init_app(app: Flask) -> None:
    app.register_error_handler(StaleForm, _stale_form)
    passage = app.extensions["sso_passage"]
    passage.stored_read = _stored_read_of(passage.steps)


def answered(pending: Pending) -> None:
    """The protocol answered the pending request: forget it."""
    drop(pending.flow_id)
