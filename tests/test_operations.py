"""What an operator watches: Prometheus metrics at /metrics (who may read them, what they
count), the request id on responses, log lines and audit rows, and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from sso import create_app, logs
from sso.extensions import db
from tests.conftest import Flow, production_access_log

TOKEN = "metrics-" + "t" * 40


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# Who may read.


@pytest.mark.parametrize(("environ", "headers", "allowed"), [
    ({"REMOTE_ADDR": "127.0.0.1"}, {}, True),
    ({"REMOTE_ADDR": "::1"}, {}, True),
    ({"REMOTE_ADDR": "192.0.2.7"}, {}, False),
    ({"REMOTE_ADDR": "192.0.2.7"}, {"Authorization": f"Bearer {TOKEN}"}, True),
    ({"REMOTE_ADDR": "192.0.2.7"}, {"Authorization": "Bearer wrong"}, False),
    ({"REMOTE_ADDR": "192.0.2.7"}, {"Authorization": f"Basic {TOKEN}"}, False),
    # A reverse proxy on this host that the provider was not told to trust: by token only.
    ({"REMOTE_ADDR": "127.0.0.1"}, {"X-Forwarded-For": "198.51.100.1"}, False),
    ({"REMOTE_ADDR": "10.1.2.3"}, {}, True),  # in SSO_METRICS_ALLOW below
])
def test_metrics_are_for_the_allowed_networks_and_the_token(
        app: Flask, app_config: dict[str, Any], environ: dict[str, str], headers: dict[str, str],
        allowed: bool) -> None:
    guarded = create_app({**app_config, "METRICS_TOKEN": TOKEN,
                          "METRICS_ALLOW": "127.0.0.1/32,::1/128,10.0.0.0/8"})
    response = guarded.test_client().get("/metrics", environ_base=environ, headers=headers)
    assert response.status_code == (200 if allowed else 403)
    if allowed:
        assert b"sso_http_request_duration_seconds" in response.data
    else:
        assert b"sso_" not in response.data


def test_a_bad_network_list_refuses_to_start(app_config: dict[str, Any]) -> None:
    from sso.config import ConfigError

    with pytest.raises(ConfigError, match="SSO_METRICS_ALLOW"):
        create_app({**app_config, "METRICS_ALLOW": "loopback"})


# What they count.


def test_sign_ins_tokens_and_latency_are_counted(app: Flask, flow: Flow) -> None:
    before = scrape(flow.http)
    flow.login("alice", "wrong password")
    code = flow.authorize()["code"]
    assert flow.token(code).status_code == 200
    after = scrape(flow.http)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("sso_signins_total", door="password", result="success") == 1
    assert grew("sso_signins_total", door="password", result="failure") == 1
    assert grew("sso_tokens_issued_total", grant_type="authorization_code") == 1
    assert grew("sso_http_request_duration_seconds_count", endpoint="oidc.token") == 1
    assert grew("sso_http_requests_total", endpoint="oidc.token", status="2xx") == 1
    assert grew("sso_audit_events_total", event="token.issue", outcome="success") == 1


def test_lockouts_are_counted(app: Flask, flow: Flow) -> None:
    before = value(scrape(flow.http), "sso_lockouts_total")
    app.config["CAPTCHA_AFTER"] = 1000
    try:
        for _ in range(app.config["LOCKOUT_THRESHOLD"]):
            flow.login("alice", "wrong password")
    finally:
        app.config["CAPTCHA_AFTER"] = 3
    assert value(scrape(flow.http), "sso_lockouts_total") == before + 1


def test_client_credentials_tokens_are_counted_by_grant(client: FlaskClient,
                                                        make_client: Any) -> None:
    import base64

    service = make_client("Batch", grant_types=["client_credentials"], scope="api")
    pair = base64.b64encode(f"{service.client_id}:{service.secret}".encode()).decode()
    before = value(scrape(client), "sso_tokens_issued_total", grant_type="client_credentials")
    for _ in range(3):
        assert client.post("/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": "Basic " + pair}).status_code == 200
    assert client.post("/token", data={"grant_type": "client_credentials"}).status_code == 401
    after = value(scrape(client), "sso_tokens_issued_total", grant_type="client_credentials")
    assert after == before + 3


def test_outbox_backlog_age_and_delivery_failures(app: Flask, client: FlaskClient) -> None:
    from sso import outbox

    with app.app_context():
        outbox.enqueue("fax", "test", "+8613800000000", body_text="no transport for this")
        db.session.commit()
        before = value(scrape(client), "sso_outbox_delivery_failures_total",
                       channel="fax", outcome="retry")
        outbox.deliver_due(app.config)  # fails: no fax transport; retried later
        db.session.remove()
    samples = scrape(client)
    assert value(samples, "sso_outbox_backlog", channel="fax") == 1
    assert value(samples, "sso_outbox_oldest_age_seconds", channel="fax") >= 0
    assert ("sso_outbox_backlog", (("channel", "mail"),)) in samples  # every channel listed
    assert value(samples, "sso_outbox_delivery_failures_total", channel="fax",
                 outcome="retry") == before + 1


def test_database_and_redis_errors_are_counted(app: Flask, app_config: dict[str, Any],
                                               client: FlaskClient) -> None:
    before = scrape(client)
    with app.app_context():
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
            db.session.execute(text("SELECT * FROM no_such_table"))
        db.session.remove()
    cut_off = create_app({**app_config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    with cut_off.app_context():
        import redis

        with pytest.raises(redis.RedisError):
            cut_off.extensions["sso_redis"].client.get("x")
    after = scrape(client)
    assert value(after, "sso_database_errors_total") == value(
        before, "sso_database_errors_total") + 1
    assert value(after, "sso_redis_errors_total") == value(before, "sso_redis_errors_total") + 1


def test_qr_desktops_waiting_and_decisions(app: Flask, client: FlaskClient) -> None:
    from sso.metrics import QR_DECISIONS, QR_WAITING

    broker = app.extensions["sso_qr_broker"]
    seen = []
    # The gauge is the process's: a desktop stream of an earlier test may still end in its
    # own thread meanwhile. A try counts when nothing but this one came or went; a broker
    # that miscounts fails every try.
    for _ in range(5):
        waiting = QR_WAITING._value.get()
        waiter = broker.watch("metrics-test")
        try:
            during = value(scrape(client), "sso_qr_desktops_waiting")
        finally:
            broker.unwatch(waiter)
            broker.unwatch(waiter)  # twice: counted once
        after = value(scrape(client), "sso_qr_desktops_waiting")
        seen.append((waiting, during, after))
        if (during, after) == (waiting + 1, waiting):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the waiting desktops were not counted once each: {seen}")
    approved = QR_DECISIONS.labels("approved")._value.get()
    with app.app_context():
        from sso import audit

        audit.record("qr.approve", user_id=1)
        db.session.rollback()
    assert value(scrape(client), "sso_qr_decisions_total", result="approved") == approved + 1


# The request id.


@pytest.mark.parametrize(("sent", "kept"), [
    ("lb-1f2e3d:42", True),
    ("a" * 64, True),
    ("a" * 65, False),
    ("two words", False),
    ("<script>", False),
    ("", False),
])
def test_the_request_id_is_echoed_when_sane(client: FlaskClient, sent: str, kept: bool) -> None:
    response = client.get("/.well-known/openid-configuration", headers={"X-Request-Id": sent})
    echoed = response.headers["X-Request-Id"]
    assert (echoed == sent) is kept
    assert logs._SANE.fullmatch(echoed)


def test_error_pages_carry_a_request_id_too(client: FlaskClient) -> None:
    response = client.get("/no-such-page", headers={"X-Request-Id": "req-404"})
    assert response.status_code == 404
    assert response.headers["X-Request-Id"] == "req-404"


def test_audit_rows_carry_the_request_id(app: Flask, flow: Flow) -> None:
    from sso.audit import AuditEvent

    page = flow.http.get("/login")
    from tests.conftest import PASSWORD, csrf_of

    flow.http.post("/login", headers={"X-Request-Id": "support-ticket-7"}, data={
        "csrf_token": csrf_of(page.get_data(as_text=True)), "username": "alice",
        "password": PASSWORD})
    with app.app_context():
        rows = db.session.scalars(db.select(AuditEvent).where(
            AuditEvent.request_id == "support-ticket-7")).all()
        assert {row.event for row in rows} >= {"signin.password", "signin"}
        cli_rows = db.session.scalars(db.select(AuditEvent).where(
            AuditEvent.request_id.is_(None))).all()
        db.session.remove()
    assert all(row.event != "signin.password" for row in cli_rows)


def test_log_lines_are_json_with_the_request_id(app: Flask, client: FlaskClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RequestIdFilter())
    handler.setFormatter(logs.JsonFormatter())
    access = logging.getLogger("sso.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        client.get("/jwks.json", headers={"X-Request-Id": "json-log-1"})
        client.get("/metrics", headers={"X-Request-Id": "json-log-2"})  # quiet path
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "json-log-1"
    assert line["logger"] == "sso.access" and line["level"] == "info"
    assert line["path"] == "/jwks.json" and line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["time"].endswith("Z")


@pytest.mark.parametrize(("path", "remote_addr"), [
    ('/token/"ü"\\', None),
    ("/introspect/\n\t\x7f\u2028\x00中文", "2001:db8::1"),
])
def test_the_access_line_written_directly_is_the_one_logging_writes(
        monkeypatch: pytest.MonkeyPatch, path: str, remote_addr: str | None) -> None:
    """Where every handler is one of ours writing JSON, ``logs.access`` writes the line itself;
    with anything else on the way (here a logger filter) it goes through ``logging``. The two
    lines are the same, byte for byte but for the time and the duration."""
    access = logs.access_log
    logged_info = access.info
    serving = logs.serving("req-direct-1")
    try:
        with production_access_log(io.StringIO()) as stream:
            def not_through_logging(*args: Any, **kwargs: Any) -> None:
                raise AssertionError("the direct line went through logging")

            monkeypatch.setattr(access, "info", not_through_logging)
            logs.access("POST", path, 200, 0.0, remote_addr)
            monkeypatch.setattr(access, "info", logged_info)
            passing = logging.Filter()
            access.addFilter(passing)
            try:
                logs.access("POST", path, 200, 0.0, remote_addr)
            finally:
                access.removeFilter(passing)
    finally:
        logs.served(serving)
    # Lines end at "\n" only: U+2028 is written as it is (ensure_ascii=False), and
    # str.splitlines would cut there.
    direct, logged = [re.sub(r'"time": "[^"]*"|"duration_ms": [0-9.e+]+', "", line)
                      for line in stream.getvalue().split("\n")[:2]]
    assert direct == logged
    line = json.loads(stream.getvalue().split("\n")[0])
    assert line["path"] == path and line["request_id"] == "req-direct-1"
    assert line["remote_addr"] == remote_addr and line["message"] == f"POST {path} 200"


def test_an_audit_line_written_directly_is_the_one_logging_writes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``logs.info`` (an audit event's line) writes the line itself where every handler is
    one of ours writing JSON, and through ``logging`` otherwise: the same line."""
    audit_log = logging.getLogger("sso.audit")
    logged_info = audit_log.info
    arguments = ("token.issue", "success", 7, 'app-"ü"\\', "2001:db8::1\n\u2028中文")
    serving = logs.serving("req-audit-1")
    try:
        with production_access_log(io.StringIO(), audit_log) as stream:
            def not_through_logging(*args: Any, **kwargs: Any) -> None:
                raise AssertionError("the direct line went through logging")

            monkeypatch.setattr(audit_log, "info", not_through_logging)
            logs.info(audit_log, "%s %s user=%s client=%s ip=%s", *arguments)
            logs.info(audit_log, "100% sure, no arguments")
            monkeypatch.setattr(audit_log, "info", logged_info)
            passing = logging.Filter()
            audit_log.addFilter(passing)
            try:
                logs.info(audit_log, "%s %s user=%s client=%s ip=%s", *arguments)
                logs.info(audit_log, "100% sure, no arguments")
            finally:
                audit_log.removeFilter(passing)
    finally:
        logs.served(serving)
    direct, plain, logged, logged_plain = [re.sub(r'"time": "[^"]*"', "", line)
                                           for line in stream.getvalue().split("\n")[:4]]
    assert (direct, plain) == (logged, logged_plain)
    line = json.loads(stream.getvalue().split("\n")[0])
    assert line == {"time": line["time"], "level": "info", "logger": "sso.audit",
                    "message": "token.issue success user=7 client=app-\"ü\"\\ "
                               "ip=2001:db8::1\n\u2028中文", "request_id": "req-audit-1"}
    assert json.loads(stream.getvalue().split("\n")[1])["message"] == "100% sure, no arguments"


