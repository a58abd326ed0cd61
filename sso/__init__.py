"""Single sign-on provider: OAuth 2.0 / OpenID Connect for a company's business apps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config as config_module

if TYPE_CHECKING:
    from flask import Flask


def _template_folder() -> str:
    """``templates/`` beside the package in a checkout; inside it in an installed wheel."""
    package = Path(__file__).parent
    checkout = package.parent / "templates"
    return str(checkout if checkout.is_dir() else package / "templates")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the provider. ``config`` overrides the environment (tests use it).

    Building starts nothing: in development the settings may name the embedded Redis
    (``REDIS_EMBEDDED``), which the commands that run the provider start (``sso.embedded``).
    """
    from .web import ProviderApp  # noqa: PLC0415 - `sso --help` and the settings need no Flask

    app = ProviderApp(
        __name__,
        instance_path=str(config_module.instance_path(config)),
        instance_relative_config=False,
        template_folder=_template_folder(),
        static_folder="static",
    )
    config_module.load(app, config)
    logging.getLogger("authlib").setLevel(logging.INFO)

    from importlib import import_module  # noqa: PLC0415

    from . import (  # noqa: PLC0415
        branding,
        database,
        errors,
        flow,
        health,
        i18n,
        logs,
        metrics,
        notify,
        oidc,
        outbox,
        pages,
        qrlogin,
        selfservice,
        sessions,
        web,
    )
    from .admin import console  # noqa: PLC0415
    from .extensions import db, init_redis  # noqa: PLC0415
    from .security import PasswordHashing  # noqa: PLC0415
    from .signin import METHODS, STEPS  # noqa: PLC0415

    db.init_app(app)
    database.init_app(app)
    init_redis(app)
    logs.init_app(app)  # first: every later hook and audit row has the request id
    metrics.init_app(app)
    i18n.init_app(app)
    web.init_app(app)
    errors.init_app(app)
    sessions.init_app(app)
    flow.init_app(app, STEPS)
    branding.init_app(app)
    pages.init_app(app)
    app.extensions["sso_passwords"] = PasswordHashing(
        app.config["ARGON2_MEMORY_KIB"], app.config["ARGON2_TIME_COST"],
        app.config["ARGON2_PARALLELISM"],
    )
    outbox.init_app(app)
    notify.init_app(app)
    qrlogin.init_app(app)
    oidc.init_app(app)
    for method in METHODS:
        import_module(method).init_app(app)
    health.init_app(app)
    selfservice.init_app(app)
    console.init_app(app)
    web.trust_proxies(app)
    # The signing keys live in the database (sso/oidc/keystore.py): read, and created if the
    # table is empty, on first use, since the database may not be migrated yet here.
    return app
