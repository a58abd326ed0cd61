"""Scan to sign in (扫码登录): a signed-in phone approves a desktop sign-in (DESIGN.md §4).

Three audiences, a module each: the desktop (:mod:`.desktop`), the phone's web pages
(:mod:`.phone`) and the phone as a native app (:mod:`.api`).
"""

from __future__ import annotations

from flask import Flask, current_app

from .. import flow
from .broker import Broker
from .service import QR_SCOPE
from .store import QRStore

#: The tab's label; translated on the sign-in page (the catalog has it).
TAB_LABEL = "Scan to sign in"


def init_app(app: Flask) -> None:
    """Add the QR tab, the routes, the ``qr.approve`` scope and this worker's broker.

    Call before ``oidc.init_app``, which reads the extra scopes into discovery.
    """
    store = QRStore(app.extensions["sso_redis"], int(app.config["QR_TTL"]))
    app.extensions["sso_qr_store"] = store
    app.extensions["sso_qr_broker"] = Broker(
        store, outage_grace=float(app.config.get("QR_REDIS_GRACE", 0)))
    scopes = app.extensions.setdefault("sso_extra_scopes", [])
    if QR_SCOPE not in scopes:
        scopes.append(QR_SCOPE)

    from .api import api  # noqa: PLC0415
    from .ciba import bp as ciba  # noqa: PLC0415
    from .desktop import bp as desktop  # noqa: PLC0415
    from .phone import bp as phone  # noqa: PLC0415

    app.register_blueprint(desktop)
    app.register_blueprint(phone)
    app.register_blueprint(api)
    app.register_blueprint(ciba)
    flow.register_method(app, flow.Method("qr", "qrlogin.desktop", TAB_LABEL,
                                          cross_device=True))


def qr_store() -> QRStore:
    return current_app.extensions["sso_qr_store"]  # type: ignore[no-any-return]


def qr_broker() -> Broker:
    return current_app.extensions["sso_qr_broker"]  # type: ignore[no-any-return]
