"""Signing keys in the database: one key set for every node, private parts encrypted with the
key-encryption key, rotated so relying parties always know the next key, and a rotation by one
process seen by the others. On SQLite and PostgreSQL (the ``app`` fixture's two backends)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from sso import create_app, migrate
from sso.cli import cli
from sso.config import ConfigError, resolve
from sso.extensions import db
from sso.oidc import keystore
from sso.oidc.keys import (
    ACTIVE,
    NEXT,
    RETIRED,
    InvalidJWS,
    KeyStoreError,
    decode_jws,
    encode_jws,
    read_directory,
    thumbprint,
    write_directory,
)
from sso.oidc.keystore import KeyStore, SigningKeyRecord, new_key


@pytest.fixture
def store(app: Flask) -> Iterator[KeyStore]:
    with app.app_context():
        keys: KeyStore = app.extensions["sso_keys"]
        keys.ensure()
        yield keys
        db.session.remove()


def _published(jwks: bytes) -> set[str]:
    return {k["kid"] for k in json.loads(jwks)["keys"]}


def _states(store: KeyStore) -> dict[str, str]:
    return {entry["kid"]: entry["state"] for entry in store.describe()}


def test_an_active_and_a_next_key_per_algorithm_encrypted_at_rest(store: KeyStore) -> None:
    # Retired keys an earlier test's rotation committed may still be published (grace).
    states = sorted((k["alg"], k["state"]) for k in store.describe() if k["state"] != RETIRED)
    assert states == [("ES256", ACTIVE), ("ES256", NEXT), ("RS256", ACTIVE), ("RS256", NEXT)]
    rows = db.session.execute(select(SigningKeyRecord)).scalars().all()
    for row in rows:
        assert "PRIVATE KEY" not in row.private_key
        assert b"PRIVATE KEY" in store.box.decrypt(row.private_key.encode())
    assert store.ensure() is False
    assert _published(store.jwks()) == {row.kid for row in rows}


def test_rotation_promotes_the_published_next_key_and_keeps_the_old_one(store: KeyStore) -> None:
    before = {v + k["alg"]: k["kid"] for k in store.describe() for v in [k["state"]]}
    token = encode_jws(store.active("RS256"), {"sub": "x"})
    store.rotate()
    after = _states(store)
    assert after[before[NEXT + "RS256"]] == ACTIVE
    assert after[before[ACTIVE + "RS256"]] == RETIRED
    assert store.active("RS256").kid == before[NEXT + "RS256"]
    assert before[ACTIVE + "RS256"] in _published(store.jwks())
    assert len([s for s in after.values() if s == NEXT]) == 2
    assert decode_jws(store, token)["sub"] == "x"


def test_retired_keys_leave_after_the_grace_period(app: Flask, store: KeyStore) -> None:
    store.retirement_grace = 3600
    try:
        first = store.active("ES256").kid
        store.rotate(("ES256",), now=time.time() - 7200)
        assert first not in _published(store.jwks())  # retired two hours ago: past its grace
        store.rotate(("ES256",))
        assert first not in _states(store)
        assert db.session.get(SigningKeyRecord, first) is None  # pruned by the rotation
    finally:
        store.retirement_grace = app.config["KEY_RETIREMENT_GRACE"]


def test_a_node_drops_a_retired_key_when_its_grace_ends(app_config: dict[str, Any],
                                                        store: KeyStore) -> None:
    """Nothing in the database changes when a grace period ends; the node notices alone."""
    node = create_app({**app_config, "KEYS_CHECK_INTERVAL": 0, "KEY_RETIREMENT_GRACE": 3600})
    with node.app_context():
        keys = node.extensions["sso_keys"]
        keys.jwks()  # loaded before the rotation: what follows is one reload
        retiring = store.active("ES256").kid
        ends = time.time() + 3
        store.rotate(("ES256",), now=ends - 3600)  # its grace on this node ends in 3 s
        assert retiring in _published(keys.jwks())
        while time.time() < ends:
            time.sleep(0.05)
        assert retiring not in _published(keys.jwks())
        db.session.remove()


def test_two_apps_on_one_database_see_one_rotation(app: Flask, app_config: dict[str, Any],
                                                   store: KeyStore) -> None:
    """Two nodes: both publish the same JWKS; node 1 rotates, node 2 serves and signs with
    the new key on its next check of Redis (interval 0 here, so without waiting)."""
    other = create_app({**app_config, "KEYS_CHECK_INTERVAL": 0})
    node1, node2 = app.test_client(), other.test_client()
    assert node1.get("/jwks.json").data == node2.get("/jwks.json").data
    store.rotate(("RS256",))
    served = node2.get("/jwks.json")
    assert served.status_code == 200
    assert served.data == store.jwks()
    with other.app_context():
        signing = other.extensions["sso_keys"].active("RS256")
        assert signing.kid == store.active("RS256").kid
        token = encode_jws(signing, {"sub": "from node 2"})
    assert decode_jws(store, token)["sub"] == "from node 2"


def test_a_node_whose_redis_was_emptied_keeps_its_keys_and_learns_later_changes(
        app: Flask, app_config: dict[str, Any], store: KeyStore) -> None:
    other = create_app({**app_config, "KEYS_CHECK_INTERVAL": 0})
    with other.app_context():
        theirs = other.extensions["sso_keys"]
        assert theirs.jwks() == store.jwks()
        redis = other.extensions["sso_redis"]
        redis.client.delete(redis.key("keys", "generation"))
        assert theirs.jwks() == store.jwks()  # nothing changed: nothing reloaded
        store.rotate(("ES256",))
        assert theirs.active("ES256").kid == store.active("ES256").kid


def test_without_redis_a_node_rereads_the_database(app_config: dict[str, Any], store: KeyStore,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keystore, "REDIS_DOWN_RELOAD", 0.0)
    cut_off = create_app({**app_config, "KEYS_CHECK_INTERVAL": 0,
                          "REDIS_URL": "redis://127.0.0.1:1/0"})
    errors: list[str] = []
    with cut_off.app_context():
        theirs = cut_off.extensions["sso_keys"]
        theirs.on_error = errors.append
        assert theirs.jwks() == store.jwks()
        store.rotate(("RS256",))
        assert theirs.active("RS256").kid == store.active("RS256").kid
        db.session.remove()
    assert errors and set(errors) == {"redis"}


def test_a_wrong_key_encryption_key_is_a_clear_error(app_config: dict[str, Any],
                                                     store: KeyStore) -> None:
    wrong = create_app({**app_config, "KEY_ENCRYPTION_KEY": "w" * 40})
    with wrong.app_context(), pytest.raises(KeyStoreError, match="SSO_KEY_ENCRYPTION_KEY"):
        wrong.extensions["sso_keys"].jwks()


def _invoke(target: Flask, *args: str) -> Any:
    """Run an ``sso`` command against ``target`` (inside its context: the command uses the
    current app, and the ``store`` fixture has the session's app pushed)."""
    with target.app_context():
        result = target.test_cli_runner().invoke(cli, list(args))
        db.session.remove()
    return result


def test_the_key_encryption_key_rotates(app: Flask, app_config: dict[str, Any],
                                        store: KeyStore) -> None:
    old = app.config["KEY_ENCRYPTION_KEYS"][0]
    new = "n" * 48
    both = create_app({**app_config, "KEY_ENCRYPTION_KEY": f"{new},{old}"})
    result = _invoke(both, "keys", "reencrypt")
    assert result.exit_code == 0, result.output
    assert "4 keys encrypted" in result.output or "keys encrypted" in result.output
    only_new = create_app({**app_config, "KEY_ENCRYPTION_KEY": new})
    with only_new.app_context():
        assert only_new.extensions["sso_keys"].jwks() == store.jwks()
        db.session.remove()
    with pytest.raises(KeyStoreError):
        store.refresh(force=True)  # the old secret alone opens nothing now
    restore = create_app({**app_config, "KEY_ENCRYPTION_KEY": f"{old},{new}"})
    assert _invoke(restore, "keys", "reencrypt").exit_code == 0
    store.refresh(force=True)
    assert _audited(app, "keys.reencrypt")


def test_export_and_import_carry_the_keys_to_another_installation(
        app: Flask, app_config: dict[str, Any], store: KeyStore, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    exported = runner.invoke(cli, ["keys", "export", str(tmp_path / "out")])
    assert exported.exit_code == 0, exported.output
    files = list((tmp_path / "out").glob("*.pem"))
    assert files and all(f.stat().st_mode & 0o077 == 0 for f in files)
    elsewhere = create_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.sqlite3'}",
                            "REDIS_PREFIX": app_config["REDIS_PREFIX"] + "b:"})
    migrate.upgrade(elsewhere)
    imported = _invoke(elsewhere, "keys", "import", str(tmp_path / "out"))
    assert imported.exit_code == 0, imported.output
    listed = _invoke(elsewhere, "keys", "list")
    with elsewhere.app_context():
        theirs = elsewhere.extensions["sso_keys"]
        assert _published(theirs.jwks()) >= _published(store.jwks())
        for alg in ("RS256", "ES256"):
            assert theirs.active(alg).kid == store.active(alg).kid
        db.session.remove()
    assert store.active("RS256").kid in listed.output
    assert _audited(app, "keys.export") and _audited(elsewhere, "keys.import")


