"""The sign-in flow: the steps between "who are you" and "here is your code" (DESIGN.md §3).

The protocol layer (``sso.oidc``) hands the flow a protocol-free :class:`Request` (which app,
which scopes, which prompts) and asks :func:`next_interaction` what is still owed. Each step is
a function registered with :func:`register_step`; it looks at the request and the browser's
SSO session and either passes or names the page the user must visit next. Packages add their
steps in their ``init_app`` (accounts: activation; mfa: second factor; oidc: consent), so the
flow never imports them.

A step decides from facts that are already recorded (the session's ``auth_time`` and ``amr``,
a stored consent and when it was given) compared with when the request started, so a flow
needs no "done" flags and cannot loop.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..sessions.models import SSOSession


@dataclass(frozen=True)
class Request:
    """What the flow knows of a pending authorization request."""

    flow_id: str
    started_at: datetime
    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    prompts: frozenset[str] = frozenset()
    max_age: int | None = None
    login_hint: str | None = None
    #: The ``sub`` of a valid ``id_token_hint``: the user the app expects.
    expected_subject: str | None = None
    acr_values: tuple[str, ...] = ()
    #: The app's policies (first_party, mfa_required, activation, ...), read by the steps.
    policy: dict[str, Any] = field(default_factory=dict)

    @property
    def interactive(self) -> bool:
        return "none" not in self.prompts


@dataclass(frozen=True)
class Interaction:
    """A page the user must visit; ``error`` is what ``prompt=none`` answers instead."""

    endpoint: str
    error: str
    description: str = ""
    args: dict[str, str] = field(default_factory=dict)


Step = Callable[[Request, SSOSession | None, datetime], Interaction | None]

_steps: list[tuple[int, str, Step]] = []


def register_step(order: int, name: str, step: Step) -> None:
    """Add a step; lower ``order`` runs first. Registering a name again replaces it."""
    global _steps
    _steps = sorted(
        [s for s in _steps if s[1] != name] + [(order, name, step)], key=lambda s: s[0]
    )


def next_interaction(
    request: Request, session: SSOSession | None, now: datetime, *,
    only: Collection[str] | None = None,
) -> Interaction | None:
    """The first step still owed, or None when a code may be issued.

    ``only`` runs just the steps of those names: QR login asks whether the approving phone's
    session satisfies the app's MFA policy with ``only={"mfa"}``.
    """
    for _order, name, step in _steps:
        if only is not None and name not in only:
            continue
        interaction = step(request, session, now)
        if interaction is not None:
            return interaction
    return None


def step_names() -> list[str]:
    return [name for _order, name, _step in _steps]


def identify(request: Request, session: SSOSession | None, now: datetime) -> Interaction | None:
    """Step 1: someone must have signed in, recently enough, as the user the app expects."""
    login = Interaction("auth.login", "login_required")
    if session is None:
        return login
    signed_in_during_flow = session.auth_time >= request.started_at
    if signed_in_during_flow:
        return None
    if request.prompts & {"login", "select_account"}:
        return login
    if request.max_age is not None and (now - session.auth_time).total_seconds() > request.max_age:
        return login
    if request.expected_subject and request.expected_subject != session.user.subject:
        return login
    return None


register_step(10, "identify", identify)
