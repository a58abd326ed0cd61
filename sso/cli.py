"""The ``sso`` command: set up, administer and serve the provider."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from . import audit, create_app, migrate


def _make_app() -> Any:
    return create_app()


@click.group(cls=FlaskGroup, create_app=_make_app, add_default_commands=False,
             add_version_option=False)
def cli() -> None:
    """Single sign-on provider (OAuth 2.0 / OpenID Connect)."""


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _commit() -> None:
    from .extensions import db  # noqa: PLC0415

    db.session.commit()


# Setup.


@cli.command("init")
@with_appcontext
def init_command() -> None:
    """Create or upgrade the database and create the signing keys."""
    migrate.upgrade(current_app._get_current_object())  # type: ignore[attr-defined]
    created = current_app.extensions["sso_keys"].ensure()
    click.echo(f"database: {current_app.config['SQLALCHEMY_DATABASE_URI']} (up to date)")
    click.echo(f"keys: {current_app.config['KEYS_DIR']} ({'created' if created else 'present'})")


@cli.group("db")
def db_group() -> None:
    """Database migrations (Alembic)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations."""
    migrate.upgrade(current_app._get_current_object(), revision)  # type: ignore[attr-defined]
    click.echo("database upgraded")


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Show the applied revision."""
    click.echo(migrate.current_revision(current_app._get_current_object()) or "(empty)")  # type: ignore[attr-defined]


@db_group.command("check")
@with_appcontext
def db_check() -> None:
    """Fail if the models have changes no migration covers."""
    migrate.check(current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo("models and migrations agree")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
@with_appcontext
def db_revision(message: str) -> None:
    """Generate a migration from model changes (for developers)."""
    migrate.revision(current_app._get_current_object(), message)  # type: ignore[attr-defined]


# Users.


@cli.group("users")
def users_group() -> None:
    """Manage users."""


def _find_user(login: str) -> Any:
    from .users.service import find_by_login  # noqa: PLC0415

    user = find_by_login(login)
    if user is None:
        _fail(f"no user {login!r}")
    return user


@users_group.command("create")
@click.option("--username", required=True)
@click.option("--email")
@click.option("--phone")
@click.option("--name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin", is_flag=True, help="Give the user the admin role of the provider.")
@click.option("--must-change", is_flag=True,
              help="An initial password: the user must replace it at the first sign-in.")
@with_appcontext
def users_create(username: str, email: str | None, phone: str | None, name: str | None,
                 password: str, admin: bool, must_change: bool) -> None:
    """Create an active user with a password."""
    from .accounts.policy import PasswordRejected  # noqa: PLC0415
    from .accounts.service import AccountError, create_user  # noqa: PLC0415

    try:
        user = create_user(username, email=email, phone=phone, name=name, password=password,
                           is_admin=admin, must_change=must_change)
    except (AccountError, PasswordRejected) as error:
        _fail(str(error))
    _commit()
    click.echo(f"created user {user.username} (sub {user.subject})")


@users_group.command("list")
@with_appcontext
def users_list() -> None:
    """List users."""
    from sqlalchemy import select  # noqa: PLC0415

    from .extensions import db  # noqa: PLC0415
    from .users.models import User  # noqa: PLC0415

    for user in db.session.scalars(select(User).order_by(User.username)):
        flags = " admin" if user.is_admin else ""
        click.echo(f"{user.username:24} {user.email or '-':32} {user.status}{flags}")


@users_group.command("set-password")
@click.argument("login")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--must-change", is_flag=True,
              help="The user must replace it at the next sign-in.")
@with_appcontext
def users_set_password(login: str, password: str, must_change: bool) -> None:
    """Set a user's password (it must satisfy the password policy)."""
    from .accounts.policy import PasswordRejected  # noqa: PLC0415
    from .accounts.service import set_password  # noqa: PLC0415

    try:
        set_password(_find_user(login), password, must_change=must_change, actor="cli")
    except PasswordRejected as error:
        _fail(f"password refused: {error}")
    _commit()
    click.echo("password set")


