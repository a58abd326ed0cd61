"""Introspection's token statuses kept per worker (``SSO_INTROSPECTION_CACHE``): no read while
nothing changed, and never an active answer for a token revoked or a user disabled on this
worker; other workers within the check interval; without Redis, every answer from the
database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from sso import create_app
from sso.config import ConfigError
from sso.extensions import RedisStore, db
from sso.oidc import tokenstatus
from sso.oidc.tokenstatus import TokenStatusCache
from sso.taggedcache import TaggedCache
from tests.conftest import Flow, basic
from tests.perf.test_statements import statements

#: Introspection reads on a connection of its own: the rows must really be committed.
live = pytest.mark.truncate


@pytest.fixture
def cache_on(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(app.config, "INTROSPECTION_CACHE", 30)
    app.extensions.pop(tokenstatus.EXTENSION, None)
    yield
    app.extensions.pop(tokenstatus.EXTENSION, None)


def _introspect(flow: Flow, token: str) -> dict[str, Any]:
    response = flow.http.post("/introspect", data={"token": token},
                              headers=basic(flow.app_client))
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def _access(flow: Flow) -> str:
    return flow.token(flow.authorize()["code"]).get_json()["access_token"]  # type: ignore[no-any-return]


@live
def test_without_the_setting_every_introspection_reads(app: Flask, flow: Flow) -> None:
    access = _access(flow)
    for _ in range(2):
        with statements() as seen:
            assert _introspect(flow, access)["active"] is True
        assert len(seen) == 1, seen
    assert tokenstatus.EXTENSION not in app.extensions


@live
def test_with_the_setting_a_second_introspection_reads_nothing(flow: Flow, cache_on: None
                                                                ) -> None:
    access = _access(flow)
    with statements() as seen:
        first = _introspect(flow, access)
    assert first["active"] is True and len(seen) == 1, seen
    with statements() as seen:
        assert _introspect(flow, access) == first
    assert seen == []


@live
def test_a_revocation_on_this_worker_is_seen_at_once(flow: Flow, cache_on: None) -> None:
    access = _access(flow)
    assert _introspect(flow, access)["active"] is True
    revoked = flow.http.post("/revoke", data={"token": access}, headers=basic(flow.app_client))
    assert revoked.status_code == 200
    assert _introspect(flow, access) == {"active": False}


@live
def test_a_disabled_user_is_seen_at_once(app: Flask, flow: Flow, alice: Any,
                                         cache_on: None) -> None:
    from sso.accounts import lifecycle
    from sso.users.models import User

    access = _access(flow)
    assert _introspect(flow, access)["username"] == "alice"
    with app.app_context():
        lifecycle.disable(db.session.get(User, alice.id))
        db.session.commit()
    assert _introspect(flow, access) == {"active": False}


@live
def test_a_renamed_user_is_read_again(app: Flask, flow: Flow, alice: Any,
                                      cache_on: None) -> None:
    from sso.users.models import User

    access = _access(flow)
    assert _introspect(flow, access)["username"] == "alice"
    with app.app_context():
        db.session.get(User, alice.id).username = "alice.wang"
        db.session.commit()
    assert _introspect(flow, access)["username"] == "alice.wang"


@live
def test_a_bulk_update_of_users_is_seen_at_once(app: Flask, flow: Flow, alice: Any,
                                                cache_on: None) -> None:
    """An ORM statement that updates users (no object is loaded) announces a change too."""
    from sqlalchemy import update

    from sso.users.models import User

    access = _access(flow)
    assert _introspect(flow, access)["active"] is True
    with app.app_context():
        db.session.execute(update(User).where(User.id == alice.id).values(status="disabled"))
        db.session.commit()
    assert _introspect(flow, access) == {"active": False}


@live
def test_a_sign_in_does_not_empty_the_cache(app: Flask, flow: Flow, alice: Any,
                                            cache_on: None) -> None:
    """Only what an answer depends on announces a change: a user's other columns do not."""
    from sso.users.models import User

    access = _access(flow)
    _introspect(flow, access)
    store = app.extensions["sso_redis"]
    key = store.key("oidc", "token-status", "generation")
    generation = store.client.get(key)
    with app.app_context():
        db.session.get(User, alice.id).name = "Alice Wang"
        db.session.commit()
    assert store.client.get(key) == generation
    with statements() as seen:
        assert _introspect(flow, access)["active"] is True
    assert seen == []


@live
def test_a_clients_own_token_is_kept_and_its_revocation_seen(
        flow: Flow, make_client: Any, cache_on: None) -> None:
    service = make_client("Reports", grant_types=["client_credentials"], scope="reports",
                          redirect_uris=[])
    token = flow.http.post("/token", data={"grant_type": "client_credentials"},
                           headers=basic(service)).get_json()["access_token"]

    def introspect() -> dict[str, Any]:
        return flow.http.post("/introspect", data={"token": token},  # type: ignore[no-any-return]
                              headers=basic(service)).get_json()

    assert introspect()["active"] is True
    with statements() as seen:
        assert introspect()["active"] is True
    assert seen == []
    assert flow.http.post("/revoke", data={"token": token},
                          headers=basic(service)).status_code == 200
    assert introspect() == {"active": False}


@live
def test_another_worker_sees_a_revocation_within_the_check_interval(
        app: Flask, flow: Flow, cache_on: None) -> None:
    """The other worker is a second cache on the same Redis, driven with its own clock."""
    from sso.oidc import tokens

    access = _access(flow)
    with app.app_context():
        jti = app.extensions["sso_tokens"].validate_access_token(access).claims["jti"]
        sub = app.extensions["sso_tokens"].validate_access_token(access).claims["sub"]
        other = TokenStatusCache(app.extensions["sso_redis"], max_age=30.0)

        def status(now: float) -> Any:
            return other.lookup((jti, sub), lambda: tokens.revocation_and_status(jti, sub), now)

        assert status(100.0)[0] is False
    assert flow.http.post("/revoke", data={"token": access},
                          headers=basic(flow.app_client)).status_code == 200
    with app.app_context():
        assert status(100.5)[0] is False  # kept: not checked again yet
        assert status(101.0)[0] is True


@live
def test_without_redis_every_introspection_reads(app: Flask, flow: Flow, cache_on: None
                                                 ) -> None:
    access = _access(flow)
    app.extensions[tokenstatus.EXTENSION] = TokenStatusCache(
        RedisStore("redis://127.0.0.1:1/0", "sso:"), max_age=30.0)
    for _ in range(2):
        with statements() as seen:
            assert _introspect(flow, access)["active"] is True
        assert len(seen) == 1, seen


def test_the_oldest_entry_goes_when_full(app: Flask) -> None:
    cache: TaggedCache[str, int] = TaggedCache(
        app.extensions["sso_redis"], ("test", "bounded"), "numbers", max_age=30.0,
        check_interval=1.0, size=2)
    for number, key in enumerate("abc"):
        assert cache.lookup(key, lambda n=number: n, now=10.0) == number
    assert list(cache._entries) == ["b", "c"]
    assert cache.lookup("a", lambda: 9, now=10.0) == 9


@pytest.mark.parametrize("value", [-1, 61, True, "soon"])
def test_the_setting_is_checked_at_start(app_config: dict[str, Any], value: Any) -> None:
    assert create_app(app_config).config["INTROSPECTION_CACHE"] == 0
    with pytest.raises(ConfigError, match="SSO_INTROSPECTION_CACHE"):
        create_app({**app_config, "INTROSPECTION_CACHE": value})
