"""The demo ERP's event receiver done right: the JWKS refetched at most once a minute for
unknown keys, the body cap enforced while reading, and a subject's events applied in order."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import RSAKey

from sso.demo import events
from sso.demo.app import EVENTS_PATH, create_demo_app
from tests.conftest import free_port


def _junk(kid: str) -> bytes:
    key = RSAKey.generate_key(2048, parameters={"kid": kid})
    token = jws.serialize_compact({"alg": "RS256", "typ": "secevent+jwt", "kid": kid},
                                  b'{"iss":"x"}', key)
    return token.encode()


def test_junk_tokens_with_unknown_keys_refetch_the_jwks_at_most_once_a_minute() -> None:
    clock = itertools.count(0.0, 0.5)  # every look at the clock: half a second later
    now = {"t": 0.0}
    served = {"count": 0}

    real = RSAKey.generate_key(2048, parameters={"kid": "real"}).as_dict(private=False)

    def fetch() -> dict[str, Any]:
        served["count"] += 1
        return {"keys": [real]}

    cache = events.KeyCache(fetch, clock=lambda: now["t"])
    junk = [_junk(f"junk-{n}") for n in range(3)]
    for n in range(120):  # two minutes of one junk token a second
        now["t"] = next(clock) * 2
        with pytest.raises(events.SETRejected) as refused:
            events.verify(junk[n % 3], cache, "http://sso.test", "erp")
        assert refused.value.code == "invalid_key"
    assert served["count"] <= 3  # the first fetch, then once a minute


def test_a_subjects_older_event_does_not_undo_a_newer_one() -> None:
    accounts = events.LocalAccounts()

    def event(jti: str, iat: int, kind: str) -> dict[str, Any]:
        return {"jti": jti, "iat": iat, "sub": "s1", "events": {
            events.EVENT_PREFIX + kind: {"status": kind, "user": {"sub": "s1"}}}}

    assert accounts.apply(event("j2", 200, "revoked"))
    assert accounts.apply(event("j1", 100, "activated"))  # late retry: accepted, ignored
    assert [r["status"] for r in accounts.records()] == ["revoked"]
    assert accounts.apply(event("j3", 300, "activated"))
    assert [r["status"] for r in accounts.records()] == ["activated"]
    assert not accounts.apply(event("j3", 300, "activated"))  # a duplicate


class Huge:
    """A request body of 64 MiB with no length; counts what the app read of it."""

    total = 64 * 1024 * 1024

    def __init__(self) -> None:
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        size = 65536 if size is None or size < 0 else size
        size = min(size, self.total - self.read_bytes)
        self.read_bytes += size
        return b"x" * size

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def test_a_body_without_length_is_cut_while_reading() -> None:
    """The app reads up to its cap and answers; it never buffers the rest (a chunked
    upload of 64 MiB used to be read whole before the cap applied)."""
    from werkzeug.test import EnvironBuilder

    rp = create_demo_app("ERP", free_port(), "http://127.0.0.1:9", "erp", "secret",
                         receives_events=True)
    environ = EnvironBuilder(path=EVENTS_PATH, method="POST",
                             headers={"Content-Type": events.MEDIA_TYPE}).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    body = Huge()
    environ.update({"wsgi.input": body, "wsgi.input_terminated": True,
                    "HTTP_TRANSFER_ENCODING": "chunked"})
    status: list[str] = []
    answer = b"".join(rp(environ, lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("400") and b"invalid_request" in answer
    assert body.read_bytes <= events.MAX_BYTES + 65536
