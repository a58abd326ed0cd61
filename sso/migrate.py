"""Alembic, driven from the app: the one way the schema changes, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(app: Flask) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", app.config["SQLALCHEMY_DATABASE_URI"]
                        .replace("%", "%%"))
    cfg.attributes["app"] = app
    return cfg


def upgrade(app: Flask, revision: str = "head") -> None:
    """Migrate; at the head, also make sure the signing keys exist (the migration that made
    their table imported the old key folder; what is still missing is created here, before any
    request could need it)."""
    with app.app_context():
        command.upgrade(alembic_config(app), revision)
        if revision == "head":
            app.extensions["sso_keys"].ensure()


def downgrade(app: Flask, revision: str) -> None:
    with app.app_context():
        command.downgrade(alembic_config(app), revision)


def current_revision(app: Flask) -> str | None:
    from .extensions import db  # noqa: PLC0415

    with app.app_context(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def heads(app: Flask) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(app)).get_heads())


def is_current(app: Flask) -> bool:
    return current_revision(app) in heads(app)


def check(app: Flask) -> None:
    """Raise if the models and the migrations disagree (``alembic check``)."""
    with app.app_context():
        command.check(alembic_config(app))


def revision(app: Flask, message: str) -> None:
    with app.app_context():
        command.revision(alembic_config(app), message=message, autogenerate=True)
