"""The NUL refusal reads the raw request (issue 15: it used to parse the query and the form
before every view): every way a NUL can arrive is still refused with a 400, and text that
only looks like one is not."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask.testing import FlaskClient

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def service(make_client: Any) -> dict[str, str]:
    made = make_client("Batch", grant_types=["client_credentials"], scope="api")
    pair = base64.b64encode(f"{made.client_id}:{made.secret}".encode()).decode()
    return {"Authorization": "Basic " + pair}


@pytest.mark.parametrize("body", [
    b"grant_type=client_credentials&scope=a%00b",
    b"grant_type=client_credentials&scope=a\x00b",
    b"grant_type=client_credentials&sc%00ope=api",
])
def test_a_nul_in_a_form_is_refused_before_the_view(
        client: FlaskClient, service: dict[str, str], body: bytes) -> None:
    response = client.post("/token", data=body, content_type=FORM, headers=service)
    assert response.status_code == 400
    # The hook's plain Bad Request, not the view's answer about the scope.
    assert response.get_json() == {"error": "invalid_request", "error_description": "Bad Request"}


@pytest.mark.parametrize("query", ["client_id=%00", "client_id=x&state=a\x00b"])
def test_a_nul_in_the_query_is_refused(client: FlaskClient, query: str) -> None:
    assert client.get("/authorize?" + query).status_code == 400


def test_a_nul_in_a_multipart_field_is_refused(client: FlaskClient,
                                               service: dict[str, str]) -> None:
    response = client.post("/token", data={"grant_type": "client_credentials",
                                           "scope": "a\x00b"},
                           content_type="multipart/form-data", headers=service)
    assert response.status_code == 400


def test_an_escaped_percent_is_not_a_nul(client: FlaskClient, service: dict[str, str]) -> None:
    """``%2500`` is the text ``%00``: the view answers it (an unknown scope), and a normal
    request still has its form once the hook has read the body."""
    refused = client.post("/token", data=b"grant_type=client_credentials&scope=%2500",
                          content_type=FORM, headers=service)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_scope"
    granted = client.post("/token", data=b"grant_type=client_credentials&scope=api",
                          content_type=FORM, headers=service)
    assert granted.status_code == 200 and granted.get_json()["scope"] == "api"
