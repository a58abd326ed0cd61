"""Configuration: working defaults, unsafe settings refused with the variable to fix."""

from __future__ import annotations

from typing import Any

import pytest

from sso import create_app
from sso.config import ConfigError


@pytest.mark.parametrize(("overrides", "message"), [
    ({"TESTING": False, "SECRET_KEY": None, "ISSUER": "https://sso.example.com"},
     "SSO_SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "at least 32"),
    ({"TESTING": False, "ISSUER": "http://sso.example.com"}, "https"),
    ({"ISSUER": "https://sso.example.com/?x=1"}, "query"),
    ({"ISSUER": "sso.example.com"}, "absolute"),
    ({"ACCESS_TOKEN_ALG": "HS256"}, "RS256 or ES256"),
    ({"REDIS_PREFIX": "nocolon"}, "REDIS_PREFIX"),
])
def test_unsafe_settings_are_refused(app_config: dict[str, Any], overrides: dict[str, Any],
                                     message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app({**app_config, **overrides})


def test_environment_variables_configure_the_app(app_config: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSO_ACCESS_TOKEN_TTL", "120")
    monkeypatch.setenv("SSO_ISSUER", "https://login.example.com/")
    config = {k: v for k, v in app_config.items() if k != "ISSUER"}
    app = create_app(config)
    assert app.config["ACCESS_TOKEN_TTL"] == 120
    assert app.config["ISSUER"] == "https://login.example.com"
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_postgres_urls_use_psycopg3(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "DATABASE_URL": "postgres://u@db/sso"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/sso"


def test_development_gets_a_persistent_secret(app_config: dict[str, Any], tmp_path: Any) -> None:
    config = {**app_config, "TESTING": False, "ENV": "development", "SECRET_KEY": None,
              "INSTANCE_PATH": str(tmp_path)}
    first = create_app(config).config["SECRET_KEY"]
    assert first == create_app(config).config["SECRET_KEY"]
    assert (tmp_path / "dev-secret-key").stat().st_mode & 0o077 == 0
