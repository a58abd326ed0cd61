"""Who may enter the console: an admin of some kind, with a fresh second factor.

Entering needs ``acr`` ``urn:sso:loa:2`` (a password and a second factor in this SSO
session); the console asks for the second factor again (``/mfa/verify?next=...``, the same
page and the same passage as any step-up) after ``ADMIN_IDLE`` seconds without an admin page.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import abort, current_app, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ...dbtypes import utcnow
from ...flow import passage
from ...i18n import gettext as _
from ...sessions.models import ACR_MULTI_FACTOR
from .. import operations
from .. import remit as remits
from ..remit import Remit
from .blueprint import bp

F = TypeVar("F", bound=Callable[..., Any])

#: Proofs that count as the console's second factor (a remembered browser does not).
ADMIN_SECOND_FACTORS = frozenset({"otp", "recovery", "sms", "hwk", "swk"})
SEEN_KEY = "admin_seen"


def _fresh_since(sso_session: Any) -> datetime | None:
    proof = sso_session.second_factor(ADMIN_SECOND_FACTORS)
    fresh = proof.at if proof else None
    seen = session.get(SEEN_KEY)
    if isinstance(seen, list) and len(seen) == 2 and seen[0] == sso_session.id:
        try:
            last = datetime.fromtimestamp(float(seen[1]), tz=utcnow().tzinfo)
        except (TypeError, ValueError, OverflowError):
            last = None
        if last and fresh and last > fresh:
            fresh = last
    return fresh


def _step_up() -> Response:
    path = request.full_path if request.method == "GET" else url_for("admin.home")
    return redirect(url_for("mfa.verify", next=path.rstrip("?")))  # type: ignore[return-value]


def entry() -> Remit | Response:
    """The admin's remit, or the answer instead: the sign-in page, the second-factor page,
    or 403 for someone who is no admin."""
    sso_session = passage.current_session()
    if sso_session is None:
        path = request.full_path if request.method == "GET" else url_for("admin.home")
        return redirect(url_for("auth.login", next=path.rstrip("?")))  # type: ignore[return-value]
    remit = remits.of(sso_session.user)
    if remit is None:
        abort(403)
    now = utcnow()
    fresh = _fresh_since(sso_session)
    idle = int(current_app.config["ADMIN_IDLE"])
    if sso_session.acr != ACR_MULTI_FACTOR or fresh is None or (now - fresh).total_seconds() > idle:
        return _step_up()
    session[SEEN_KEY] = [sso_session.id, now.timestamp()]
    g.admin_remit = remit
    return remit


def admin_page(view: F) -> F:
    """Run ``view(remit, ...)`` for an admin who entered; out-of-remit reads as 404 and a
    read-only admin trying to change gets 403."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = entry()
        if isinstance(found, Response):
            return found
        try:
            return view(found, *args, **kwargs)
        except operations.OutOfRemit:
            abort(404)
        except operations.ReadOnly:
            return page("admin/refused.html", status=403,
                        message=_("Your admin role may look at this but not change it."))

    return wrapper  # type: ignore[return-value]


def page(template: str, status: int = 200, **context: Any) -> Response:
    html = render_template(template, remit=g.get("admin_remit"), **context)
    return Response(html, status=status, mimetype="text/html")


def N_(text: str) -> str:  # noqa: N802 - gettext's name for "translate later"
    return text


