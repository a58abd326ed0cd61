#!/bin/sh
# Migrate, make sure keys exist, then hand the process over to the server (granian).
set -e
sso db upgrade
sso keys generate
exec sso serve --host "${SSO_HOST:-0.0.0.0}" --port "${SSO_PORT:-5000}" \
    --workers "${SSO_WORKERS:-$(nproc)}" --threads "${SSO_THREADS:-20000}"
