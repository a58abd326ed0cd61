"""The WSGI entry point for gunicorn: ``gunicorn -k gevent sso.wsgi:app``."""

from sso import create_app

app = create_app()
