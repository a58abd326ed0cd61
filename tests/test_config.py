"""Configuration: working defaults, unsafe settings refused with the variable to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from sso import create_app
from sso.config import (
    SETTINGS_FILE,
    ConfigError,
    default_instance_path,
    read_settings_file,
    write_settings_file,
)


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


@pytest.mark.parametrize(("missing", "named"), [
    (("DATABASE_URL", "REDIS_URL"), "set SSO_DATABASE_URL and SSO_REDIS_URL:"),
    (("DATABASE_URL",), "set SSO_DATABASE_URL:"),
    (("REDIS_URL",), "set SSO_REDIS_URL:"),
])
def test_production_has_no_store_fallbacks(app_config: dict[str, Any], missing: tuple[str, ...],
                                           named: str) -> None:
    config = {**app_config, "TESTING": False, "ISSUER": "https://sso.example.com",
              **{name: None for name in missing}}
    with pytest.raises(ConfigError, match=named):
        create_app(config)


def test_development_falls_back_to_sqlite_and_the_embedded_redis_without_starting_it(
        app_config: dict[str, Any], tmp_path: Path) -> None:
    app = create_app({**app_config, "TESTING": False, "ENV": "development",
                      "DATABASE_URL": None, "REDIS_URL": None, "INSTANCE_PATH": str(tmp_path)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'sso.sqlite3'}"
    assert app.config["REDIS_URL"] == f"unix://{tmp_path / 'redis.sock'}"
    assert app.config["REDIS_EMBEDDED"] is True
    # Building the app started nothing: the commands that run the provider start it.
    assert not (tmp_path / "redis.sock").exists() and not (tmp_path / "redis.pid").exists()


def test_the_settings_file_comes_before_the_environment(
        app_config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = write_settings_file(
        tmp_path, {"SSO_ACCESS_TOKEN_TTL": "120", "SSO_ID_TOKEN_TTL": "90",
                   "SSO_MFA_ISSUER_NAME": "Demo SSO"}, "a header\nof two lines")
    assert written.stat().st_mode & 0o077 == 0
    assert written.read_text().startswith("# a header\n# of two lines\n")
    monkeypatch.setenv("SSO_ID_TOKEN_TTL", "60")
    config = {k: v for k, v in app_config.items() if k != "ID_TOKEN_TTL"}
    app = create_app({**config, "INSTANCE_PATH": str(tmp_path), "ACCESS_TOKEN_TTL": 30})
    assert app.config["MFA_ISSUER_NAME"] == "Demo SSO"  # the file
    assert app.config["ID_TOKEN_TTL"] == 60  # the environment beats the file
    assert app.config["ACCESS_TOKEN_TTL"] == 30  # create_app's mapping beats both


def test_a_broken_settings_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text("# fine\n\nSSO_ENV=development\nISSUER=http://x\n")
    with pytest.raises(ConfigError, match=r"settings.env, line 4: expected SSO_NAME=value"):
        read_settings_file(tmp_path)
    assert read_settings_file(tmp_path / "nowhere") == {}


def test_the_default_instance_folder_is_flasks() -> None:
    """Computed without importing Flask, and the same folder Flask would pick."""
    assert str(default_instance_path()) == Flask("sso").instance_path


def test_the_postgresql_pool_keeps_its_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each worker keeps SSO_DB_POOL_SIZE connections and opens no throwaway ones by default;
    a burst waits for a kept one up to SSO_DB_POOL_TIMEOUT."""
    from sso.config import resolve

    monkeypatch.setenv("SSO_DATABASE_URL", "postgresql://sso@db.internal/sso")
    monkeypatch.setenv("SSO_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SSO_ENV", "development")
    config = resolve(Path("/nonexistent-instance"))
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (options["pool_size"], options["max_overflow"]) == (15, 0)
    monkeypatch.setenv("SSO_DB_POOL_SIZE", "30")
    monkeypatch.setenv("SSO_DB_MAX_OVERFLOW", "5")
    options = resolve(Path("/nonexistent-instance"))["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (options["pool_size"], options["max_overflow"]) == (30, 5)
