"""``sso audit list|export|purge``: the audit log from the command line, with the console's
filters (:mod:`sso.admin.audit_query`)."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..cli import with_app
from . import AdminError
from .cli import AdminGroup


def _filters(function: Any) -> Any:
    for name, help_text in reversed([
        ("since", "From this UTC time (YYYY-MM-DD or YYYY-MM-DDTHH:MM)."),
        ("until", "Before this UTC time."),
        ("actor", "Who decided, e.g. admin:admin or cli."),
        ("user", "The user's username or email."),
        ("app", "The app's client_id."),
        ("event", "The event, e.g. signin or account.disable."),
        ("ip", "The caller's IP address."),
        ("result", "success or failure."),
    ]):
        function = click.option(f"--{name}", help=help_text)(function)
    return function


def _where(values: dict[str, Any]) -> Any:
    from .audit_query import AuditFilter  # noqa: PLC0415

    return AuditFilter.parse({k: v for k, v in values.items() if isinstance(v, str)})


@click.group("audit", cls=AdminGroup)
def audit_group() -> None:
    """Read, export and purge the audit log."""


@audit_group.command("list")
@_filters
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@with_app
def audit_list(limit: int, **values: Any) -> None:
    """List events, newest first."""
    from .audit_query import page  # noqa: PLC0415

    rows, _next = page(_where(values), None, None, limit)
    for event in rows:
        who = event.actor or "-"
        user = event.user_id if event.user_id is not None else (event.subject or "-")
        click.echo(f"{event.at:%Y-%m-%d %H:%M:%S} {event.event:28} {event.outcome:8} "
                   f"actor={who} user={user} app={event.client_id or '-'} ip={event.ip or '-'}")


@audit_group.command("export")
@_filters
@with_app
def audit_export(**values: Any) -> None:
    """Write the filtered events as CSV to standard output."""
    from .audit_query import export_csv  # noqa: PLC0415

    for chunk in export_csv(_where(values), None):
        sys.stdout.write(chunk)


@audit_group.command("purge")
@click.option("--days", type=int, help="Keep this many days (default: "
              "SSO_AUDIT_RETENTION_DAYS, 180).")
@with_app
def audit_purge(days: int | None) -> None:
    """Delete events older than the retention period (run it daily, e.g. from cron)."""
    from flask import current_app  # noqa: PLC0415

    from .audit_query import purge  # noqa: PLC0415

    keep = days if days is not None else int(current_app.config["AUDIT_RETENTION_DAYS"])
    removed = purge(keep)
    click.echo(f"{removed} event(s) older than {keep} day(s) deleted")


__all__ = ["AdminError", "audit_group"]
