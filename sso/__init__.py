"""Single sign-on provider: OAuth 2.0 / OpenID Connect for a company's business apps."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask

from . import config as config_module


def _template_folder() -> str:
    """``templates/`` beside the package in a checkout; inside it in an installed wheel."""
    package = Path(__file__).parent
    checkout = package.parent / "templates"
    return str(checkout if checkout.is_dir() else package / "templates")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the provider. ``config`` overrides the environment (tests use it)."""
    instance_path = (config or {}).get("INSTANCE_PATH") or os.environ.get("SSO_INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=str(Path(instance_path).absolute()) if instance_path else None,
        instance_relative_config=False,
        template_folder=_template_folder(),
        static_folder="static",
    )
    config_module.load(app, config)
    if not app.config.get("REDIS_URL"):
        from .embedded import ensure_redis  # noqa: PLC0415

        app.config["REDIS_URL"] = ensure_redis(app.instance_path)
    logging.getLogger("authlib").setLevel(logging.INFO)

    from . import (  # noqa: PLC0415
        accounts,
        apps,
        auth,
        branding,
        errors,
        i18n,
        mfa,
        notify,
        oidc,
        outbox,
        pages,
        qrlogin,
        web,
    )
    from .extensions import db, init_redis  # noqa: PLC0415
    from .security import PasswordHashing  # noqa: PLC0415

    db.init_app(app)
    init_redis(app)
    i18n.init_app(app)
    web.init_app(app)
    errors.init_app(app)
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
    auth.init_app(app)
    apps.init_app(app)
    accounts.init_app(app)
    mfa.init_app(app)
    _ensure_keys(app)
    return app


def _ensure_keys(app: Flask) -> None:
    """Create the signing keys on first run (DESIGN.md §6); later runs only read them."""
    from .oidc.keys import MANIFEST  # noqa: PLC0415

    keys = app.extensions["sso_keys"]
    if not (Path(app.config["KEYS_DIR"]) / MANIFEST).exists():
        keys.ensure()
