"""Regressions found by the bad-input walk, each on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import csrf_of


@pytest.mark.parametrize(("path", "field"), [
    ("/login", "username"),
    ("/password/reset", "login"),
    ("/password/reset/code", "login"),
    ("/activate/again", "login"),
    ("/activate/code", "login"),
])
def test_a_nul_character_in_a_form_is_a_bad_request(client: FlaskClient, path: str,
                                                    field: str) -> None:
    """PostgreSQL refuses text with NUL, which used to surface as a 500."""
    token = csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post(path, data={"csrf_token": token, field: "a\x00b", "password": "x"},
                           headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 400
    assert "请求" in response.get_data(as_text=True)


def test_a_nul_character_in_the_query_is_a_bad_request(client: FlaskClient) -> None:
    assert client.get("/dev/outbox", query_string={"to": "\x00"}).status_code == 400
    assert client.get("/login", query_string={"flow\x00": "x"}).status_code == 400


def test_a_nul_character_on_the_token_endpoint_is_invalid_request(client: FlaskClient,
                                                                   erp: Any) -> None:
    response = client.post("/token", data={"grant_type": "authorization_code", "code": "\x00",
                                           "client_id": erp.client_id})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize(("method", "path"), [("GET", "/token"), ("PUT", "/introspect"),
                                              ("DELETE", "/revoke")])
def test_protocol_errors_raised_before_the_endpoint_are_not_cached(
    client: FlaskClient, method: str, path: str
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.get_json()["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"
    assert "POST" in response.headers["Allow"]
