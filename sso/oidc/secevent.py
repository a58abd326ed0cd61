"""Security Event Tokens (RFC 8417), signed with the provider's keys.

A SET is a JWT with ``typ: secevent+jwt`` and an ``events`` claim; it has no ``exp`` and no
``nonce``, so ID token validation rejects it and it cannot be replayed as one (RFC 8417 §4).
What the events mean belongs to the feature that emits them; this module only signs.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from .keys import encode_jws
from .keystore import KeyStore

SET_TYPE = "secevent+jwt"
MEDIA_TYPE = "application/secevent+jwt"


def encode_set(
    keys: KeyStore, *, issuer: str, audience: str, subject: str,
    events: dict[str, dict[str, Any]], now: datetime, alg: str = "RS256",
) -> tuple[str, str]:
    """Sign one SET about ``subject`` (an OIDC ``sub``) for ``audience``; return it and its jti.

    The subject travels as ``sub`` (what the app already knows from ID tokens) and as a
    ``sub_id`` of format ``iss_sub`` (RFC 9493), as the Shared Signals profiles expect.
    """
    jti = secrets.token_urlsafe(16)
    claims = {
        "iss": issuer,
        "aud": audience,
        "iat": int(now.timestamp()),
        "jti": jti,
        "sub": subject,
        "sub_id": {"format": "iss_sub", "iss": issuer, "sub": subject},
        "events": events,
    }
    return encode_jws(keys.active(alg), claims, typ=SET_TYPE), jti
