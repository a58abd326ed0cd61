"""gunicorn settings for the provider: gevent workers, one per core, many connections each."""

import multiprocessing
import os
import sys

bind = os.environ.get("SSO_BIND", "0.0.0.0:5000")
worker_class = "gevent"
workers = int(os.environ.get("SSO_WORKERS", multiprocessing.cpu_count()))
# QR-login desktops wait on server-sent events; each waiting browser is one connection.
worker_connections = int(os.environ.get("SSO_WORKER_CONNECTIONS", "20000"))
graceful_timeout = 5
keepalive = 5
forwarded_allow_ips = os.environ.get("SSO_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("SSO_ACCESS_LOG") or None
# The access log leaves out the load balancer's health probes (/healthz, /readyz).
logger_class = "sso.serverlog.AccessLog"
# gunicorn ≥ 25.1 opens a control socket at one fixed path per OS user; it is not used here.
control_socket_disable = True


def _check_settings() -> None:
    """Check the settings once, as gunicorn reads this file and before any worker imports the
    app: a refusal (production without SSO_DATABASE_URL, say) is one line, not a traceback
    from every worker."""
    from sso.config import ConfigError, instance_path, resolve  # noqa: PLC0415

    try:
        resolve(instance_path())
    except ConfigError as error:
        sys.exit(f"sso: {error}")


_check_settings()


# The workers' shared Prometheus folder (PROMETHEUS_MULTIPROC_DIR) and the hooks that keep it.
from sso.gunicorn_hooks import child_exit, on_exit  # noqa: E402,F401
