"""The WSGI entry point of the production server: ``sso serve`` runs granian on ``sso.wsgi:app``
(:mod:`sso.serving`)."""

from sso import create_app, logs, serving

app = create_app()
logs.configure_for(app)
serving.forget_dead_workers()


def _stopping() -> None:
    """A stopping worker ends its QR desktops' streams with a reconnect hint at once, and
    writes its queued access lines and, from then on, each line at once."""
    app.extensions["sso_qr_broker"].shutdown()
    logs.stop_batching()


serving.on_worker_stop(_stopping)