# Clients.


@cli.group("clients")
def clients_group() -> None:
    """Register and manage client apps."""


def _client_dict(client: Any, secret: str | None = None) -> dict[str, Any]:
    data = {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public,
        "first_party": client.first_party,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "scope": client.scope,
        "settings": client.settings or {},
        "name_zh": client.name_zh,
        "logo_uri": client.logo_uri,
    }
    if secret:
        data["client_secret"] = secret
    return data


@clients_group.command("create")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--post-logout-redirect-uri", "post_logout_uris", multiple=True)
@click.option("--public", is_flag=True, help="No secret; PKCE is required (SPA, mobile).")
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]))
@click.option("--scope", help="Space-separated scopes the client may request.")
@click.option("--first-party", is_flag=True, help="The company's own app: no consent page.")
@click.option("--id-token-alg", type=click.Choice(["RS256", "ES256"]), default="RS256",
              show_default=True)
@click.option("--client-id", help="Choose the client_id instead of a random one.")
@click.option("--activation", type=click.Choice(["auto", "approval", "invite"]),
              help="How users get an account in the app at first sign-in (default: auto).")
@click.option("--events-endpoint", help="URL that receives account events as signed SETs.")
@click.option("--mfa-required", is_flag=True,
              help="Users need two-step verification to sign in to this app.")
