"""The demo apps' side of single logout (OpenID Connect Back- and Front-Channel Logout 1.0).

ERP and inventory take logout tokens at :data:`BACKCHANNEL_PATH`; CRM is loaded in an iframe
of the provider's logout page at :data:`FRONTCHANNEL_PATH`. Either way the app remembers the
ended session (``sid``), and the next request of a browser whose sign-in came from that
session finds itself signed out: the app's own session lives in a cookie, which only the
browser can clear, so the app checks it against the ended ``sid`` values on every request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

BACKCHANNEL_PATH = "/sso/backchannel-logout"
FRONTCHANNEL_PATH = "/sso/frontchannel-logout"
LOGOUT_TYPE = "logout+jwt"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALGORITHMS = ["RS256", "ES256"]
#: Clock skew accepted on ``iat``/``exp``.
LEEWAY = 60
KEEP = 10000


class LogoutRejected(ValueError):
    """A logout token the app refuses (Back-Channel Logout 1.0 §2.8: answer 400)."""


def verify_logout_token(token: str, jwks: Callable[[bool], dict[str, Any]], issuer: str,
                        audience: str, now: float | None = None) -> dict[str, Any]:
    """Validate a logout token as §2.6 of the spec says; return its claims."""
    now = time.time() if now is None else now
    try:
        header = jws.extract_compact(token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError) as error:
        raise LogoutRejected("not a compact JWS") from error
    if header.get("typ") != LOGOUT_TYPE:
        raise LogoutRejected(f"typ is not {LOGOUT_TYPE}")
    if header.get("alg") not in ALGORITHMS:
        raise LogoutRejected("algorithm not accepted")
    keys = KeySet.import_key_set(jwks(False))
    if header.get("kid") not in {key.kid for key in keys}:
        keys = KeySet.import_key_set(jwks(True))
    try:
        claims = dict(jwt.decode(token, keys, algorithms=ALGORITHMS).claims)
    except (JoseError, ValueError) as error:
        raise LogoutRejected("the signature does not verify") from error
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    if claims.get("iss") != issuer or audience not in audiences:
        raise LogoutRejected("wrong issuer or audience")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or iat > now + LEEWAY:
        raise LogoutRejected("iat missing or in the future")
    if not isinstance(exp, int) or exp < now - LEEWAY:
        raise LogoutRejected("expired")
    events = claims.get("events")
    if not isinstance(events, dict) or LOGOUT_EVENT not in events:
        raise LogoutRejected("not a logout event")
    if "nonce" in claims:
        raise LogoutRejected("a logout token has no nonce")
    if not claims.get("sid") and not claims.get("sub"):
        raise LogoutRejected("neither sid nor sub")
    return claims


class EndedSessions:
    """The provider sessions (``sid``) that ended, and the subjects logged out everywhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sids: dict[str, float] = {}
        self._jtis: dict[str, float] = {}

    def end(self, sid: str, jti: str | None = None) -> bool:
        """Remember ``sid``; False if this token (``jti``) was seen before."""
        with self._lock:
            if jti is not None:
                if jti in self._jtis:
                    return False
                self._jtis[jti] = time.time()
            self._sids[sid] = time.time()
            for store in (self._sids, self._jtis):
                while len(store) > KEEP:
                    store.pop(next(iter(store)))
            return True

    def ended(self, sid: str | None) -> bool:
        with self._lock:
            return bool(sid) and sid in self._sids