def _audited(target: Flask, event: str) -> bool:
    from sso.audit import AuditEvent

    with target.app_context():
        found = db.session.scalars(select(AuditEvent).where(AuditEvent.event == event)).all()
        db.session.remove()
    return bool(found)


def test_import_retires_the_keys_it_replaces(store: KeyStore, tmp_path: Path) -> None:
    replaced = store.active("ES256").kid
    incoming = [new_key("ES256", ACTIVE), new_key("ES256", NEXT)]
    write_directory(tmp_path, incoming)
    assert store.import_directory(tmp_path) == 2
    assert store.active("ES256").kid == incoming[0].kid
    states = _states(store)
    assert states[replaced] == RETIRED and states[incoming[1].kid] == NEXT
    assert store.import_directory(tmp_path) == 0  # already there


def test_bad_import_folders_are_refused_plainly(app: Flask, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    empty = runner.invoke(cli, ["keys", "import", str(tmp_path)])
    assert empty.exit_code == 1 and "no keyset.json" in empty.output
    (tmp_path / "keyset.json").write_text('{"keys": [{"alg": "RS256", "state": "active", '
                                          '"file": "x.pem"}]}')
    (tmp_path / "x.pem").write_text("not a key")
    broken = runner.invoke(cli, ["keys", "import", str(tmp_path)])
    assert broken.exit_code == 1 and "not an unencrypted PEM private key" in broken.output


def test_the_migration_imports_the_old_key_directory(app_config: dict[str, Any],
                                                     tmp_path: Path) -> None:
    old = [new_key("RS256", ACTIVE), new_key("RS256", NEXT), new_key("ES256", ACTIVE),
           new_key("ES256", NEXT)]
    write_directory(tmp_path / "keys", old)
    fresh = create_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'c.sqlite3'}",
                        "KEYS_DIR": str(tmp_path / "keys"),
                        "REDIS_PREFIX": app_config["REDIS_PREFIX"] + "c:"})
    migrate.upgrade(fresh)
    with fresh.app_context():
        rows = db.session.execute(select(SigningKeyRecord)).scalars().all()
        assert {(r.kid, r.state) for r in rows} == {(k.kid, k.state) for k in old}
        assert all("PRIVATE KEY" not in r.private_key for r in rows)
        assert fresh.extensions["sso_keys"].active("RS256").kid == old[0].kid
        db.session.remove()
    assert {k.kid for k in read_directory(tmp_path / "keys")} == {k.kid for k in old}


