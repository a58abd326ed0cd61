"""The WSGI entry point for gunicorn: ``gunicorn -k gevent sso.wsgi:app``."""

from sso import create_app, logs

app = create_app()
logs.configure_for(app)
