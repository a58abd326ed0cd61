"""``sso qr``: settings of scan-to-sign-in."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


def register(cli: click.Group) -> None:
    @cli.group("qr")
    def qr_group() -> None:
        """Scan to sign in (QR login)."""

    @qr_group.command("number-matching")
    @click.argument("client_id")
    @click.option("--on/--off", "enabled", required=True,
                  help="Make the phone pick the number the desktop shows, for this app.")
    @with_appcontext
    def number_matching(client_id: str, enabled: bool) -> None:
        """Turn number matching on or off for one app."""
        from ..extensions import db  # noqa: PLC0415
        from .service import set_number_matching  # noqa: PLC0415

        try:
            set_number_matching(client_id, enabled)
        except LookupError:
            raise click.ClickException(f"no client {client_id!r}") from None
        db.session.commit()
        click.echo(f"number matching {'on' if enabled else 'off'} for {client_id}")
