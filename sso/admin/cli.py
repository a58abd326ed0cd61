"""The ``sso`` admin commands: users, clients, roles, keys, purge, apps, mfa and qr.

Each command parses its options, calls one function of :mod:`sso.admin.service` and prints the
answer; a refusal (:class:`~sso.admin.AdminError`) becomes click's one-line ``Error: ...``.
This module imports only click at load time, so ``sso --help`` stays quick: the service and
the app are loaded when a command runs.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

import click

from ..cli import with_app
from . import AdminError

#: Who decided, for the audit log of the account commands.
ACTOR = "cli"
APP_STATUSES = ["provisioned", "pending", "active", "refused", "revoked"]


def _app_actor() -> str:
    """Who decided about an app account: the operating-system account that ran the command."""
    try:
        return f"cli:{getpass.getuser()}"[:128]
    except (KeyError, OSError):
        return "cli"


class AdminCommand(click.Command):
    """A command whose refusals print as one ``Error:`` line with exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AdminError as error:
            raise click.ClickException(str(error)) from None


class AdminGroup(click.Group):
    command_class = AdminCommand


def _service() -> Any:
    from . import service  # noqa: PLC0415 - loaded when a command runs, not for --help

    return service


#: ``sso users list`` and ``sso clients list`` (issue 15: a simple command starts in under
#: 0.5 s) read one statement through the database driver (:mod:`sso.dbapi`) without building
#: the app, which would import Flask, SQLAlchemy's ORM and Authlib first.
USERS_LIST = "SELECT username, email, status, is_admin FROM users ORDER BY username"
CLIENTS_LIST = ("SELECT client_id, name, token_endpoint_auth_method, first_party FROM clients"
                " ORDER BY created_at, client_id")


def _read(loader: Any, statement: str) -> list[tuple[Any, ...]]:
    """The rows of a listing from the configured database; ``loader`` is the app a caller
    passed in (a test's ``ScriptInfo``), else the settings are read as a server would."""
    from ..cli import load_settings  # noqa: PLC0415
    from ..dbapi import DatabaseUnreadable, rows  # noqa: PLC0415

    if loader is not None:  # the caller's app: the same statement on its own session
        from sqlalchemy import text  # noqa: PLC0415

        from ..extensions import db  # noqa: PLC0415

        with loader.load_app().app_context():
            return [tuple(row) for row in db.session.execute(text(statement))]
    try:
        return rows(load_settings()["SQLALCHEMY_DATABASE_URI"], statement)
    except DatabaseUnreadable as error:
        raise click.ClickException(str(error)) from None


# Users.


@click.group("users", cls=AdminGroup)
def users_group() -> None:
    """Manage users."""


@users_group.command("create")
@click.option("--username", required=True)
@click.option("--email")
@click.option("--phone")
@click.option("--name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin", is_flag=True, help="Give the user the admin role of the provider.")
@click.option("--must-change", is_flag=True,
              help="An initial password: the user must replace it at the first sign-in.")
@with_app
def users_create(username: str, email: str | None, phone: str | None, name: str | None,
                 password: str, admin: bool, must_change: bool) -> None:
    """Create an active user with a password."""
    user = _service().create_user(username, email=email, phone=phone, name=name,
                                  password=password, admin=admin, must_change=must_change)
    click.echo(f"created user {user.username} (sub {user.subject})")


@users_group.command("list")
@click.pass_obj
def users_list(loader: Any) -> None:
    """List users."""
    for username, email, status, is_admin in _read(loader, USERS_LIST):
        flags = " admin" if is_admin else ""
        click.echo(f"{username:24} {email or '-':32} {status}{flags}")


@users_group.command("set-password")
@click.argument("login")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--must-change", is_flag=True,
              help="The user must replace it at the next sign-in.")
@with_app
def users_set_password(login: str, password: str, must_change: bool) -> None:
    """Set a user's password (it must satisfy the password policy)."""
    _service().set_password(login, password, must_change=must_change, actor=ACTOR)
    click.echo("password set")


