"""What templates ask of the provider beyond their view's context: the other ways to sign in
and the password rules, so every page that shows them says the same."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from .accounts.policy import required_classes
from .i18n import gettext as _


def sign_in_methods() -> list[Any]:
    """The ways to sign in besides the password (``sso.auth.register_sign_in_method``)."""
    return list(current_app.extensions.get("sso_sign_in_methods", []))


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
