"""Single-use proofs sent to a user: links (email) and 6-digit codes (SMS).

Links carry 256 random bits and are stored as SHA-256; codes are stored as an HMAC keyed with
the provider's secret, salted per code and bound to the user and purpose, and allow only a few
tries. Issuing a new proof for a purpose retires the older ones, and redeeming is one atomic
``UPDATE ... WHERE used_at IS NULL``, so of two tabs redeeming one link exactly one wins.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from ..extensions import db
from ..security import hash_token, new_token, same
from ..users.models import User
from .models import AccountToken

INVITE, RESET, VERIFY = "invite", "reset", "verify"
EMAIL, SMS = "email", "sms"
#: What a link is, looked up without using it.
VALID, USED, EXPIRED, UNKNOWN = "valid", "used", "expired", "unknown"


@dataclass(frozen=True)
class LinkState:
    state: str
    token: AccountToken | None = None


def _retire(user_id: int, purpose: str, now: datetime) -> None:
    db.session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user_id, AccountToken.purpose == purpose,
               AccountToken.used_at.is_(None))
        .values(used_at=now)
    )


def issue_link(user: User, purpose: str, ttl: int, now: datetime) -> str:
    """A new link secret for ``purpose``; older proofs for it stop working."""
    _retire(user.id, purpose, now)
    raw = new_token()
    db.session.add(AccountToken(user_id=user.id, purpose=purpose, channel=EMAIL,
                                secret_hash=hash_token(raw), created_at=now,
                                expires_at=now + timedelta(seconds=ttl)))
    db.session.flush()
    return raw


def _code_hash(salt: str, user_id: int, purpose: str, code: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    message = f"{salt}:{user_id}:{purpose}:{code}".encode()
    return salt + hmac.new(key, message, hashlib.sha256).hexdigest()[:48]


def issue_code(user: User, purpose: str, ttl: int, now: datetime) -> str:
    """A new 6-digit code for ``purpose``; older proofs for it stop working."""
    _retire(user.id, purpose, now)
    code = f"{secrets.randbelow(10**6):06d}"
    db.session.add(AccountToken(user_id=user.id, purpose=purpose, channel=SMS,
                                secret_hash=_code_hash(secrets.token_hex(8), user.id, purpose,
                                                       code),
                                created_at=now, expires_at=now + timedelta(seconds=ttl)))
    db.session.flush()
    return code


def look_up_link(raw: str | None, purpose: str, now: datetime) -> LinkState:
    """Where a link stands, without using it: valid, used (or replaced), expired or unknown."""
    if not raw or len(raw) > 128:
        return LinkState(UNKNOWN)
    token = db.session.scalar(select(AccountToken).where(
        AccountToken.secret_hash == hash_token(raw), AccountToken.purpose == purpose,
        AccountToken.channel == EMAIL))
    if token is None:
        return LinkState(UNKNOWN)
    if token.used_at is not None:
        return LinkState(USED, token)
    if token.expires_at <= now:
        return LinkState(EXPIRED, token)
    return LinkState(VALID, token)


def consume(token: AccountToken, now: datetime) -> bool:
    """Use the proof up; False if another request already did (or it expired meanwhile)."""
    won = db.session.execute(
        update(AccountToken)
        .where(AccountToken.id == token.id, AccountToken.used_at.is_(None),
               AccountToken.expires_at > now)
        .values(used_at=now)
    ).rowcount
    return bool(won)


class CodeResult:
    OK, WRONG, EXHAUSTED, NONE = "ok", "wrong", "exhausted", "none"


def check_code(user: User, purpose: str, code: str,
               now: datetime) -> tuple[str, AccountToken | None]:
    """Check a code against the user's live one, counting the try; does not use it up.

    The caller must commit even on failure, so that the count of tries is kept.
    """
    token = db.session.scalar(
        select(AccountToken).where(AccountToken.user_id == user.id,
                                   AccountToken.purpose == purpose,
                                   AccountToken.channel == SMS,
                                   AccountToken.used_at.is_(None),
                                   AccountToken.expires_at > now)
        .order_by(AccountToken.id.desc()).limit(1)
    )
    if token is None:
        return CodeResult.NONE, None
    limit = int(current_app.config["SMS_CODE_ATTEMPTS"])
    counted = db.session.execute(
        update(AccountToken)
        .where(AccountToken.id == token.id, AccountToken.attempts < limit,
               AccountToken.used_at.is_(None))
        .values(attempts=AccountToken.attempts + 1)
    ).rowcount
    if not counted:
        return CodeResult.EXHAUSTED, None
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return CodeResult.WRONG, None
    expected = _code_hash(token.secret_hash[:16], user.id, purpose, code)
    if not same(expected, token.secret_hash):
        return CodeResult.WRONG, None
    return CodeResult.OK, token