@users_group.command("invite")
@click.option("--username", required=True)
@click.option("--email")
@click.option("--phone", help="Mobile number; gets an SMS code when there is no email.")
@click.option("--name")
@click.option("--admin", is_flag=True, help="Give the user the admin role of the provider.")
@click.option("--sms", is_flag=True, help="Send an SMS code even if there is an email.")
@click.option("--locale", type=click.Choice(["zh-CN", "en"]),
              help="Language of the messages (default: SSO_DEFAULT_LANGUAGE).")
@with_app
def users_invite(username: str, email: str | None, phone: str | None, name: str | None,
                 admin: bool, sms: bool, locale: str | None) -> None:
    """Create an invited user and send the activation link (email) or code (SMS)."""
    user, channel = _service().invite(username, email=email, phone=phone, name=name,
                                      admin=admin, sms=sms, locale=locale, actor=ACTOR)
    click.echo(f"invited {user.username} (sub {user.subject}); activation sent by {channel}")


@users_group.command("resend-invite")
@click.argument("login")
@click.option("--sms", is_flag=True, help="Send an SMS code instead of an email link.")
@with_app
def users_resend_invite(login: str, sms: bool) -> None:
    """Send a new activation link or code; earlier ones stop working."""
    channel = _service().resend_invitation(login, sms=sms, actor=ACTOR)
    click.echo(f"activation sent again by {channel}; earlier links and codes are void")


@users_group.command("pending")
@with_app
def users_pending() -> None:
    """List self-registered users waiting for approval."""
    for user in _service().pending_users():
        click.echo(f"{user.username:24} {user.email or '-':32} "
                   f"{user.created_at:%Y-%m-%d %H:%M} UTC")


@users_group.command("approve")
@click.argument("login")
@with_app
def users_approve(login: str) -> None:
    """Activate a self-registered user waiting for approval (they are told by email)."""
    _service().approve_registration(login, actor=ACTOR)
    click.echo(f"{login} approved")


@users_group.command("deny")
@click.argument("login")
@with_app
def users_deny(login: str) -> None:
    """Refuse a self-registration waiting for approval (the account is removed)."""
    _service().deny_registration(login, actor=ACTOR)
    click.echo(f"{login} denied and removed")


@users_group.command("disable")
@click.argument("login")
@with_app
def users_disable(login: str) -> None:
    """Stop a user from signing in; their SSO sessions end now."""
    ended = _service().disable_user(login, actor=ACTOR)
    click.echo(f"{login} disabled; {ended} session(s) ended")


@users_group.command("freeze")
@click.argument("login")
@with_app
def users_freeze(login: str) -> None:
    """Freeze an account that looks taken over: disable it, end its SSO sessions (the apps
    are told) and revoke every grant, offline ones too."""
    ended, revoked = _service().freeze_user(login, actor=ACTOR)
    click.echo(f"{login} frozen; {ended} session(s) ended, {revoked} grant(s) revoked")


@users_group.command("enable")
@click.argument("login")
@with_app
def users_enable(login: str) -> None:
    """Let a disabled user sign in again."""
    _service().enable_user(login, actor=ACTOR)
    click.echo(f"{login} enabled")


@users_group.command("unlock")
@click.argument("login")
@with_app
def users_unlock(login: str) -> None:
    """Lift a lock after too many failed sign-ins (and forget the failures)."""
    _service().unlock_user(login, actor=ACTOR)
    click.echo(f"{login} unlocked")


@users_group.command("require-mfa")
@click.argument("login")
@click.option("--off", is_flag=True, help="Stop requiring it (the user may keep MFA on).")
@with_app
def users_require_mfa(login: str, off: bool) -> None:
    """Require two-step verification of user LOGIN at every sign-in."""
    user = _service().require_mfa_of_user(login, not off)
    click.echo(f"{user.username}: two-step verification {'not ' if off else ''}required")


@users_group.command("reset-mfa")
@click.argument("login")
@click.option("--keep-sessions", is_flag=True,
              help="Leave the user's SSO sessions open (by default they are ended).")
@with_app
def users_reset_mfa(login: str, keep_sessions: bool) -> None:
    """Remove user LOGIN's authenticator, recovery codes and remembered devices (lost phone).

    The user's SSO sessions end too, unless --keep-sessions: whoever holds the lost phone may
    hold a signed-in session on it. If MFA is still required of the user, they set up a new
    authenticator at their next sign-in.
    """
    user, had, ended = _service().reset_mfa(login, end_sessions=not keep_sessions)
    click.echo(f"{user.username}: two-step verification reset"
               + ("" if had else " (no authenticator was set up)")
               + (f"; {ended} session(s) ended" if ended else ""))


