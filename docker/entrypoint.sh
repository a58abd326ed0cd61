#!/bin/sh
# Migrate, make sure keys exist, then hand the process over to gunicorn.
set -e
sso db upgrade
sso keys generate
exec gunicorn --config /app/gunicorn.conf.py sso.wsgi:app
