"""The flow step "activation": may this signed-in user go on to this app?

It runs after consent in the step table, so a third-party app learns nothing (no account,
no event with the user's claims) before the user has agreed to share them.
"""

from __future__ import annotations

from datetime import datetime

from .. import flow
from ..oidc.public import get as get_client
from ..sessions.models import SSOSession
from ..web import origin
from . import service

#: The step's name in the step table (sso.signin.STEPS).
STEP_NAME = "activation"

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


def activation_step(request: flow.Request, session: SSOSession | None, now: datetime
                    ) -> flow.StepResult:
    if session is None:
        return None
    stored = request.stored_for(STEP_NAME, session.user_id)
    status = (stored[0] if stored is not None
              else service.status_of(session.user_id, request.client_id))
    if status == service.Status.ACTIVE:
        # The common case, every sign-in after the first: one column of one row, and
        # nothing to record. Anything else goes through the full decision below.
        return None
    client = get_client(request.client_id)
    if client is None:
        return REFUSED
    decision = service.decide_sign_in(session.user, client, interactive=request.interactive,
                                      origin=origin(), now=now)
    interaction = {service.PASS: None, service.WAIT: WAITING}.get(decision.outcome, REFUSED)
    return flow.Decision(interaction, decision.effect)