def test_production_refuses_to_start_without_a_key_encryption_key(tmp_path: Path) -> None:
    environ = {"SSO_DATABASE_URL": "postgresql://sso@db/sso", "SSO_REDIS_URL": "redis://r/0",
               "SSO_ISSUER": "https://sso.example.com", "SSO_SECRET_KEY": "s" * 40}
    with pytest.raises(ConfigError, match="set SSO_KEY_ENCRYPTION_KEY"):
        resolve(tmp_path, environ=environ)
    with pytest.raises(ConfigError, match="at least 32 characters"):
        resolve(tmp_path, environ={**environ, "SSO_KEY_ENCRYPTION_KEY": "short"})
    secret_file = tmp_path / "kek"
    secret_file.write_text("a" * 40 + "\n" + "b" * 40 + "\n")
    settings = resolve(tmp_path, environ={**environ,
                                          "SSO_KEY_ENCRYPTION_KEY_FILE": str(secret_file)})
    assert settings["KEY_ENCRYPTION_KEYS"] == ["a" * 40, "b" * 40]
    with pytest.raises(ConfigError, match="SSO_KEY_ENCRYPTION_KEY_FILE cannot be read"):
        resolve(tmp_path, environ={**environ, "SSO_KEY_ENCRYPTION_KEY_FILE": "/nonexistent"})
    assert not list(tmp_path.glob("dev-*"))  # nothing generated in production


def test_kid_is_the_rfc7638_thumbprint() -> None:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    # The example key of RFC 7638 §3.1 and its thumbprint.
    n = int.from_bytes(__import__("base64").urlsafe_b64decode(
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
        "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y"
        "GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdk"
        "t-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDK"
        "gw" + "=="), "big")
    key = RSAPublicNumbers(65537, n).public_key()
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_tampered_tokens_are_refused(store: KeyStore) -> None:
    token = encode_jws(store.active("ES256"), {"sub": "x"})
    header, payload, signature = token.split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for forged in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.",
                   "e30." + payload + "." + signature, token + ".x"):
        with pytest.raises(InvalidJWS):
            decode_jws(store, forged)
