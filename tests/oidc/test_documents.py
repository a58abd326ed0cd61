"""Discovery and the JWKS answered in front of Flask (``sso/oidc/documents.py``) and through
the Flask routes give the same answer: status, headers and body, 200, 304 and HEAD; the bare
request is logged, counted and tied to its request id like any other."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

from sso.oidc.documents import DOCUMENTS, DocumentsFirst
from tests.conftest import paths_behind

PATHS = sorted(DOCUMENTS)


def _shape(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "X-Request-Id")
    return response.status_code, headers, response.get_data()


@pytest.mark.parametrize("path", PATHS)
def test_the_bare_request_and_the_flask_route_answer_alike(app: Flask, path: str,
                                                          monkeypatch: Any) -> None:
    through_flask = paths_behind(app, DocumentsFirst, monkeypatch)
    bare = app.test_client()
    with_cookie = app.test_client()
    with_cookie.set_cookie("theme", "dark")

    app.extensions["sso_keys"]._checked = float("-inf")  # the key check is due
    first = bare.get(path)
    assert first.status_code == 200 and first.get_json()
    assert through_flask == ([path] if path == "/jwks.json" else [])
    # The JWKS check was made just now: the next bare request is answered in front.
    del through_flask[:]
    etag = first.headers["ETag"]
    answers = [(bare.get(path), with_cookie.get(path)),
               (bare.get(path, headers={"If-None-Match": etag}),
                with_cookie.get(path, headers={"If-None-Match": etag})),
               (bare.get(path, headers={"If-None-Match": f'"other", {etag}'}),
                with_cookie.get(path, headers={"If-None-Match": f'"other", {etag}'})),
               (bare.head(path), with_cookie.head(path))]
    assert through_flask == [path] * 4
    for fast, routed in answers:
        assert _shape(fast) == _shape(routed)
        assert fast.headers["X-Request-Id"] != routed.headers["X-Request-Id"]
    assert [fast.status_code for fast, _ in answers] == [200, 304, 304, 200]
    assert answers[3][0].get_data() == b""
    assert answers[3][0].headers["Content-Length"] == first.headers["Content-Length"]
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert first.headers["X-Frame-Options"] == "DENY"


def test_the_bare_request_is_logged_counted_and_keeps_the_request_id(
        app: Flask, caplog: Any, monkeypatch: Any) -> None:
    from sso.logs import RequestIdFilter
    from sso.metrics import REQUESTS

    caplog.handler.addFilter(RequestIdFilter())  # as the server's log handler has it

    path = "/.well-known/openid-configuration"
    through_flask = paths_behind(app, DocumentsFirst, monkeypatch)
    before = REQUESTS.labels("oidc.discovery", "2xx")._value.get()
    with caplog.at_level(logging.INFO, logger="sso.access"):
        response = app.test_client().get(path, headers={"X-Request-Id": "lb-1234"})
    assert through_flask == []
    assert response.headers["X-Request-Id"] == "lb-1234"
    assert REQUESTS.labels("oidc.discovery", "2xx")._value.get() == before + 1
    line, = [r for r in caplog.records if r.name == "sso.access"]
    assert (line.method, line.path, line.status) == ("GET", path, 200)
    assert line.request_id == "lb-1234"
    fresh = app.test_client().get(path, headers={"X-Request-Id": "not a sane id"})
    assert fresh.headers["X-Request-Id"] != "not a sane id"


def test_a_query_string_or_a_post_goes_to_flask(app: Flask, monkeypatch: Any) -> None:
    through_flask = paths_behind(app, DocumentsFirst, monkeypatch)
    client = app.test_client()
    assert client.get("/.well-known/openid-configuration?x=%00").status_code == 400
    assert client.post("/jwks.json").status_code == 405
    assert through_flask == ["/.well-known/openid-configuration", "/jwks.json"]


def test_a_rotation_reaches_the_bare_request_after_the_check_interval(
        app: Flask, monkeypatch: Any) -> None:
    from sso.extensions import db

    app.config["KEYS_CHECK_INTERVAL"] = 0.0
    keys = app.extensions["sso_keys"]
    keys.check_interval = 0.0
    through_flask = paths_behind(app, DocumentsFirst, monkeypatch)
    client = app.test_client()
    before = client.get("/jwks.json").get_json()
    with app.app_context():
        keys.rotate(["ES256"])
        db.session.commit()
    after = client.get("/jwks.json").get_json()
    assert through_flask == ["/jwks.json", "/jwks.json"]  # a due check is made in Flask
    assert {k["kid"] for k in after["keys"]} != {k["kid"] for k in before["keys"]}
