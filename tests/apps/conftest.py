"""Fixtures of the app-activation tests: apps with each policy, a real SET recipient."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.apps.set_receiver import Receiver
from tests.conftest import ISSUER, Flow, query_of, resumed


@pytest.fixture
def make_app(make_client: Any) -> Any:
    """A first-party app with an activation policy (and an events endpoint, if given)."""

    def make(activation: str = "auto", events_endpoint: str | None = None,
             name: str = "ERP", **kwargs: Any) -> Any:
        policy: dict[str, Any] = {"activation": activation}
        if events_endpoint:
            policy["events_endpoint"] = events_endpoint
        return make_client(name, policy=policy, **kwargs)

    return make


@pytest.fixture
def receiver(app: Flask) -> Iterator[Receiver]:
    http = app.test_client()
    started = Receiver(jwks=lambda: http.get("/jwks.json").get_json(), issuer=ISSUER,
                       audience="").start()
    yield started
    started.stop()


def run_flow(flow: Flow, **overrides: Any) -> Any:
    """Start /authorize, sign in if asked, follow our redirects; return the last response
    (a redirect to the app, or a page of ours)."""
    flow.params = flow.authorize_params(**overrides)
    response = flow.http.get("/authorize", query_string=flow.params)
    for _ in range(8):
        if response.status_code != 302:
            return response
        location = response.headers["Location"]
        if location.startswith(flow.params["redirect_uri"]):
            return response
        if location.startswith("/login"):
            response = flow.login(flow_id=query_of(location)["flow"])
        else:
            response = flow.http.get(location)
    raise AssertionError("the flow loops")


def app_result(response: Any, flow: Flow) -> dict[str, str]:
    """The query the app receives at its redirect URI."""
    response = resumed(flow.http, response)
    assert response.status_code == 302, response.get_data(as_text=True)[:400]
    location = response.headers["Location"]
    assert location.startswith(flow.params["redirect_uri"]), location
    return query_of(location)