@click.option("--name-zh", help="The app's name on Chinese pages.")
@click.option("--logo-uri", help="https URL of the app's logo, shown on the sign-in pages.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@with_appcontext
def clients_create(name: str, redirect_uris: tuple[str, ...], post_logout_uris: tuple[str, ...],
                   public: bool, grant_types: tuple[str, ...], scope: str | None,
                   first_party: bool, id_token_alg: str, client_id: str | None,
                   activation: str | None, events_endpoint: str | None,
                   mfa_required: bool, name_zh: str | None, logo_uri: str | None,
                   as_json: bool) -> None:
    """Register a client; its secret is printed this once and never again."""
    from .apps.service import AppsError, settings_for  # noqa: PLC0415
    from .branding import LogoURIError, brand_client  # noqa: PLC0415
    from .oidc.clients import ClientError, create_client  # noqa: PLC0415

    try:
        settings = settings_for(activation, events_endpoint)
        client, secret = create_client(
            name, list(redirect_uris), post_logout_redirect_uris=list(post_logout_uris),
            public=public, grant_types=list(grant_types) or None, scope=scope,
            first_party=first_party, id_token_alg=id_token_alg, client_id=client_id,
            settings={**settings, **({"mfa_required": True} if mfa_required else {})},
        )
        if name_zh or logo_uri:
            brand_client(client, name_zh=name_zh, logo_uri=logo_uri)
    except (ClientError, AppsError, LogoURIError) as error:
        _fail(str(error))
    _commit()
    if as_json:
        click.echo(json.dumps(_client_dict(client, secret)))
        return
    click.echo(f"client_id:     {client.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")
        click.echo("(the secret is shown once; store it now)")


@clients_group.command("update")
@click.argument("client_id")
@click.option("--activation", type=click.Choice(["auto", "approval", "invite"]),
              help="How users get an account in the app at first sign-in.")
@click.option("--events-endpoint", help="URL that receives account events ('' removes it).")
@click.option("--name-zh", help="The app's name on Chinese pages ('' removes it).")
@click.option("--logo-uri", help="https URL of the app's logo ('' removes it).")
@with_appcontext
def clients_update(client_id: str, activation: str | None, events_endpoint: str | None,
                   name_zh: str | None, logo_uri: str | None) -> None:
    """Change a client's policies, Chinese name and logo."""
    from .apps.service import AppsError, configure  # noqa: PLC0415
    from .branding import LogoURIError, brand_client  # noqa: PLC0415
    from .oidc.clients import get  # noqa: PLC0415

    client = get(client_id)
    if client is None:
        _fail(f"no client {client_id!r}")
    try:
        configure(client, activation=activation, events_endpoint=events_endpoint)
        if name_zh is not None or logo_uri is not None:
            brand_client(client, name_zh=name_zh, logo_uri=logo_uri)
    except (AppsError, LogoURIError) as error:
        _fail(str(error))
    _commit()
    click.echo(f"updated {client_id}")


@clients_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def clients_list(as_json: bool) -> None:
    """List registered clients."""
    from .oidc.clients import list_clients  # noqa: PLC0415

    clients = list_clients()
    if as_json:
        click.echo(json.dumps([_client_dict(c) for c in clients]))
        return
    for client in clients:
        kind = "public" if client.is_public else "confidential"
        party = " first-party" if client.first_party else ""
        click.echo(f"{client.client_id:24} {client.name:24} {kind}{party}")


@clients_group.command("delete")
@click.argument("client_id")
@with_appcontext
def clients_delete(client_id: str) -> None:
    """Remove a client, its roles, consents and tokens."""
    from .oidc.clients import ClientError, delete_client  # noqa: PLC0415

    try:
        delete_client(client_id)
    except ClientError as error:
        _fail(str(error))
    _commit()
    click.echo(f"deleted {client_id}")


# Roles.


@cli.group("roles")
def roles_group() -> None:
    """Define roles per app and grant them to users (they travel in the ``roles`` claim)."""


def _require_client(client_id: str) -> None:
    from .oidc.clients import get  # noqa: PLC0415

    if get(client_id) is None:
        _fail(f"no client {client_id!r}")


@roles_group.command("define")
@click.argument("client_id")
@click.argument("name")
@click.option("--description")
@with_appcontext
def roles_define(client_id: str, name: str, description: str | None) -> None:
    """Define role NAME in app CLIENT_ID."""
    from .users.service import (
        UserError,  # noqa: PLC0415
        define_role,  # noqa: PLC0415
    )

    _require_client(client_id)
    try:
        define_role(client_id, name, description)
    except UserError as error:
        _fail(str(error))
    _commit()
    click.echo(f"role {name} defined in {client_id}")


@roles_group.command("list")
@click.argument("client_id")
@with_appcontext
def roles_list(client_id: str) -> None:
    """List the roles of app CLIENT_ID and who has them."""
    from .users.service import roles_of_app  # noqa: PLC0415

    _require_client(client_id)
    for role in roles_of_app(client_id):
        holders = ", ".join(sorted(u.username for u in role.users)) or "-"
        click.echo(f"{role.name:24} {holders}")


@roles_group.command("grant")
@click.argument("login")
@click.argument("client_id")
@click.argument("name")
@with_appcontext
def roles_grant(login: str, client_id: str, name: str) -> None:
    """Give user LOGIN the role NAME in app CLIENT_ID."""
    from .users.service import (
        UserError,  # noqa: PLC0415
        grant_role,  # noqa: PLC0415
    )

    _require_client(client_id)
    try:
        grant_role(_find_user(login), client_id, name)
    except UserError as error:
        _fail(str(error))
    _commit()
    click.echo(f"{login} has role {name} in {client_id}")


@roles_group.command("revoke")
@click.argument("login")
@click.argument("client_id")
@click.argument("name")
@with_appcontext
def roles_revoke(login: str, client_id: str, name: str) -> None:
    """Take role NAME in app CLIENT_ID away from user LOGIN."""
    from .users.service import revoke_role  # noqa: PLC0415

    revoke_role(_find_user(login), client_id, name)
    _commit()
    click.echo(f"{login} no longer has role {name} in {client_id}")


@roles_group.command("delete")
@click.argument("client_id")
@click.argument("name")
@with_appcontext
def roles_delete(client_id: str, name: str) -> None:
    """Delete role NAME of app CLIENT_ID (and every grant of it)."""
    from .users.service import (
        UserError,  # noqa: PLC0415
        delete_role,  # noqa: PLC0415
    )

    try:
        delete_role(client_id, name)
    except UserError as error:
        _fail(str(error))
    _commit()
    click.echo(f"role {name} deleted from {client_id}")


# Keys.


@cli.group("keys")
def keys_group() -> None:
    """Signing keys (keys/)."""


@keys_group.command("generate")
@with_appcontext
def keys_generate() -> None:
    """Create any missing key (an active and a next key per algorithm)."""
    created = current_app.extensions["sso_keys"].ensure()
    click.echo("keys created" if created else "keys already present")


@keys_group.command("rotate")
@click.option("--alg", type=click.Choice(["RS256", "ES256"]), multiple=True,
              help="Rotate only these algorithms (default: all).")
@with_appcontext
def keys_rotate(alg: tuple[str, ...]) -> None:
    """Promote the published next key to signing, retire the old one, publish a new next key."""
    from .oidc.keys import ALGORITHMS  # noqa: PLC0415

    keys = current_app.extensions["sso_keys"]
    keys.rotate(alg or ALGORITHMS)
    active = [e["kid"] for e in keys.describe() if e["state"] == "active"]
    audit.record("keys.rotate", actor="cli", algorithms=list(alg or ALGORITHMS), active=active)
    _commit()
    click.echo("keys rotated; retired keys stay in the JWKS for "
               f"{current_app.config['KEY_RETIREMENT_GRACE']} s")


@keys_group.command("list")
@with_appcontext
def keys_list() -> None:
    """Show each key's algorithm, kid and state."""
    for entry in current_app.extensions["sso_keys"].describe():
        click.echo(f"{entry['alg']:6} {entry['state']:8} {entry['kid']}")


# Maintenance.


@cli.command("purge")
@with_appcontext
def purge_command() -> None:
    """Delete expired codes, tokens and revocations (run daily from cron)."""
    from .oidc.tokens import purge_expired  # noqa: PLC0415

    removed = purge_expired()
    _commit()
    click.echo(f"removed {removed} expired rows")


# Serving.


def _gunicorn_has_control_socket() -> bool:
    """gunicorn 25.1 added a control socket at ~/.gunicorn/gunicorn.ctl, on by default."""
    import gunicorn  # noqa: PLC0415

    return tuple(gunicorn.version_info[:2]) >= (25, 1)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="gunicorn worker processes (each a gevent loop holding many connections).")
