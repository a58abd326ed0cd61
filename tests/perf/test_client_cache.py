"""The per-worker client cache: fast, yet never serving a client that changed or is gone."""

from __future__ import annotations

import base64
import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from sso.extensions import RedisStore, db
from sso.oidc import clients
from sso.oidc.clients import ClientCache


def _basic(client_id: str, secret: str) -> dict[str, str]:
    pair = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def _client_credentials(http: FlaskClient, client_id: str, secret: str) -> Any:
    return http.post("/token", data={"grant_type": "client_credentials"},
                     headers=_basic(client_id, secret))


def _service(make_client: Any) -> Any:
    return make_client("Batch", grant_types=["client_credentials"], scope="api")


def test_a_deleted_client_is_refused_at_once(app: Flask, client: FlaskClient,
                                             make_client: Any) -> None:
    service = _service(make_client)
    assert _client_credentials(client, service.client_id, service.secret).status_code == 200
    with app.app_context():
        clients.delete_client(service.client_id)
        db.session.commit()
    response = _client_credentials(client, service.client_id, service.secret)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_a_changed_client_is_read_again(app: Flask, client: FlaskClient,
                                        make_client: Any) -> None:
    service = _service(make_client)
    assert _client_credentials(client, service.client_id, service.secret).status_code == 200
    with app.app_context():
        row = clients.get(service.client_id)
        row.grant_types = ["authorization_code"]
        row.redirect_uris = ["https://batch.example.com/cb"]
        db.session.commit()
    response = _client_credentials(client, service.client_id, service.secret)
    assert response.status_code == 400
    assert response.get_json()["error"] == "unauthorized_client"


def test_a_change_rolled_back_keeps_the_cache(app: Flask, make_client: Any) -> None:
    service = _service(make_client)
    with app.app_context():
        cache = ClientCache(app.extensions["sso_redis"])
        assert cache.get(service.client_id) is not None
        generation = cache._generation
        row = clients.get(service.client_id)
        row.name = "Renamed"
        db.session.flush()
        db.session.rollback()
        store = app.extensions["sso_redis"]
        assert store.client.get(store.key("oidc", "clients", "generation")) == generation


def test_another_worker_sees_the_change_within_the_check_interval(
        app: Flask, make_client: Any) -> None:
    """A change made elsewhere (a raw UPDATE here, so no ORM event fires in this process)
    is seen once the other process has announced it and the check interval has passed."""
    service = _service(make_client)
    with app.app_context():
        this_worker = ClientCache(app.extensions["sso_redis"], check_interval=1.0)
        other_worker = ClientCache(app.extensions["sso_redis"])
        assert this_worker.get(service.client_id, now=100.0).name == "Batch"
        db.session.execute(text("UPDATE clients SET name = 'Renamed' WHERE client_id = :id"),
                           {"id": service.client_id})
        db.session.commit()
        db.session.expire_all()
        other_worker.invalidate()
        assert this_worker.get(service.client_id, now=100.5).name == "Batch"  # not yet checked
        assert this_worker.get(service.client_id, now=101.0).name == "Renamed"


def test_one_thread_asks_redis_when_the_interval_is_up(app: Flask, make_client: Any) -> None:
    """While one thread of the worker is asking Redis for the generation, the others keep
    serving the one they have (at most an interval old) instead of all asking at once."""
    service = _service(make_client)
    with app.app_context():
        cache = ClientCache(app.extensions["sso_redis"], check_interval=1.0)
        other_worker = ClientCache(app.extensions["sso_redis"])
        assert cache.get(service.client_id, now=100.0).name == "Batch"
        db.session.execute(text("UPDATE clients SET name = 'Renamed' WHERE client_id = :id"),
                           {"id": service.client_id})
        db.session.commit()
        db.session.expire_all()
        other_worker.invalidate()
        assert cache._checking.acquire(blocking=False)  # another thread is asking now
        try:
            assert cache.get(service.client_id, now=102.0).name == "Batch"
        finally:
            cache._checking.release()
        assert cache.get(service.client_id, now=102.0).name == "Renamed"


def test_entries_expire_after_max_age(app: Flask, make_client: Any) -> None:
    service = _service(make_client)
    with app.app_context():
        cache = ClientCache(app.extensions["sso_redis"], max_age=30.0)
        first = cache.get(service.client_id, now=10.0)
        assert cache.get(service.client_id, now=39.0) is first
        assert cache.get(service.client_id, now=41.0) is not first


def test_a_flushed_redis_starts_a_new_generation(app: Flask, make_client: Any) -> None:
    service = _service(make_client)
    with app.app_context():
        store = app.extensions["sso_redis"]
        cache = ClientCache(store)
        cache.get(service.client_id)
        before = cache._generation
        store.client.delete(store.key("oidc", "clients", "generation"))
        cache.get(service.client_id, now=time.monotonic() + 2)
        assert cache._generation not in (None, before)


def test_cached_clients_are_snapshots_outside_any_session(app: Flask,
                                                          make_client: Any) -> None:
    service = _service(make_client)
    with app.app_context():
        cached = clients.cached(service.client_id)
        db.session.remove()
    with app.app_context():
        assert clients.cached(service.client_id) is cached
        assert cached.check_client_secret(service.secret)
        assert cached.scopes() == ["api"]
        assert cached not in db.session


def test_without_redis_clients_come_from_the_database(app: Flask, make_client: Any) -> None:
    service = _service(make_client)
    with app.app_context():
        dead = RedisStore("redis://127.0.0.1:1/0", "sso:")
        cache = ClientCache(dead)
        assert cache.get(service.client_id).client_id == service.client_id
        assert cache._entries == {}
        assert cache.get("no-such-client") is None
