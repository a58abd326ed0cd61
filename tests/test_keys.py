"""Signing keys: created on first run, rotated so relying parties always know the next key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sso.oidc.keys import ACTIVE, NEXT, RETIRED, KeyStore, decode_jws, encode_jws, thumbprint


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    keys = KeyStore(str(tmp_path), retirement_grace=3600)
    keys.ensure()
    return keys


def _published(store: KeyStore) -> set[str]:
    return {k["kid"] for k in json.loads(store.jwks())["keys"]}


def test_first_run_creates_an_active_and_a_next_key_per_algorithm(store: KeyStore,
                                                                  tmp_path: Path) -> None:
    states = sorted((k["alg"], k["state"]) for k in store.describe())
    assert states == [("ES256", ACTIVE), ("ES256", NEXT), ("RS256", ACTIVE), ("RS256", NEXT)]
    for pem in tmp_path.glob("*.pem"):
        assert pem.stat().st_mode & 0o077 == 0
    assert store.ensure() is False


def test_rotation_promotes_the_published_next_key_and_keeps_the_old_one(store: KeyStore) -> None:
    before = {k["state"] + k["alg"]: k["kid"] for k in store.describe()}
    token = encode_jws(store.active("RS256"), {"sub": "x"})
    store.rotate()
    after = {k["kid"]: k["state"] for k in store.describe()}
    assert after[before[NEXT + "RS256"]] == ACTIVE
    assert after[before[ACTIVE + "RS256"]] == RETIRED
    assert store.active("RS256").kid == before[NEXT + "RS256"]
    assert before[ACTIVE + "RS256"] in _published(store)
    assert len([s for s in after.values() if s == NEXT]) == 2
    assert decode_jws(store, token)["sub"] == "x"


def test_retired_keys_leave_the_jwks_after_the_grace_period(store: KeyStore,
                                                            tmp_path: Path) -> None:
    import time

    first = store.active("ES256").kid
    store.rotate(now=time.time() - 7200)
    store.rotate()
    assert first not in _published(store)
    assert not list(tmp_path.glob(f"*{first}*"))


def test_another_process_rotating_is_picked_up(store: KeyStore, tmp_path: Path) -> None:
    other = KeyStore(str(tmp_path), retirement_grace=3600)
    other.reload(force=True)
    store.rotate(("ES256",))
    other.reload(force=True)
    assert other.active("ES256").kid == store.active("ES256").kid


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
    from sso.oidc.keys import InvalidJWS

    token = encode_jws(store.active("ES256"), {"sub": "x"})
    header, payload, signature = token.split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for forged in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.",
                   "e30." + payload + "." + signature, token + ".x"):
        with pytest.raises(InvalidJWS):
            decode_jws(store, forged)
