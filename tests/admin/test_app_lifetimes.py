"""Token lifetimes per app in the console's app forms and ``sso clients create|update``:
set, shown, reset to the settings, and refused out of bounds with a clear message in the
admin's language."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from sso.cli import cli
from tests.admin.conftest import csrf

SETTINGS = {"activation": "auto", "events_endpoint": "", "name_zh": "", "logo_uri": ""}


def _client(app: Flask, client_id: str) -> Any:
    from sso.extensions import db
    from sso.oidc.models import Client

    with app.app_context():
        found = db.session.get(Client, client_id)
        db.session.expunge(found)
        return found


def test_the_settings_form_sets_and_resets_lifetimes(app: Flask, admins: Any,
                                                     as_admin: Any) -> None:
    from sso.audit import AuditEvent
    from sso.extensions import db

    http = as_admin("appadmin")  # an app admin of app A sets its app's lifetimes
    page = http.get("/admin/apps/app-a").get_data(as_text=True)
    assert 'id="access_token_ttl"' in page and "60 to 86400; now 600" in page
    answer = http.post("/admin/apps/app-a/settings", data={
        "csrf_token": csrf(http), **SETTINGS, "access_token_ttl": "120",
        "id_token_ttl": "", "refresh_token_ttl": "7200"})
    assert answer.status_code == 302
    found = _client(app, "app-a")
    assert (found.access_token_ttl, found.id_token_ttl, found.refresh_token_ttl) == (
        120, None, 7200)
    assert 'value="120"' in http.get("/admin/apps/app-a").get_data(as_text=True)
    with app.app_context():
        event = db.session.scalars(db.select(AuditEvent).where(
            AuditEvent.event == "admin.client.update")).all()[-1]
        assert event.details["change"]["access_token_ttl"] == 120
    http.post("/admin/apps/app-a/settings", data={
        "csrf_token": csrf(http), **SETTINGS, "access_token_ttl": "", "refresh_token_ttl": ""})
    found = _client(app, "app-a")
    assert (found.access_token_ttl, found.refresh_token_ttl) == (None, None)


@pytest.mark.parametrize("field, value, english, chinese", [
    ("access_token_ttl", "30", "access token lifetime: 60 to 86400 seconds, or empty for the "
     "default", "访问令牌有效期：60 到 86400 秒，留空则使用默认值"),
    ("id_token_ttl", "90000", "ID token lifetime: 60 to 86400 seconds",
     "ID 令牌有效期：60 到 86400 秒"),
    ("refresh_token_ttl", "2h", "refresh token lifetime: a whole number of seconds",
     "刷新令牌有效期：须为整数秒"),
])
def test_lifetimes_out_of_bounds_re_show_the_form_with_the_error(
        app: Flask, admins: Any, as_admin: Any, field: str, value: str, english: str,
        chinese: str) -> None:
    http = as_admin("root")
    answer = http.post("/admin/apps/app-a/settings", data={
        "csrf_token": csrf(http), **SETTINGS, "activation": "approval", field: value})
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert english in page and f'value="{value}"' in page
    # Nothing was saved, not even the other settings.
    found = _client(app, "app-a")
    assert getattr(found, field) is None and found.activation == "auto"
    answer = http.post("/admin/apps/app-a/settings", data={
        "csrf_token": csrf(http), **SETTINGS, field: value},
        headers={"Accept-Language": "zh-CN"})
    assert chinese in answer.get_data(as_text=True)


def test_registering_an_app_in_the_console_takes_lifetimes(app: Flask, admins: Any,
                                                          as_admin: Any) -> None:
    http = as_admin("root")
    form = {"csrf_token": csrf(http), "name": "Kiosk", "client_id": "kiosk",
            "redirect_uris": "https://kiosk.example.com/cb",
            "grant_type": "authorization_code", "id_token_alg": "RS256",
            "activation": "auto", "access_token_ttl": "5"}
    refused = http.post("/admin/apps/new", data=form)
    assert refused.status_code == 400
    assert "access token lifetime: 60 to 86400 seconds" in refused.get_data(as_text=True)
    assert 'value="5"' in refused.get_data(as_text=True)
    created = http.post("/admin/apps/new", data={**form, "access_token_ttl": "300"})
    assert created.status_code == 200
    assert _client(app, "kiosk").access_token_ttl == 300


def _run(runner: Any, *args: str, ok: bool = True) -> Any:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_the_cli_sets_and_resets_lifetimes_and_refuses_bad_ones(app: Flask,
                                                                runner: Any) -> None:
    created = json.loads(_run(runner, "clients", "create", "--name", "Kiosk",
                              "--redirect-uri", "https://kiosk.example.com/cb",
                              "--access-token-ttl", "120", "--refresh-token-ttl", "86400",
                              "--json").output)
    assert created["lifetimes"] == {"access_token_ttl": 120, "id_token_ttl": None,
                                    "refresh_token_ttl": 86400}
    client_id = created["client_id"]
    _run(runner, "clients", "update", client_id, "--id-token-ttl", "900",
         "--access-token-ttl", "default")
    found = _client(app, client_id)
    assert (found.access_token_ttl, found.id_token_ttl, found.refresh_token_ttl) == (
        None, 900, 86400)
    bad = _run(runner, "clients", "update", client_id, "--refresh-token-ttl", "40000000",
               ok=False)
    assert "Error: refresh token lifetime: 60 to 31536000 seconds" in bad.output
    bad = _run(runner, "clients", "create", "--name", "X", "--redirect-uri",
               "https://x.example.com/cb", "--access-token-ttl", "ten", ok=False)
    assert "access token lifetime: a whole number of seconds" in bad.output
    assert _client(app, client_id).refresh_token_ttl == 86400


def test_the_keys_page_names_the_longest_lifetime_in_use(app: Flask, admins: Any,
                                                         as_admin: Any,
                                                         make_client: Any) -> None:
    make_client("Long", ["https://long.example.com/cb"], lifetimes={"id_token_ttl": 7200})
    page = as_admin("auditor").get("/admin/keys").get_data(as_text=True)
    assert "the longest access or ID token lifetime in use" in page
    assert "is 7200 seconds" in page
