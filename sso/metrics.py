"""Prometheus metrics at ``/metrics``.

Counters and histograms live in this module's own registry. Under granian each worker is a
process of its own: ``sso serve`` (:func:`sso.serving.prepare_metrics_folder`) sets
``PROMETHEUS_MULTIPROC_DIR`` before any worker imports this
module, so every worker writes its values to files there and a scrape on any worker adds up all
of them (``prometheus_client``'s multiprocess mode). Values that the database holds (the outbox
backlog) are read at scrape time instead.

Who may scrape: a request carrying ``Authorization: Bearer <SSO_METRICS_TOKEN>``, or one from
an address in ``SSO_METRICS_ALLOW`` (networks, comma-separated; default loopback only). A request
that came through a proxy the provider does not trust (an ``X-Forwarded-For`` header while
``SSO_TRUSTED_PROXIES`` is 0) is never let in by address, only by token, so a reverse proxy on
the same host does not publish the metrics by accident.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

SIGNINS = Counter("sso_signins_total", "Sign-in attempts by door (method) and result",
                  ["door", "result"], registry=REGISTRY)
LOCKOUTS = Counter("sso_lockouts_total", "Accounts locked after repeated failures",
                   registry=REGISTRY)
TOKENS = Counter("sso_tokens_issued_total", "Tokens issued at /token, by grant type",
                 ["grant_type"], registry=REGISTRY)
AUDIT = Counter("sso_audit_events_total", "Audit events written, by event and outcome",
                ["event", "outcome"], registry=REGISTRY)
REQUESTS = Counter("sso_http_requests_total", "HTTP requests by endpoint and status class",
                   ["endpoint", "status"], registry=REGISTRY)
LATENCY = Histogram("sso_http_request_duration_seconds", "Request latency by endpoint",
                    ["endpoint"], registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
QR_WAITING = Gauge("sso_qr_desktops_waiting", "Desktops waiting for a phone to scan or approve",
                   registry=REGISTRY, multiprocess_mode="livesum")
QR_DECISIONS = Counter("sso_qr_decisions_total", "QR sign-ins decided on the phone",
                       ["result"], registry=REGISTRY)
DELIVERY_FAILURES = Counter("sso_outbox_delivery_failures_total",
                            "Failed deliveries of outbox messages (mail, sms, app events)",
                            ["channel", "outcome"], registry=REGISTRY)
DB_ERRORS = Counter("sso_database_errors_total", "Database statements that raised",
                    registry=REGISTRY)
REDIS_ERRORS = Counter("sso_redis_errors_total", "Redis commands that raised",
                       registry=REGISTRY)
TURNS_WAITED_OUT = Counter("sso_turns_waited_out_total",
                           "Token, introspection, UserInfo or authorization requests that "
                           "waited SSO_TURN_WAIT for their turn and went on without one",
                           registry=REGISTRY)

GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials",
                         "urn:openid:params:grant-type:ciba",
                         "urn:ietf:params:oauth:grant-type:device_code"})
#: Paths polled often by machines: neither timed by endpoint nor written to the access log.
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


# What the rest of the provider calls.


def audit_event(event_name: str, outcome: str, details: dict[str, Any]) -> None:
    """Count one audit event, and the sign-in, lockout and QR figures it stands for."""
    AUDIT.labels(event_name, outcome).inc()
    if event_name == "signin":
        SIGNINS.labels(str(details.get("door") or "unknown")[:32], "success").inc()
    elif event_name == "flow.abort":
        SIGNINS.labels(str(details.get("door") or "unknown")[:32], "aborted").inc()
    elif outcome != "success" and (event_name.startswith("signin.")
                                   or event_name == "mfa.verify"):
        SIGNINS.labels(event_name.removeprefix("signin.")[:32], "failure").inc()
    elif event_name == "account.locked":
        LOCKOUTS.inc()
    elif event_name == "qr.approve":
        QR_DECISIONS.labels("approved").inc()
    elif event_name == "qr.deny":
        QR_DECISIONS.labels("denied").inc()


def delivery_failed(channel: str, outcome: str) -> None:
    DELIVERY_FAILURES.labels(channel, outcome).inc()


def redis_error() -> None:
    REDIS_ERRORS.inc()


def turn_waited_out() -> None:
    TURNS_WAITED_OUT.inc()


@event.listens_for(Engine, "handle_error")
def _database_error(context: Any) -> None:
    DB_ERRORS.inc()


# Scrape-time values from the database.


class OutboxCollector:
    """Backlog (pending messages) and the age of the oldest one, per channel."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import func, select  # noqa: PLC0415

        from .dbtypes import utcnow  # noqa: PLC0415
        from .extensions import db  # noqa: PLC0415
        from .outbox import PENDING, OutboxMessage  # noqa: PLC0415

        backlog = GaugeMetricFamily("sso_outbox_backlog", "Outbox messages waiting to be sent",
                                    labels=["channel"])
        oldest = GaugeMetricFamily("sso_outbox_oldest_age_seconds",
                                   "Age of the oldest message waiting, per channel",
                                   labels=["channel"])
        from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

        try:
            rows = db.session.execute(
                select(OutboxMessage.channel, func.count(), func.min(OutboxMessage.created_at))
                .where(OutboxMessage.status == PENDING).group_by(OutboxMessage.channel)).all()
        except SQLAlchemyError as error:  # counted as a database error; the rest is served
            db.session.rollback()
            log.warning("outbox backlog not measured: %s", error)
            return
        now = utcnow()
        for channel in sorted({"mail", "sms", "event", *(row[0] for row in rows)}):
            found = next((row for row in rows if row[0] == channel), None)
            backlog.add_metric([channel], found[1] if found else 0)
            age = (now - found[2]).total_seconds() if found and found[2] else 0.0
            oldest.add_metric([channel], max(age, 0.0))
        yield backlog
        yield oldest


