"""The WSGI entry point of the production server: ``sso serve`` runs granian on ``sso.wsgi:app``
(:mod:`sso.serving`)."""

from sso import create_app, logs, serving

app = create_app()
logs.configure_for(app)
serving.forget_dead_workers()
# A stopping worker ends its QR desktops' streams with a reconnect hint at once.
serving.on_worker_stop(app.extensions["sso_qr_broker"].shutdown)
