"""The sign-in flow: the steps between "who are you" and "here is your code" (DESIGN.md §3).

The protocol layer (``sso.oidc``) hands the flow a protocol-free :class:`Request` (which app,
its policy, which scopes, which prompts) and asks :func:`decide` what is still owed. The
steps run in the order of the one table the app was built with (``sso.signin.STEPS``); each
is a function that only *decides*: it looks at the request and the browser's SSO session and
returns nothing (satisfied), the :class:`Interaction` still owed, or a :class:`Decision` that
also names what the decision causes (an app account activated, a request for approval
filed). Steps never commit, mail or call out: :func:`run_effects` runs the effects of the
decisions taken, once, after every step has decided, in the caller's transaction, and
whatever they send leaves through the outbox after the caller commits.

A step decides from facts already recorded (the session's proofs and their times, a stored
consent and when it was given) compared with when the request started, so a flow needs no
"done" flags and cannot loop.

A sign-in page ends in one of the passage's two exits (:mod:`.passage`): ``finish`` when the
user proved something, ``abort`` when the user or the app gave up.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, current_app

from ..extensions import db
from ..sessions.models import SSOSession

#: App-account activation policies (DESIGN.md §3 step 4).
ACTIVATION_AUTO = "auto"
ACTIVATION_APPROVAL = "approval"
ACTIVATION_INVITE = "invite"
ACTIVATION_POLICIES = (ACTIVATION_AUTO, ACTIVATION_APPROVAL, ACTIVATION_INVITE)


@dataclass(frozen=True)
class AppPolicy:
    """An app's sign-in policy: what the steps of its flow read (typed client columns)."""

    first_party: bool = False
    mfa_required: bool = False
    #: Whether a remembered browser may stand in for the second factor at this app.
    remember_device: bool = True
    activation: str = ACTIVATION_AUTO
    #: Scan-to-sign-in approvals for this app pick the number the desktop shows.
    qr_number_matching: bool = False
    #: Scan-to-sign-in approvals from a phone on another network are refused.
    qr_refuse_remote: bool = False


@dataclass(frozen=True)
class StoredFacts:
    """What the steps read from the database for one user and app, read along with the SSO
    session in the same statement (:func:`sso.flow.passage.current_session_for`): a step's
    values in the order of its :attr:`Step.reads` columns."""

    user_id: int
    by_step: Mapping[str, tuple[Any, ...]]


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
    policy: AppPolicy = field(default_factory=AppPolicy)
    #: The steps' stored facts about the signed-in user, if they were read with the session.
    stored: StoredFacts | None = None

    @property
    def interactive(self) -> bool:
        return "none" not in self.prompts

    def stored_for(self, step_name: str, user_id: int) -> tuple[Any, ...] | None:
        """The values of ``step_name``'s :attr:`Step.reads` for ``user_id``, or None when
        they were not read along with the session: the step then reads them itself."""
        stored = self.stored
        if stored is None or stored.user_id != user_id:
            return None
        return stored.by_step.get(step_name)


@dataclass(frozen=True)
class Interaction:
    """A page the user must visit; ``error`` is what ``prompt=none`` answers instead."""

    endpoint: str
    error: str
    description: str = ""
    args: dict[str, str] = field(default_factory=dict)


#: What a decision causes; its return value (e.g. the messages it queued) is not used.
Effect = Callable[[], object]


@dataclass(frozen=True)
class Decision:
    """A step's decision that causes something: ``effect`` runs once every step has decided
    (in the caller's transaction); ``interaction`` is the page still owed, or None."""

    interaction: Interaction | None = None
    effect: Effect | None = None


StepResult = Interaction | Decision | None
StepFunction = Callable[[Request, SSOSession | None, datetime], StepResult]
#: (the user's id, the app's client id), both as SQL expressions -> the columns of what a
#: step's check reads from the database.
StepReads = Callable[[Any, Any], Sequence[Any]]


@dataclass(frozen=True)
class Step:
    """One row of the step table: a name (for ``only=``, tests and docs) and its check.

    ``reads``: the facts about the user the check reads from the database, as columns. An
    authorization reads them in the statement that reads the browser's SSO session, instead
    of a statement per step (a round trip each on PostgreSQL, issue 15); the check finds them
    with :meth:`Request.stored_for` and reads them itself when they are not there."""

    name: str
    check: StepFunction
    reads: StepReads | None = None


@dataclass(frozen=True)
class Method:
    """A way to sign in offered on the sign-in page as a tab beside the password form."""

    name: str
    #: The page of the tab; it gets the ``flow`` id (or ``next``) as query arguments.
    endpoint: str
    #: The tab's label, translated on the page (the method's catalogue has it).
    label: str
    #: Needs a second device (scan a code with a phone): not offered on a phone that signs
    #: in to approve another device.
    cross_device: bool = False


class Passage:
    """The app's step table and sign-in methods, fixed when the app is built."""

    def __init__(self, steps: Sequence[Step]) -> None:
        names = [step.name for step in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"a step is listed twice: {names}")
        self.steps: tuple[Step, ...] = tuple(steps)
        self.methods: list[Method] = []
        #: The session read with the steps' reads (:func:`.passage.current_session_for`),
        #: built by the passage's ``init_app``.
        self.stored_read: Any = None


def init_app(app: Flask, steps: Sequence[Step]) -> None:
    from .passage import init_app as init_exits  # noqa: PLC0415

    app.extensions["sso_passage"] = Passage(steps)
    init_exits(app)


def registry() -> Passage:
    return current_app.extensions["sso_passage"]  # type: ignore[no-any-return]


def register_method(app: Flask, method: Method) -> None:
    """Offer another way to sign in (a tab on the sign-in page); see docs/architecture.md."""
    methods = app.extensions["sso_passage"].methods
    if all(m.name != method.name for m in methods):
        methods.append(method)


def step_names() -> list[str]:
    return [step.name for step in registry().steps]


def decide(
    request: Request, session: SSOSession | None, now: datetime, *,
    only: Collection[str] | None = None,
) -> tuple[Interaction | None, list[Effect]]:
    """Run the steps in table order until one owes an interaction; return it (None: a code
    may be issued) and the effects of the decisions taken, in order, not yet run.

    ``only`` runs just the steps of those names: scan-to-sign-in asks whether the approving
    phone's session satisfies the app's second-factor policy with ``only={"mfa"}``.
    """
    effects: list[Effect] = []
    for step in registry().steps:
        if only is not None and step.name not in only:
            continue
        result = step.check(request, session, now)
        if isinstance(result, Decision):
            if result.effect is not None:
                effects.append(result.effect)
            result = result.interaction
        if result is not None:
            return result, effects
    return None, effects


def run_effects(effects: Sequence[Effect]) -> None:
    """Run what the decisions cause (once, in order) and commit it: an app account activated
    or a request filed is a fact of its own, whatever the rest of the request does (and what
    it sends leaves through the outbox after this commit)."""
    for effect in effects:
        effect()
    if effects:
        db.session.commit()


def identify(request: Request, session: SSOSession | None, now: datetime) -> Interaction | None:
    """Someone must have signed in, recently enough, as the user the app expects."""
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