# The endpoint.


def _allowed() -> bool:
    token = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(
            header[7:].strip().encode(), str(token).encode()):
        return True
    if "X-Forwarded-For" in request.headers and not current_app.config["TRUSTED_PROXIES"]:
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in current_app.extensions["sso_metrics_allow"])


def metrics_view() -> Response:
    if not _allowed():
        return Response("metrics are not public: see docs/operations.md\n", 403,
                        mimetype="text/plain")
    registry = CollectorRegistry()
    if MULTIPROCESS:
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(OutboxCollector(current_app._get_current_object()))  # type: ignore[attr-defined]
    response = Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


class _Forward:
    """Our registry's metrics inside a per-scrape registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        return iter(self.source.collect())


def parse_networks(value: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    networks = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as error:
            from .config import ConfigError  # noqa: PLC0415

            raise ConfigError(f"SSO_METRICS_ALLOW: {item!r} is not a network ({error})"
                              ) from None
    return networks


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


#: (endpoint, status class) -> its latency and request series; grant type -> its token
#: series. ``labels()`` looks a series up under a lock on every call; these are bounded by
#: the app's endpoints and :data:`GRANT_TYPES`.
_SERIES: dict[tuple[str, int], tuple[Any, Any]] = {}
_TOKEN_SERIES: dict[str, Any] = {}


def observe(endpoint: str, status: int, started: float) -> None:
    """Count one answered request of ``endpoint`` and time it from ``started``."""
    key = (endpoint, status // 100)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES.setdefault(key, (LATENCY.labels(endpoint),
                                          REQUESTS.labels(endpoint, f"{status // 100}xx")))
    series[0].observe(time.perf_counter() - started)
    series[1].inc()


def token_issued(grant_type: str) -> None:
    """Count one token answer of the token endpoint."""
    grant = grant_type if grant_type in GRANT_TYPES else "other"
    series = _TOKEN_SERIES.get(grant)
    if series is None:
        series = _TOKEN_SERIES.setdefault(grant, TOKENS.labels(grant))
    series.inc()


def _observe(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is None or request.path in QUIET_PATHS:
        return response
    observe(request.endpoint or "unmatched", response.status_code, started)
    if request.endpoint == "oidc.token" and response.status_code == 200:
        token_issued(request.form.get("grant_type", ""))
    return response


def init_app(app: Flask) -> None:
    app.extensions["sso_metrics_allow"] = parse_networks(app.config["METRICS_ALLOW"])
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
