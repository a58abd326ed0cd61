"""The protocol's JSON is written by orjson where it writes the same bytes as the standard
library: the answers as Flask's ``jsonify`` writes them, the JOSE segments as ``json.dumps``
does (``sso.oidc.server.answer_body``, ``sso.oidc.keys._json_segment``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

from sso.oidc.keys import _json_segment, b64url_decode
from sso.oidc.server import answer_body

PAYLOADS: list[Any] = [
    {"access_token": "eyJ.abc.def", "token_type": "Bearer", "expires_in": 300,
     "scope": "openid profile", "refresh_token": "ssor_x", "id_token": "a.b.c"},
    {"active": False},
    {"sub": "3f2a", "name": "张三", "preferred_username": "zhangsan", "email_verified": True,
     "roles": ["销售", "admin"], "locale": None},
    {"error": "invalid_request",
     "error_description": "Line\nbreak \t tab \x01 \x7f \u2028 \"q\" \\"},
    {"b": 1, "a": [1, 2, {"d": None, "c": True}], "B": -5, "_": 0.5, "é": "x"},
    {"exp": 2**53, "iat": 0, "nested": {"z": [], "y": {}}},
    {"when": datetime(2026, 12, 6, 12, 0, tzinfo=UTC)},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_answers_are_the_bytes_flask_writes(app: Flask, payload: Any) -> None:
    with app.app_context():
        assert answer_body(payload) == app.json.response(payload).get_data()


@pytest.mark.parametrize("payload", PAYLOADS[:-1])
def test_jose_segments_are_the_bytes_json_writes(payload: Any) -> None:
    expected = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert b64url_decode(_json_segment(payload)) == expected


def test_a_jose_segment_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        _json_segment({"when": datetime(2026, 12, 6, tzinfo=UTC)})


def test_a_grant_s_answer_and_error_are_written_as_every_other_answer(
        app: Flask, client: Any, make_client: Any) -> None:
    """Authlib's answers (tokens, errors) go through ``answer_body`` too: compact, sorted,
    with the final newline, on both transports."""
    import base64

    service = make_client("Batch", grant_types=["client_credentials"], scope="api")
    pair = base64.b64encode(f"{service.client_id}:{service.secret}".encode()).decode()
    for data in ({"grant_type": "client_credentials"},
                 {"grant_type": "client_credentials", "scope": "nope"}):
        for cookie in (False, True):  # in front of Flask, and through it
            headers = {"Authorization": "Basic " + pair,
                       **({"Cookie": "a=b"} if cookie else {})}
            response = client.post("/token", data=data, headers=headers)
            with app.app_context():
                expected = app.json.response(response.get_json()).get_data()
            assert response.get_data() == expected, response.get_data()
