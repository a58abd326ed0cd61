"""What templates ask of the provider beyond their view's context: the other ways to sign in
and the password rules, so every page that shows them says the same."""

from __future__ import annotations

from flask import Flask, current_app

from . import flow
from .accounts.policy import required_classes
from .i18n import gettext as _


def sign_in_methods(query: dict[str, str] | None = None) -> list[flow.Method]:
    """The ways to sign in besides the password (``flow.register_method``). A sign-in that
    returns to a page of this site (``next``: a phone about to approve a scanned code) offers
    only the methods that work on this very device."""
    returning = bool(query and query.get("next"))
    return [m for m in flow.registry().methods if not (returning and m.cross_device)]


def password_rules() -> list[str]:
    """The password policy in the reader's language, shown before anyone types (a rule first
    met in an error message is a rule nobody could follow)."""
    config = current_app.config
    rules = [_("At least %(count)s characters.", count=config["PASSWORD_MIN_LENGTH"])]
    classes = required_classes(config)
    names = {"letters": _("letters"), "digits": _("digits"), "symbols": _("symbols")}
    if len(classes) > 1:
        rules.append(_("A mix of %(classes)s.",
                       classes=_(", ").join(names[c] for c in classes)))
    elif classes:
        rules.append(_("At least one of: %(classes)s.", classes=names[classes[0]]))
    if config.get("PASSWORD_REFUSE_COMMON", True):
        rules.append(_("Not a commonly used password."))
    rules.append(_("Not your username or the name in your email address."))
    if int(config.get("PASSWORD_HISTORY", 0) or 0) > 0:
        rules.append(_("Not one of your last %(count)s passwords.",
                       count=config["PASSWORD_HISTORY"]))
    return rules


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(sign_in_methods_all=sign_in_methods, password_rules=password_rules)