def serve_command(host: str, port: int, workers: int) -> None:
    """Run the provider under gunicorn with gevent workers (the production server)."""
    if not os.environ.get("SSO_REDIS_URL"):
        from .embedded import ensure_redis  # noqa: PLC0415

        instance = os.environ.get("SSO_INSTANCE_PATH") or create_app_instance_path()
        os.environ["SSO_REDIS_URL"] = ensure_redis(instance)
    args = [
        sys.executable, "-m", "gunicorn", "--worker-class", "gevent",
        "--workers", str(workers), "--bind", f"{host}:{port}",
        "--worker-connections", "20000", "--graceful-timeout", "5",
    ]
    if _gunicorn_has_control_socket():
        # Unused here, and one fixed path per OS user: two servers on one host would fight over it.
        args.append("--no-control-socket")
    if access_log := os.environ.get("SSO_ACCESS_LOG"):
        args += ["--access-logfile", access_log]
    args.append("sso.wsgi:app")
    os.execv(sys.executable, args)  # noqa: S606 - replaces this process with gunicorn


def create_app_instance_path() -> str:
    """The instance folder Flask would pick, without building an app."""
    from flask import Flask  # noqa: PLC0415

    return Flask("sso").instance_path


from .accounts import cli as accounts_cli  # noqa: E402
from .apps import cli as apps_cli  # noqa: E402
from .demo import cli as demo_cli  # noqa: E402
from .mfa import cli as mfa_cli  # noqa: E402
from .qrlogin import cli as qrlogin_cli  # noqa: E402

accounts_cli.register(cli)
apps_cli.register(cli)
mfa_cli.register(cli)
qrlogin_cli.register(cli)
demo_cli.register(cli)