# Clients.


@click.group("clients", cls=AdminGroup)
def clients_group() -> None:
    """Register and manage client apps."""


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
@click.option("--backchannel-logout-uri",
              help="URL that receives logout tokens when a session ends ('' removes it).")
@click.option("--backchannel-logout-session-required/--no-backchannel-logout-session-required",
              default=None, help="The app needs sid in logout tokens (default: yes).")
@click.option("--frontchannel-logout-uri",
              help="Page the logout page loads in an iframe ('' removes it).")
@click.option("--frontchannel-logout-session-required/--no-frontchannel-logout-session-required",
              default=None, help="Add iss and sid to the front-channel URI (default: yes).")
@click.option("--access-token-ttl", help="Seconds access tokens of this app live, 60 to 86400 "
              "('default': SSO_ACCESS_TOKEN_TTL).")
@click.option("--id-token-ttl", help="Seconds ID tokens of this app live, 60 to 86400 "
              "('default': SSO_ID_TOKEN_TTL).")
@click.option("--refresh-token-ttl", help="Seconds refresh tokens of this app live, 60 to "
              "31536000 ('default': SSO_REFRESH_TOKEN_TTL and SSO_OFFLINE_REFRESH_TOKEN_TTL).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@with_app
def clients_create(name: str, redirect_uris: tuple[str, ...], post_logout_uris: tuple[str, ...],
                   public: bool, grant_types: tuple[str, ...], scope: str | None,
                   first_party: bool, id_token_alg: str, client_id: str | None,
                   activation: str | None, events_endpoint: str | None,
                   mfa_required: bool, name_zh: str | None, logo_uri: str | None,
                   as_json: bool, **options: Any) -> None:
    """Register a client; its secret is printed this once and never again."""
    service = _service()
    lifetimes = _lifetime_options(options)
    logout = options
    client, secret = service.create_client(
        name, list(redirect_uris), post_logout_redirect_uris=list(post_logout_uris),
        public=public, grant_types=list(grant_types) or None, scope=scope,
        first_party=first_party, id_token_alg=id_token_alg, client_id=client_id,
        activation=activation, events_endpoint=events_endpoint, mfa_required=mfa_required,
        name_zh=name_zh, logo_uri=logo_uri, logout=logout, lifetimes=lifetimes,
    )
    if as_json:
        click.echo(json.dumps(service.describe_client(client, secret)))
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
@click.option("--backchannel-logout-uri",
              help="URL that receives logout tokens when a session ends ('' removes it).")
@click.option("--backchannel-logout-session-required/--no-backchannel-logout-session-required",
              default=None, help="The app needs sid in logout tokens (default: yes).")
@click.option("--frontchannel-logout-uri",
              help="Page the logout page loads in an iframe ('' removes it).")
@click.option("--frontchannel-logout-session-required/--no-frontchannel-logout-session-required",
              default=None, help="Add iss and sid to the front-channel URI (default: yes).")
@click.option("--access-token-ttl", help="Seconds access tokens of this app live, 60 to 86400 "
              "('default': SSO_ACCESS_TOKEN_TTL).")
@click.option("--id-token-ttl", help="Seconds ID tokens of this app live, 60 to 86400 "
              "('default': SSO_ID_TOKEN_TTL).")
@click.option("--refresh-token-ttl", help="Seconds refresh tokens of this app live, 60 to "
              "31536000 ('default': SSO_REFRESH_TOKEN_TTL and SSO_OFFLINE_REFRESH_TOKEN_TTL).")
@with_app
def clients_update(client_id: str, activation: str | None, events_endpoint: str | None,
                   name_zh: str | None, logo_uri: str | None, **options: Any) -> None:
    """Change a client's policies, Chinese name and logo, how it hears of sign-outs, and its
    token lifetimes."""
    lifetimes = _lifetime_options(options)
    _service().update_client(client_id, activation=activation, events_endpoint=events_endpoint,
                             name_zh=name_zh, logo_uri=logo_uri, logout=options,
                             lifetimes=lifetimes)
    click.echo(f"updated {client_id}")


def _lifetime_options(options: dict[str, Any]) -> dict[str, str]:
    """Take the lifetime options out of ``options`` (those given only)."""
    given = {name: options.pop(name) for name in ("access_token_ttl", "id_token_ttl",
                                                  "refresh_token_ttl")}
    return {name: value for name, value in given.items() if value is not None}


@with_app
def _clients_json() -> None:
    from ..oidc.clients import list_clients  # noqa: PLC0415

    service = _service()
    click.echo(json.dumps([service.describe_client(c) for c in list_clients()]))


@clients_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def clients_list(ctx: click.Context, as_json: bool) -> None:
    """List registered clients."""
    if as_json:  # every policy, as the service describes a client: through the app
        ctx.invoke(_clients_json)
        return
    for client_id, name, auth_method, first_party in _read(ctx.obj, CLIENTS_LIST):
        kind = "public" if auth_method == "none" else "confidential"
        party = " first-party" if first_party else ""
        click.echo(f"{client_id:24} {name:24} {kind}{party}")


@clients_group.command("delete")
@click.argument("client_id")
@with_app
def clients_delete(client_id: str) -> None:
    """Remove a client, its roles, consents and tokens."""
    _service().delete_client(client_id)
    click.echo(f"deleted {client_id}")


@clients_group.command("set-mfa")
@click.argument("client_id")
@click.option("--required/--not-required", default=None,
              help="Whether users need two-step verification for this app.")
@click.option("--remember-device/--no-remember-device", default=None,
              help="Whether 'remember this device' may skip the code for this app.")
@with_app
def clients_set_mfa(client_id: str, required: bool | None, remember_device: bool | None
                    ) -> None:
    """Set the two-step verification policy of app CLIENT_ID."""
    if required is None and remember_device is None:
        raise click.ClickException(
            "give --required/--not-required and/or --remember-device/--no-remember-device")
    policy = _service().set_client_mfa(client_id, required=required,
                                       remember_device=remember_device)
    click.echo(json.dumps({"client_id": client_id, **policy}))


# Roles.


@click.group("roles", cls=AdminGroup)
def roles_group() -> None:
    """Define roles per app and grant them to users (they travel in the ``roles`` claim)."""


@roles_group.command("define")
@click.argument("client_id")
@click.argument("name")
@click.option("--description")
@with_app
def roles_define(client_id: str, name: str, description: str | None) -> None:
    """Define role NAME in app CLIENT_ID."""
    _service().define_role(client_id, name, description)
    click.echo(f"role {name} defined in {client_id}")


@roles_group.command("list")
@click.argument("client_id")
@with_app
def roles_list(client_id: str) -> None:
    """List the roles of app CLIENT_ID and who has them (users, and groups whose members
    inherit them)."""
    from ..users.groups import groups_with_role  # noqa: PLC0415

    for role in _service().roles_of_app(client_id):
        holders = ", ".join(sorted(u.username for u in role.users)) or "-"
        via = groups_with_role(role)
        click.echo(f"{role.name:24} {holders}" + (f"  groups: {', '.join(via)}" if via else ""))


@roles_group.command("grant")
@click.argument("login")
@click.argument("client_id")
@click.argument("name")
@with_app
def roles_grant(login: str, client_id: str, name: str) -> None:
    """Give user LOGIN the role NAME in app CLIENT_ID."""
    _service().grant_role(login, client_id, name)
    click.echo(f"{login} has role {name} in {client_id}")


@roles_group.command("revoke")
@click.argument("login")
@click.argument("client_id")
@click.argument("name")
@with_app
def roles_revoke(login: str, client_id: str, name: str) -> None:
    """Take role NAME in app CLIENT_ID away from user LOGIN."""
    _service().revoke_role(login, client_id, name)
    click.echo(f"{login} no longer has role {name} in {client_id}")


@roles_group.command("delete")
@click.argument("client_id")
@click.argument("name")
@with_app
def roles_delete(client_id: str, name: str) -> None:
    """Delete role NAME of app CLIENT_ID (and every grant of it)."""
    _service().delete_role(client_id, name)
    click.echo(f"role {name} deleted from {client_id}")


@roles_group.command("require-mfa")
@click.argument("client_id")
@click.argument("role")
@click.option("--off", is_flag=True, help="Stop requiring it for this role.")
@with_app
def roles_require_mfa(client_id: str, role: str, off: bool) -> None:
    """Require two-step verification of holders of ROLE when they sign in to CLIENT_ID."""
    _service().require_mfa_of_role(client_id, role, not off)
    click.echo(f"role {role} in {client_id}: two-step verification "
               f"{'not ' if off else ''}required")


# Keys and maintenance.


@click.group("keys", cls=AdminGroup)
def keys_group() -> None:
    """Signing keys (in the database, encrypted with SSO_KEY_ENCRYPTION_KEY)."""


@keys_group.command("generate")
@with_app
def keys_generate() -> None:
    """Create any missing key (an active and a next key per algorithm)."""
    click.echo("keys created" if _service().ensure_keys() else "keys already present")


@keys_group.command("rotate")
@click.option("--alg", type=click.Choice(["RS256", "ES256"]), multiple=True,
              help="Rotate only these algorithms (default: all).")
@with_app
def keys_rotate(alg: tuple[str, ...]) -> None:
    """Promote the published next key to signing, retire the old one, publish a new next key."""
    from flask import current_app  # noqa: PLC0415

    _service().rotate_keys(alg, actor=ACTOR)
    click.echo("keys rotated; retired keys stay in the JWKS for "
               f"{current_app.config['KEY_RETIREMENT_GRACE']} s")


@keys_group.command("list")
@with_app
def keys_list() -> None:
    """Show each key's algorithm, kid and state."""
    for entry in _service().describe_keys():
        created = entry["created_at"].strftime("%Y-%m-%d %H:%M")
        retired = entry["retired_at"]
        click.echo(f"{entry['alg']:6} {entry['state']:8} {entry['kid']}  created {created}"
                   + (f"  retired {retired:%Y-%m-%d %H:%M}" if retired else ""))


@keys_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@with_app
def keys_export(directory: str) -> None:
    """Write the keys, private parts in clear, as PEM files and keyset.json in DIRECTORY."""
    path = _service().export_keys(directory, actor=ACTOR)
    click.echo(f"keys written to {path} (private keys in clear: keep this folder secret)")


@keys_group.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@with_app
def keys_import(directory: str) -> None:
    """Adopt the keys of DIRECTORY (keyset.json and PEM files, as `sso keys export` writes).

    Its active and next keys take over; the current ones are retired (still published for
    SSO_KEY_RETIREMENT_GRACE seconds). Keys already present are skipped."""
    from ..oidc.keys import KeyStoreError  # noqa: PLC0415

    try:
        added = _service().import_keys(directory, actor=ACTOR)
    except (KeyStoreError, OSError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{added} keys imported")


@keys_group.command("reencrypt")
@with_app
def keys_reencrypt() -> None:
    """Encrypt every key with the first secret of SSO_KEY_ENCRYPTION_KEY (after adding one)."""
    from ..oidc.keys import KeyStoreError  # noqa: PLC0415

    try:
        count = _service().reencrypt_keys(actor=ACTOR)
    except KeyStoreError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{count} keys encrypted with the first key-encryption secret")


@click.command("purge", cls=AdminCommand)
@with_app
def purge_command() -> None:
    """Delete expired codes, tokens and revocations (run daily from cron)."""
    click.echo(f"removed {_service().purge()} expired rows")


# Activation in apps.


@click.group("apps", cls=AdminGroup)
def apps_group() -> None:
    """Activation of users in each app (policies: auto, approval, invite)."""


@apps_group.command("list")
@click.argument("client_id", required=False)
@click.option("--status", type=click.Choice(APP_STATUSES),
              help="Only accounts in this state (e.g. pending: requests to decide).")
@with_app
def apps_list(client_id: str | None, status: str | None) -> None:
    """List app accounts (of CLIENT_ID only, if given)."""
    from ..apps.service import list_accounts  # noqa: PLC0415

    def when(value: Any) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "-"

    for account in list_accounts(client_id, status):
        click.echo(f"{account.client_id:24} {account.user.username:24} {account.status:12} "
                   f"requested {when(account.requested_at):16} "
                   f"activated {when(account.activated_at):16} "
                   f"decided {when(account.decided_at)} {account.decided_by or ''}".rstrip())


def _decide(decision: str, client_id: str, login: str, done: str) -> None:
    client, user = _service().decide_app_access(decision, client_id, login,
                                                actor=_app_actor())
    click.echo(f"{user.username} {done} {client.client_id}")


@apps_group.command("provision")
@click.argument("client_id")
@click.argument("login")
@with_app
def apps_provision(client_id: str, login: str) -> None:
    """Let user LOGIN into app CLIENT_ID (for `invite` apps); activated at first sign-in."""
    _decide("provision", client_id, login, "is provisioned for")


@apps_group.command("approve")
@click.argument("client_id")
@click.argument("login")
@with_app
def apps_approve(client_id: str, login: str) -> None:
    """Approve user LOGIN's access to app CLIENT_ID (the user is told by email)."""
    _decide("approve", client_id, login, "is approved for")


@apps_group.command("deny")
@click.argument("client_id")
@click.argument("login")
@with_app
def apps_deny(client_id: str, login: str) -> None:
    """Refuse user LOGIN's request for app CLIENT_ID (the user is told by email)."""
    _decide("deny", client_id, login, "is refused access to")


@apps_group.command("revoke")
@click.argument("client_id")
@click.argument("login")
@with_app
def apps_revoke(client_id: str, login: str) -> None:
    """Close user LOGIN's account in app CLIENT_ID and revoke the app's tokens for them."""
    _decide("revoke", client_id, login, "is revoked from")


@apps_group.command("events")
@click.argument("client_id", required=False)
@click.option("--status", type=click.Choice(["pending", "sent", "dead"]),
              help="Only events in this state (dead: given up after retries or refused).")
@with_app
def apps_events(client_id: str | None, status: str | None) -> None:
    """List the security events sent to apps (newest first)."""
    from ..apps.events import list_messages  # noqa: PLC0415

    for message in list_messages(client_id, status):
        click.echo(f"{message.id:6} {message.payload.get('client_id', '-'):24} "
                   f"{message.purpose:16} {message.status:8} tries {message.attempts:2} "
                   f"{message.created_at:%Y-%m-%d %H:%M} {message.last_error or ''}".rstrip())


@apps_group.command("redeliver")
@click.argument("message_id", type=int)
@with_app
def apps_redeliver(message_id: int) -> None:
    """Send event MESSAGE_ID again (after the app's endpoint was fixed)."""
    message = _service().redeliver_event(message_id)
    click.echo(f"event {message_id}: {message.status}"
               + (f" ({message.last_error})" if message.last_error else ""))


# Two-step verification and scan to sign in.


@click.group("mfa", cls=AdminGroup)
def mfa_group() -> None:
    """Two-step verification (TOTP)."""


@mfa_group.command("rotate-key")
@with_app
def mfa_rotate_key() -> None:
    """Re-encrypt every TOTP seed with the first key of SSO_MFA_ENCRYPTION_KEYS."""
    count = _service().rotate_mfa_key()
    click.echo(f"re-encrypted {count} TOTP seeds with the first key")


@mfa_group.command("status")
@click.argument("login")
@with_app
def mfa_status(login: str) -> None:
    """Show whether user LOGIN has two-step verification and whether it is required."""
    user, info = _service().mfa_status(login)
    click.echo(json.dumps({
        "user": user.username, "enrolled": info["enrolled"], "required": info["required"],
        "recovery_codes_left": info["recovery_codes_left"],
    }))


@click.group("qr", cls=AdminGroup)
def qr_group() -> None:
    """Scan to sign in (QR login)."""


@qr_group.command("number-matching")
@click.argument("client_id")
@click.option("--on/--off", "enabled", required=True,
              help="Make the phone pick the number the desktop shows, for this app.")
@with_app
def qr_number_matching(client_id: str, enabled: bool) -> None:
    """Turn number matching on or off for one app."""
    _service().set_number_matching(client_id, enabled)
    click.echo(f"number matching {'on' if enabled else 'off'} for {client_id}")
