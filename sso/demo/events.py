"""The demo ERP's side of the provider's Security Event Tokens (RFC 8417, pushed per RFC 8935).

It does what docs/apps.md tells an ERP to do: verify the SET against the provider's JWKS
(refetched for an unknown ``kid``, at most once a minute, so junk tokens cannot make it hammer
the provider), require ``typ`` ``secevent+jwt``, the provider as ``iss`` and its own
``client_id`` as ``aud``, ignore a ``jti`` it has already processed, apply a subject's events
in the order of their ``iat`` (then ``jti``), so an old event arriving late (a retry) does not
undo a newer one, and keep a local user record per ``sub`` ("accounts provisioned by the SSO").
The body is read up to :data:`MAX_BYTES` and no further (:func:`read_capped`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

SET_TYPE = "secevent+jwt"
MEDIA_TYPE = "application/secevent+jwt"
EVENT_PREFIX = "urn:sso:secevent:app-account:"
ALGORITHMS = ["RS256", "ES256"]
#: How many processed ``jti`` values to remember (a retry repeats a recent one).
KEEP_JTIS = 1000
#: A SET about one account is a few kilobytes; anything much larger is not one.
MAX_BYTES = 64 * 1024


#: The JWKS is fetched again for an unknown ``kid`` at most this often (seconds).
JWKS_REFETCH_SECONDS = 60


class KeyCache:
    """The provider's JWKS: fetched once, fetched again for an unknown ``kid`` no more than
    once every :data:`JWKS_REFETCH_SECONDS`."""

    def __init__(self, fetch: Callable[[], dict[str, Any]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch, self.clock = fetch, clock
        self.keys: dict[str, Any] | None = None
        self.fetched_at = float("-inf")
        self.fetches = 0
        self._lock = threading.Lock()

    def __call__(self, force: bool) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            if self.keys is None or (force and now - self.fetched_at >= JWKS_REFETCH_SECONDS):
                self.keys = self.fetch()
                self.fetched_at = now
                self.fetches += 1
            return self.keys


def read_capped(stream: Any, limit: int = MAX_BYTES) -> bytes | None:
    """At most ``limit`` bytes of ``stream``; None as soon as there are more (the rest is
    never read, whatever the Content-Length said, chunked or not)."""
    data = bytearray()
    while len(data) <= limit:
        chunk = stream.read(min(65536, limit + 1 - len(data)))
        if not chunk:
            return bytes(data)
        data += chunk
    return None


class SETRejected(ValueError):
    """A SET the app refuses; ``code`` is an RFC 8935 §2.4 error code."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def verify(body: bytes, jwks: Callable[[bool], dict[str, Any]], issuer: str,
           audience: str) -> dict[str, Any]:
    """Return the claims of a valid SET; ``jwks(force)`` gives the provider's key set."""
    if len(body) > MAX_BYTES:
        raise SETRejected("invalid_request", "The SET is too large.")
    try:
        header = jws.extract_compact(body).protected
    except (JoseError, ValueError) as error:
        raise SETRejected("invalid_request", "The body is not a compact JWS.") from error
    if header.get("typ") != SET_TYPE:
        raise SETRejected("invalid_request", f"The JOSE header typ is not {SET_TYPE}.")
    if header.get("alg") not in ALGORITHMS:
        raise SETRejected("invalid_key", "The signing algorithm is not accepted.")
    keys = KeySet.import_key_set(jwks(False))
    if header.get("kid") not in {key.kid for key in keys}:
        keys = KeySet.import_key_set(jwks(True))  # keys rotate: fetch them again once
    try:
        claims = dict(jwt.decode(body, keys, algorithms=ALGORITHMS).claims)
    except (JoseError, ValueError) as error:
        raise SETRejected("invalid_key", "The signature does not verify.") from error
    if claims.get("iss") != issuer:
        raise SETRejected("invalid_issuer", "The SET comes from another issuer.")
    if claims.get("aud") != audience:
        raise SETRejected("invalid_audience", "The SET is meant for another app.")
    if not isinstance(claims.get("events"), dict) or not claims.get("jti") or "exp" in claims:
        raise SETRejected("invalid_request", "The SET has no events or no jti.")
    return claims


class LocalAccounts:
    """The app's own user records, keyed by ``sub``; kept in a JSON file when one is given."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self._jtis: list[str] = []
        if self.path is not None and self.path.exists():
            try:
                saved = json.loads(self.path.read_text())
                self._records = dict(saved.get("records", {}))
                self._jtis = list(saved.get("jtis", []))
            except (OSError, ValueError, AttributeError):
                self._records, self._jtis = {}, []

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.get("received_at", 0))

    def apply(self, claims: dict[str, Any]) -> bool:
        """Act on each account event of the SET; False when its ``jti`` was seen before.

        A subject's events take effect in ``(iat, jti)`` order: one older than the event the
        record already reflects is accepted (the provider must not retry it) and ignored."""
        with self._lock:
            if claims["jti"] in self._jtis:
                return False
            order = (int(claims.get("iat") or 0), str(claims["jti"]))
            for event_type, payload in claims["events"].items():
                if not event_type.startswith(EVENT_PREFIX) or not isinstance(payload, dict):
                    continue  # an event this app does not know: accept and ignore
                user = payload.get("user") or {}
                subject = str(user.get("sub") or claims.get("sub") or "")
                if not subject:
                    continue
                known = self._records.get(subject)
                if known is not None and tuple(known.get("order") or (0, "")) > order:
                    continue  # a newer event already spoke for this subject
                self._records[subject] = {
                    "sub": subject,
                    "username": user.get("preferred_username"),
                    "name": user.get("name"),
                    "email": user.get("email"),
                    "roles": list(user.get("roles", [])),
                    "status": payload.get("status", event_type.removeprefix(EVENT_PREFIX)),
                    "via": payload.get("via"),
                    "received_at": int(time.time()),
                    "order": list(order),
                }
            self._jtis = [*self._jtis, claims["jti"]][-KEEP_JTIS:]
            self._save()
            return True

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"records": self._records, "jtis": self._jtis}, fh, indent=2)
        temporary.replace(self.path)
