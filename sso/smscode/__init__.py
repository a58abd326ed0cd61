"""Sign in with a one-time code sent by SMS to the account's verified mobile number.

The example of a sign-in method as one package (docs/architecture.md, "Adding a sign-in
method"): its pages, its SMS text, its translations and its settings live here, it joins the
sign-in page with one ``flow.register_method`` call below, and the only line outside the
package is its name in ``sso.signin.METHODS``. Off unless ``SSO_SMS_SIGN_IN=true``.

Settings (``SSO_`` + name): ``SMS_SIGN_IN`` (off), ``SMS_SIGN_IN_RATE_IP`` (codes asked for
per address, ``10/600``: ten per ten minutes), ``SMS_SIGN_IN_RATE_LOGIN`` (per typed name,
``3/600``), ``SMS_SIGN_IN_RATE_VERIFY_IP`` (codes typed per address, ``30/600``). A code is
valid 10 minutes and for 5 tries (:mod:`.service`).
"""

from __future__ import annotations

from flask import Flask

from .. import flow

#: The tab's label; translated on the sign-in page (this package's catalogue has it).
TAB_LABEL = "Code by SMS"

DEFAULTS = {
    "SMS_SIGN_IN": False,
    "SMS_SIGN_IN_RATE_IP": "10/600",
    "SMS_SIGN_IN_RATE_LOGIN": "3/600",
    "SMS_SIGN_IN_RATE_VERIFY_IP": "30/600",
}


def enabled(value: object) -> bool:
    """``SSO_SMS_SIGN_IN`` as typed: ``true``/``1``/``yes``/``on`` (any case) turn it on."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def init_app(app: Flask) -> None:
    """Offer the method when ``SSO_SMS_SIGN_IN`` is on: its pages and its tab."""
    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    if not enabled(app.config["SMS_SIGN_IN"]):
        return
    from .views import bp  # noqa: PLC0415

    app.register_blueprint(bp)
    flow.register_method(app, flow.Method("sms-code", "smscode.start", TAB_LABEL))