def test_a_disabled_or_quiet_logger_writes_no_direct_line() -> None:
    audit_log = logging.getLogger("sso.audit")
    with production_access_log(io.StringIO(), audit_log) as stream:
        audit_log.disabled = True
        try:
            logs.info(audit_log, "%s", "disabled")
        finally:
            audit_log.disabled = False
        audit_log.setLevel(logging.WARNING)
        logs.info(audit_log, "%s", "below the level")
    assert stream.getvalue() == ""


def test_the_server_queues_an_audit_event_s_line_with_its_request(
        app: Flask, flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sign-in's audit events reach the log as under ``sso serve``: queued for the worker's
    writer with the access line, not through ``logging``, each with the request's id."""
    from tests.conftest import PASSWORD, csrf_of

    audit_log = logging.getLogger("sso.audit")
    page = flow.http.get("/login")
    with production_access_log(io.StringIO(), audit_log) as stream:
        def not_through_logging(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("the audit line went through logging")

        monkeypatch.setattr(audit_log, "info", not_through_logging)
        logs.batch_lines(5)
        flow.http.post("/login", headers={"X-Request-Id": "support-ticket-8"}, data={
            "csrf_token": csrf_of(page.get_data(as_text=True)), "username": "alice",
            "password": PASSWORD})
        assert stream.getvalue() == ""  # queued
        logs.stop_batching()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {line["message"].split()[0] for line in lines} >= {"signin.password", "signin"}
    assert {line["request_id"] for line in lines} == {"support-ticket-8"}


@pytest.mark.parametrize("created", [0.0, 1.0005, 1733360523.9995, 1733360523.0001,
                                     1764892800.999999, 1764892801.5])
def test_a_log_line_s_time_is_utc_to_the_millisecond(created: float) -> None:
    """The time of every JSON line, made from a cached second: the same text as
    ``datetime``'s ISO 8601, cut (not rounded) to the millisecond."""
    from datetime import UTC, datetime

    expected = datetime.fromtimestamp(int(created), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    expected += f".{int(round(created - int(created), 6) * 1000):03d}Z"
    assert logs._utc_time(created) == expected
    assert logs._utc_time(created + 1).startswith(
        datetime.fromtimestamp(int(created) + 1, UTC).strftime("%Y-%m-%dT%H:%M:%S."))


def test_the_log_format_follows_the_environment(app_config: dict[str, Any]) -> None:
    from sso.config import ConfigError

    assert create_app(app_config).config["LOG_FORMAT"] == "text"  # tests, like development
    assert create_app({**app_config, "LOG_FORMAT": "json"}).config["LOG_FORMAT"] == "json"
    with pytest.raises(ConfigError, match="SSO_LOG_FORMAT"):
        create_app({**app_config, "LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="SSO_LOG_LEVEL"):
        create_app({**app_config, "LOG_LEVEL": "loud"})
