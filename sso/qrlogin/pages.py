"""What the QR pages share: the readable message pages and their wording."""

from __future__ import annotations

from flask import render_template
from werkzeug.wrappers import Response

from ..i18n import gettext as _
from .store import BLOCKED, DENIED, FAR_REFUSED, MISSING, OTHER_USER, PENDING, WRONG_NUMBER, Outcome


def unavailable_message() -> str:
    return _("Scan to sign in is unavailable right now. Please sign in with your password.")


def message(title: str, text: str, status: int) -> Response:
    html = render_template("qrlogin/message.html", title=title, message=text)
    return Response(html, status=status, mimetype="text/html")


def outcome_page(outcome: Outcome) -> Response:
    """A readable page for a transition that did not happen."""
    result = outcome.result
    if result == MISSING:
        return message(_("This code has expired"), _(
            "This code has expired or is not valid. Make a new code on your computer."), 404)
    if result == OTHER_USER:
        return message(_("Code already scanned"),
                        _("This code was scanned with another account."), 409)
    if result == WRONG_NUMBER:
        return message(_("Sign-in cancelled"), _(
            "The number you picked does not match the one on your computer. The sign-in was "
            "cancelled for your safety."), 400)
    if result == DENIED:
        return message(_("Sign-in cancelled"), _("This sign-in was cancelled."), 409)
    if result == FAR_REFUSED:
        return message(_("Not from another network"), _(
            "This app does not allow approving a sign-in from a phone on another network than "
            "the computer's. Sign in on the computer with your password instead."), 403)
    if result == BLOCKED:
        return message(_("Scan to sign in is paused"), _(
            "You recently reported a sign-in that was not yours, so scan to sign in is "
            "paused for your account for a while. Sign in on the computer with your "
            "password instead."), 403)
    if result == PENDING:
        return message(_("Scan the code first"),
                        _("Open this page by scanning the code on your computer."), 409)
    return message(_("Code already used"), _("This code has already been used."), 409)


