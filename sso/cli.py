"""The ``sso`` command: set up, serve and administer the provider.

This module keeps setup (``init``, ``db``) and serving (``serve``). The admin commands live in
:mod:`sso.admin.cli` (beside the service the admin console will share) and the demo's in
:mod:`sso.demo.cli`; both are loaded only when named or listed by ``--help``
(:data:`LAZY_COMMANDS`). Nothing here imports Flask, the database or the demo at load time,
so ``sso --help`` is quick and works with no settings at all, and a server installed without
the demo's dependencies (the Docker image) runs every command but the demo's.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import serving

if TYPE_CHECKING:
    from flask import Flask

F = TypeVar("F", bound=Callable[..., Any])

#: Commands defined in other modules: name -> "module:attribute", imported when needed.
LAZY_COMMANDS = {
    "admins": "sso.admin.admins_cli:admins_group",
    "apps": "sso.admin.cli:apps_group",
    "audit": "sso.admin.audit_cli:audit_group",
    "clients": "sso.admin.cli:clients_group",
    "demo": "sso.demo.cli:demo_command",
    "demo-app": "sso.demo.cli:demo_app_command",
    "groups": "sso.admin.groups_cli:groups_group",
    "keys": "sso.admin.cli:keys_group",
    "mfa": "sso.admin.cli:mfa_group",
    "purge": "sso.admin.cli:purge_command",
    "qr": "sso.admin.cli:qr_group",
    "roles": "sso.admin.cli:roles_group",
    "users": "sso.admin.cli:users_group",
}


class LazyGroup(click.Group):
    """A group whose commands from :data:`LAZY_COMMANDS` are imported only when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
def cli() -> None:
    """Single sign-on provider (OAuth 2.0 / OpenID Connect)."""


def load_app() -> Flask:
    """The provider as the settings describe it, for a command to work on.

    A setting that cannot run safely stops the command with its one-line message (click's
    ``Error: ...``), not a traceback. With development settings that use the embedded Redis,
    it is started here if it is not running (``create_app`` itself starts nothing).
    """
    from . import create_app  # noqa: PLC0415
    from .config import ConfigError  # noqa: PLC0415

    try:
        app = create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if app.config["REDIS_EMBEDDED"]:
        from .embedded import ensure_redis  # noqa: PLC0415

        ensure_redis(app.instance_path)
    return app


def load_settings() -> dict[str, Any]:
    """The provider's settings without building it; a refusal is click's one-line error."""
    from .config import ConfigError, instance_path, resolve  # noqa: PLC0415

    try:
        return resolve(instance_path())
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def with_app(command: F) -> F:
    """Run ``command`` inside an app context (Flask's ``with_appcontext``, which this mirrors,
    would import Flask as the module loads). The app comes from the context object when one
    was given (``app.test_cli_runner()`` passes a Flask ``ScriptInfo``), else from
    :func:`load_app`."""

    @click.pass_context
    def run(ctx: click.Context, /, *args: Any, **kwargs: Any) -> Any:
        from flask import current_app  # noqa: PLC0415

        if not current_app:
            app = ctx.obj.load_app() if ctx.obj is not None else load_app()
            ctx.with_resource(app.app_context())
        return ctx.invoke(command, *args, **kwargs)

    return functools.update_wrapper(run, command)  # type: ignore[return-value]


# Setup.


@cli.command("init")
@with_app
def init_command() -> None:
    """Create or upgrade the database and create the signing keys."""
    from flask import current_app  # noqa: PLC0415

    from . import migrate  # noqa: PLC0415

    migrate.upgrade(current_app._get_current_object())  # type: ignore[attr-defined]
    created = current_app.extensions["sso_keys"].ensure()
    click.echo(f"database: {current_app.config['SQLALCHEMY_DATABASE_URI']} (up to date)")
    click.echo(f"keys: in the database ({'created' if created else 'present'})")


@cli.group("db")
def db_group() -> None:
    """Database migrations (Alembic)."""


def _current_app() -> Flask:
    from flask import current_app  # noqa: PLC0415

    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_app
def db_upgrade(revision: str) -> None:
    """Apply migrations."""
    from . import migrate  # noqa: PLC0415

    migrate.upgrade(_current_app(), revision)
    click.echo("database upgraded")


@db_group.command("current")
@click.pass_obj
def db_current(loader: Any) -> None:
    """Show the applied revision."""
    from .schema_version import SchemaVersionError, applied_revision  # noqa: PLC0415

    # The settings are enough (the database driver reads the revision): no app to build.
    settings = loader.load_app().config if loader is not None else load_settings()
    try:
        revision = applied_revision(settings["SQLALCHEMY_DATABASE_URI"])
    except SchemaVersionError as error:
        raise click.ClickException(str(error)) from None
    click.echo(revision or "(empty)")


@db_group.command("check")
@with_app
def db_check() -> None:
    """Fail if the models have changes no migration covers."""
    from . import migrate  # noqa: PLC0415

    migrate.check(_current_app())
    click.echo("models and migrations agree")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
@with_app
def db_revision(message: str) -> None:
    """Generate a migration from model changes (for developers)."""
    from . import migrate  # noqa: PLC0415

    migrate.revision(_current_app(), message)


# Serving.


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Worker processes (one per core the server may use).")
@click.option("--threads", default=serving.THREADS, show_default=True, type=int,
              help="Requests one worker answers at once, each waiting QR desktop included.")
def serve_command(host: str, port: int, workers: int, threads: int) -> None:
    """Run the provider under granian (the production server, sso/serving.py)."""
    try:
        import granian  # noqa: F401, PLC0415
    except ImportError:
        raise click.ClickException(
            "sso serve needs granian: pip install 'sso[server]'") from None
    # Checked here, so a refusal is one line rather than a traceback from every worker.
    settings = load_settings()
    if settings["REDIS_EMBEDDED"]:
        from .config import instance_path  # noqa: PLC0415
        from .embedded import ensure_redis  # noqa: PLC0415

        # The workers find it through the environment; they start nothing themselves.
        os.environ["SSO_REDIS_URL"] = ensure_redis(str(instance_path()))
    serving.prepare_metrics_folder(port)
    args = serving.command(host, port, workers, threads)
    os.execv(args[0], args)  # noqa: S606 - replaces this process with granian
