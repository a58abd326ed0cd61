"""``sso demo`` (the provider and the three demo apps, what ``make run`` starts) and
``sso demo-app`` (one demo app).

Only click and the standard library load with this module (``sso --help`` lists these
commands); the demo's own dependencies (``requests``, the ``demo`` extra) load when a demo
command runs, so a server installed without them still runs every other command.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

DEFAULT_ISSUER = "http://127.0.0.1:5000"
#: How long ``sso demo`` waits for the provider to answer before giving up.
STARTUP_SECONDS = 60
STOP_SECONDS = 10
SETTINGS_HEADER = """\
Written by `sso demo` (make run) each time it starts: the settings it runs the provider with,
so that every `sso` command using this instance folder reaches the same provider.
Environment variables override these lines."""


class _Stop(Exception):
    """Ctrl-C, SIGTERM or SIGHUP arrived: shut everything down."""


def _require_demo_extra() -> None:
    try:
        import requests  # noqa: F401, PLC0415
    except ImportError:
        raise click.ClickException(
            "the demo needs its extra dependencies: pip install 'sso[demo]'") from None


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the child when ``sso demo`` dies, even by SIGKILL: no orphans."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own, so Ctrl-C reaches only `sso demo`, which then stops the children
    # in order instead of every process printing its own KeyboardInterrupt.
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "sso", *args], env=env, start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
    )


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _name, child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for _name, child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_until_ready(url: str, children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    import requests  # noqa: PLC0415

    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        for name, child in children:
            if child.poll() is not None:
                raise click.ClickException(
                    f"{name} exited during start-up (code {child.returncode})")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).ok:
                return
        time.sleep(0.2)
    raise click.ClickException(f"the provider did not answer at {url} within {STARTUP_SECONDS} s")


def _banner(issuer: str) -> str:
    from .seed import DEMO_APPS, DEMO_PASSWORD, DEMO_USERS, LIFECYCLE_USERS, base_url  # noqa: PLC0415

    width = max(len(a["name"]) for a in DEMO_APPS) + 2
    lines = [
        "",
        "SSO demo is running (Ctrl-C stops everything).",
        "",
        f"  {'Provider':{width}} {issuer}",
        f"  {'':{width}} {issuer}/.well-known/openid-configuration",
        f"  {'':{width}} {issuer}/dev/outbox   (mail and SMS the provider sent)",
    ]
    lines += [f"  {a['name']:{width}} {base_url(a)}" for a in DEMO_APPS]
    lines += ["", f"Demo users (password {DEMO_PASSWORD}):"]
    for user in DEMO_USERS:
        roles = "; ".join(f"{app_id}: {', '.join(names)}"
                          for app_id, names in user["roles"].items())
        admin = ", provider admin" if user["admin"] else ""
        lines.append(f"  {user['username']:10} ({roles}{admin})")
    for user in LIFECYCLE_USERS:
        roles = "; ".join(f"{app_id}: {', '.join(names)}"
                          for app_id, names in user["roles"].items())
        lines.append(f"  {user['username']:10} ({roles}; {user['shows']})")
    lines += [
        "",
        "Try (docs/demo.md):",
        "  ERP requires two-step verification (provider admins: every app);",
        "  Inventory activates new users on approval: sign in there as alice, then run",
        "    .venv/bin/sso apps approve inventory alice",
        "  ERP lists the accounts the SSO activated there (signed events);",
        "  the sign-in page's 'Scan to sign in' tab: approve from a second window or a phone;",
        "  CRM's 'Call centre' page signs a caller in by phone (CIBA): ask for alice, then",
        f"    approve at {issuer}/qr/requests in a second window signed in as alice;",
        "  sign out of any one app: the other two are signed out as well (single logout).",
        "",
        "Open an app, sign in, then open another app: no second password.",
        "",
    ]
    return "\n".join(lines)


def _choose_settings(port: int) -> dict[str, str]:
    """Put the demo's development defaults into the environment (its children inherit it) and
    return the settings to remember: those defaults, every ``SSO_*`` variable the user started
    it with, and the keys folder made absolute, so that a command run from another folder
    finds the same keys."""
    os.environ.setdefault("SSO_ENV", "development")
    os.environ.setdefault("SSO_ISSUER", f"http://127.0.0.1:{port}")
    os.environ["SSO_KEYS_DIR"] = str(Path(os.environ.get("SSO_KEYS_DIR") or "keys").absolute())
    # The instance folder holds the file; the demo apps' secret is for one child only.
    skip = {"SSO_INSTANCE_PATH", "SSO_DEMO_CLIENT_SECRET"}
    return {name: value for name, value in os.environ.items()
            if name.startswith("SSO_") and name not in skip}


def set_up(port: int) -> tuple[Any, dict[str, str]]:
    """Everything ``sso demo`` does before it serves; returns the app and the demo apps'
    client secrets.

    It writes the settings it chose to the instance folder's settings file (where every
    ``sso`` command finds them, ``sso.config.SETTINGS_FILE``), starts the embedded Redis
    unless ``SSO_REDIS_URL`` names one, migrates the database, creates the keys and seeds.
    """
    from .. import migrate  # noqa: PLC0415
    from ..cli import load_app  # noqa: PLC0415
    from ..config import instance_path, write_settings_file  # noqa: PLC0415
    from .seed import seed  # noqa: PLC0415

    write_settings_file(instance_path(), _choose_settings(port), SETTINGS_HEADER)
    app = load_app()  # and the embedded Redis, unless SSO_REDIS_URL names one
    with app.app_context():
        migrate.upgrade(app)
        app.extensions["sso_keys"].ensure()
        client_secrets = seed(app.instance_path)
    return app, client_secrets


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the provider and the demo apps listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="The provider's port.")
def demo_command(host: str, port: int) -> None:
    """Set up and run the provider with the ERP, CRM and inventory demo apps (``make run``)."""
    from .seed import DEMO_APPS  # noqa: PLC0415

    _require_demo_extra()
    busy = [p for p in [port, *(a["port"] for a in DEMO_APPS)] if not _port_free(host, p)]
    if busy:
        raise click.ClickException(
            f"port(s) {', '.join(map(str, busy))} on {host} are in use; stop what uses them "
            "(another `make run`?) and try again")
    app, client_secrets = set_up(port)
    issuer = app.config["ISSUER"]
    env = {**os.environ, "SSO_INSTANCE_PATH": app.instance_path,
           "SSO_REDIS_URL": app.config["REDIS_URL"], "SSO_KEYS_DIR": app.config["KEYS_DIR"]}
    children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def stop_signal(signum: int, frame: Any) -> None:
        raise _Stop

    # Set explicitly: a shell that starts us in the background leaves SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_signal)
    try:
        children.append(("provider", _spawn(
            ["serve", "--host", host, "--port", str(port), "--workers", "1"], env)))
        for demo_app in DEMO_APPS:
            children.append((demo_app["name"], _spawn(
                ["demo-app", "--name", demo_app["name"], "--client-id", demo_app["client_id"],
                 "--port", str(demo_app["port"]), "--host", host, "--issuer", issuer],
                {**env, "SSO_DEMO_CLIENT_SECRET": client_secrets[demo_app["client_id"]]},
            )))
        _wait_until_ready(f"{issuer}/.well-known/openid-configuration", children)
        click.echo(_banner(issuer))
        while True:
            for name, child in children:
                if child.poll() is not None:
                    raise click.ClickException(f"{name} stopped (exit code {child.returncode})")
            time.sleep(0.5)
    except _Stop:
        click.echo("\nstopping ...")
    finally:
        _stop(children)
        if app.config["REDIS_EMBEDDED"]:
            from ..embedded import stop_redis  # noqa: PLC0415

            stop_redis(app.instance_path)
        click.echo("stopped")


@click.command("demo-app")
@click.option("--name", required=True, help="Shown in the page header, e.g. ERP.")
@click.option("--client-id", required=True)
@click.option("--client-secret", envvar="SSO_DEMO_CLIENT_SECRET", required=True,
              help="Read from SSO_DEMO_CLIENT_SECRET when not given (keeps it out of `ps`).")
@click.option("--port", required=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--issuer", envvar="SSO_ISSUER", default=DEFAULT_ISSUER, show_default=True)
def demo_app_command(name: str, client_id: str, client_secret: str, port: int, host: str,
                     issuer: str) -> None:
    """Run one demo app (a relying party) on http://HOST:PORT."""
    _require_demo_extra()
    from werkzeug.serving import make_server  # noqa: PLC0415

    from .app import create_demo_app  # noqa: PLC0415
    from .seed import DEMO_APPS, base_url  # noqa: PLC0415

    known = next((a for a in DEMO_APPS if a["client_id"] == client_id), None)
    neighbours = [{"name": a["name"], "url": base_url(a)}
                  for a in DEMO_APPS if a["client_id"] != client_id]
    receives_events = bool(known and known["policy"].get("events_endpoint"))
    instance = os.environ.get("SSO_INSTANCE_PATH")
    accounts_file = (os.path.join(instance, f"demo-{client_id}-accounts.json")
                     if instance and receives_events else None)
    # The redirect URIs are registered on 127.0.0.1, whatever address we listen on.
    public_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    app = create_demo_app(
        name, port, issuer, client_id, client_secret, host=public_host,
        accent=known["accent"] if known else "#1f5fbf",
        neighbours=neighbours if known else None,
        receives_events=receives_events, accounts_file=accounts_file,
        logout_channel=known.get("logout") if known else None,
        ciba=bool(known and known.get("ciba")),
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    click.echo(f"{name} demo app on {base_url({'port': port}, public_host)}")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
