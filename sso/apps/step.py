"""The flow step "activation" (order 40): may this signed-in user go on to this app?"""

from __future__ import annotations

from datetime import datetime

from .. import flow
from ..extensions import db
from ..oidc import consent
from ..oidc.models import Client
from ..sessions.models import SSOSession
from ..web import origin
from . import events, service

ACTIVATION_STEP_ORDER = 40

#: prompt=none while an admin has not decided: the user could see the waiting page, so the
#: app may retry interactively (OIDC Core §3.1.2.6 ``interaction_required``).
WAITING = flow.Interaction(
    "apps.waiting", "interaction_required",
    "Access to this application needs an administrator's approval.",
)
#: Refused, revoked or not provisioned: no interaction can change that, so the answer is
#: RFC 6749 §4.1.2.1 ``access_denied``, with or without prompt=none.
REFUSED = flow.Interaction(
    "apps.refused", "access_denied", "The user has no access to this application.",
)


def step(request: flow.Request, session: SSOSession | None, now: datetime
         ) -> flow.Interaction | None:
    if session is None:
        return None
    if consent.step(request, session, now) is not None:
        # A third-party app learns nothing (no account, no event with the user's claims)
        # before the user has agreed to share them: the consent step goes first.
        return None
    if service.status_of(session.user_id, request.client_id) == service.Status.ACTIVE:
        # The common case, every sign-in after the first: one column of one row, and
        # nothing to record. Anything else goes through the full decision below.
        return None
    client = db.session.get(Client, request.client_id)
    if client is None:
        return REFUSED
    decision = service.on_sign_in(session.user, client, interactive=request.interactive,
                                  origin=origin(), now=now)
    if decision.recorded:
        # The activation (or the request for approval) is a fact of its own, whatever the
        # rest of the flow does; it is committed here so that its event can leave at once,
        # before the browser is sent to the app.
        db.session.commit()
        events.deliver_now(decision.events)
    if decision.outcome == service.PASS:
        return None
    return WAITING if decision.outcome == service.WAIT else REFUSED