#: The services' refusals that name something, as patterns and the message to translate.
PATTERNS = [(re.compile(pattern), template) for pattern, template in (
    (r"^no user '(?P<name>.*)'$", N_("no user %(name)s")),
    (r"^no client '(?P<name>.*)'$", N_("no app %(name)s")),
    (r"^no group '(?P<name>.*)'$", N_("no group %(name)s")),
    (r"^groups nest at most (?P<count>\d+) levels deep$",
     N_("groups nest at most %(count)s levels deep")),
    (r"^app '(?P<app>.*)' has no role '(?P<role>.*)'$", N_("app %(app)s has no role %(role)s")),
    (r"^(?P<uri>.*): must be absolute and without a fragment$",
     N_("%(uri)s: must be absolute and without a fragment")),
    (r"^(?P<uri>.*): the port is not a number from 0 to 65535$",
     N_("%(uri)s: the port is not a number from 0 to 65535")),
    (r"^(?P<uri>.*): plain http is allowed for loopback addresses only$",
     N_("%(uri)s: plain http is allowed for loopback addresses only")),
    (r"^(?P<uri>.*): use https \(or, for a native app, a reverse-DNS private scheme\)$",
     N_("%(uri)s: use https (or, for a native app, a reverse-DNS private scheme)")),
    (r"^grant type '(?P<grant>.*)' is not supported$",
     N_("grant type %(grant)s is not supported")),
    (r"^scope '(?P<scope>.*)' has characters RFC 6749 §3.3 does not allow$",
     N_("scope %(scope)s has characters RFC 6749 §3.3 does not allow")),
    (r"^(?P<user>\S+) is already active in (?P<app>\S+)$",
     N_("%(user)s is already active in %(app)s")),
    (r"^(?P<user>\S+) is active in (?P<app>\S+); use revoke$",
     N_("%(user)s is active in %(app)s; revoke the access instead")),
    (r"^(?P<user>\S+) has no open account in (?P<app>\S+)$",
     N_("%(user)s has no open account in %(app)s")),
    (r"^(?P<user>\S+) is (?P<status>\w+), not disabled$",
     N_("%(user)s is %(status)s, not disabled")),
    (r"^(?P<user>\S+) is (?P<status>\w+), not invited$",
     N_("%(user)s is %(status)s, not invited")),
    (r"^duplicate of line (?P<line>\d+)$", N_("duplicate of line %(line)s")),
    (r"^line (?P<line>\d+): (?P<error>.*); nothing was imported$",
     N_("line %(line)s: %(error)s; nothing was imported")),
    (r"^the app has no role named '(?P<role>.*)'; define it first$",
     N_("the app has no role named %(role)s; define it first")),
    (r"^logo URI: an absolute URL of at most (?P<count>\d+) characters, without credentials "
     r"or fragment$",
     N_("logo URI: an absolute URL of at most %(count)s characters, without credentials or "
        "fragment")),
    (r"^(?P<what>[A-Za-z -]+ lifetime): (?P<low>\d+) to (?P<high>\d+) seconds, or empty for "
     r"the default$",
     N_("%(what)s: %(low)s to %(high)s seconds, or empty for the default")),
    (r"^(?P<what>[A-Za-z -]+ lifetime): a whole number of seconds$",
     N_("%(what)s: a whole number of seconds")),
    # The refusals of sso.outbound.check_endpoint (events and logout endpoints).
    (r"^(?P<what>[a-z -]+): an absolute https URL is required$",
     N_("%(what)s: an absolute https URL is required")),
    (r"^(?P<what>[a-z -]+): longer than (?P<count>\d+) characters$",
     N_("%(what)s: longer than %(count)s characters")),
    (r"^(?P<what>[a-z -]+): spaces, control or non-ASCII characters are not allowed .*$",
     N_("%(what)s: spaces, control or non-ASCII characters are not allowed (write an "
        "international host name in punycode)")),
    (r"^(?P<what>[a-z -]+): credentials in the URL are not allowed$",
     N_("%(what)s: credentials in the URL are not allowed")),
    (r"^(?P<what>[a-z -]+): a fragment is not allowed$",
     N_("%(what)s: a fragment is not allowed")),
    (r"^(?P<what>[a-z -]+): the port must be a number from 1 to 65535$",
     N_("%(what)s: the port must be a number from 1 to 65535")),
    (r"^(?P<what>[a-z -]+): the URL has no host$", N_("%(what)s: the URL has no host")),
    (r"^(?P<what>[a-z -]+): write the address as a plain IP address or a host name$",
     N_("%(what)s: write the address as a plain IP address or a host name")),
    (r"^(?P<what>[a-z -]+): use https \(plain http only to a loopback address with "
     r"SSO_ENV=development\)$",
     N_("%(what)s: use https (plain http only to a loopback address with "
        "SSO_ENV=development)")),
    (r"^(?P<what>[a-z -]+): (?P<host>\S+) is a cloud metadata service$",
     N_("%(what)s: %(host)s is a cloud metadata service")),
    (r"^(?P<what>[a-z -]+): a loopback host is allowed only with SSO_ENV=development .*$",
     N_("%(what)s: a loopback host is allowed only with SSO_ENV=development (or list it in "
        "SSO_OUTBOUND_ALLOW)")),
    (r"^(?P<what>[a-z -]+): (?P<host>\S+) is (?P<why>a loopback address|a link-local \(cloud "
     r"metadata\) address|not a unicast address|a private address) \(list it in .*$",
     N_("%(what)s: %(host)s is %(why)s (list it in SSO_OUTBOUND_ALLOW if this provider should "
        "reach it)")),
)]


#: The terms above, for the catalogue.
TERMS = (N_("access token lifetime"), N_("ID token lifetime"), N_("refresh token lifetime"),
         N_("events endpoint"), N_("back-channel logout URI"), N_("front-channel logout URI"),
         N_("a loopback address"), N_("a link-local (cloud metadata) address"),
         N_("not a unicast address"), N_("a private address"))


def message(error: Exception) -> str:
    """A refusal's message in the admin's language (the services' messages are English)."""
    text = str(error)
    for pattern, template in PATTERNS:
        found = pattern.match(text)
        if found:
            # Terms the services name (what was refused, and why) are translated themselves.
            parts = {key: _(value) if key in ("what", "why") else value
                     for key, value in found.groupdict().items()}
            return _(template, **parts)
    return _(text)


@bp.app_template_global()
def admin_message(text: str) -> str:
    return message(Exception(text))


@bp.app_template_global()
def admin_nav() -> list[tuple[str, str]]:
    remit: Remit | None = g.get("admin_remit")
    items = [("admin.home", _("Overview")), ("admin.users", _("Users")),
             ("admin.groups", _("Groups")), ("admin.apps", _("Apps")),
             ("admin.queue", _("Activation queue")),
             ("admin.audit", _("Audit log"))]
    if remit is not None and remit.reads_everything:
        items.append(("admin.keys", _("Keys")))
    if remit is not None and remit.super_admin:
        items.append(("admin.registration", _("Dynamic registration")))
    return items
