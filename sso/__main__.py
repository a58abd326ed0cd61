"""``python -m sso`` is the ``sso`` command (``sso demo`` starts its children this way)."""

from .cli import cli

cli()
