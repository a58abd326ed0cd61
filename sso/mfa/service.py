"""TOTP enrolment and verification, recovery codes, remembered devices. No Flask request here.

TOTP is RFC 6238 with the parameters every authenticator app reads: SHA-1, 6 digits, 30 s.
A code is accepted one step either side of now (clock drift), and only once: the accepted
step is claimed in Redis with ``SET NX`` (atomic between concurrent requests) and recorded on
the authenticator (so older steps stay refused even if Redis forgets).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

import pyotp
import qrcode
import qrcode.image.svg
import redis
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..accounts import lockout
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db, get_redis
from ..security import hash_token, new_token, same
from ..users.models import User
from . import crypto
from .models import RecoveryCode, RememberedDevice, TotpAuthenticator

log = logging.getLogger(__name__)

STEP_SECONDS = 30
DIGITS = 6
#: Steps either side of now that are still accepted (RFC 6238 §5.2 resynchronisation).
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
ENROLMENT_TTL = 15 * 60
TOTP_PATTERN = re.compile(r"^[0-9]{6}$")
RECOVERY_PATTERN = re.compile(r"^[a-z2-7]{16}$")
DEVICE_COOKIE_SALT = "sso.mfa.device"


class CodeError(ValueError):
    """A code was refused. ``reason``: malformed, wrong, replayed, used, locked, not_enrolled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EnrolmentError(ValueError):
    """An enrolment cannot be confirmed. ``reason``: expired, already."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Codes.


def normalise(code: str) -> str:
    """Drop the spaces and dashes people type or paste; recovery codes are case-blind."""
    return re.sub(r"[\s-]", "", code or "")[:64].lower()


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def _totp(seed: str) -> pyotp.TOTP:
    return pyotp.TOTP(seed, digits=DIGITS, interval=STEP_SECONDS)


def _matching_step(seed: str, code: str, now: datetime) -> int | None:
    totp = _totp(seed)
    current = time_step(now)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Check every candidate so the time taken does not tell which step matched.
        if same(totp.generate_otp(step), code) and found is None:
            found = step
    return found


def _claim_step(user_id: int, step: int) -> bool:
    """True the first time this user's step is claimed (replay refusal across nodes)."""
    store = get_redis()
    key = store.key("mfa", "used", str(user_id), str(step))
    try:
        return bool(store.client.set(key, b"1", nx=True,
                                     ex=STEP_SECONDS * (2 * DRIFT_STEPS + 2)))
    except redis.RedisError as exc:
        log.warning("TOTP replay check relies on the database only, Redis unavailable: %s",
                    exc)
        return True


# Enrolment.


@dataclass(frozen=True)
class Enrolment:
    id: str
    seed: str
    uri: str

    @property
    def manual_key(self) -> str:
        return " ".join(self.seed[i:i + 4] for i in range(0, len(self.seed), 4))

    def qr_svg(self) -> str:
        """The otpauth URI as an inline SVG QR code (no external request, CSP-friendly)."""
        image = qrcode.make(self.uri, image_factory=qrcode.image.svg.SvgPathImage,
                            border=4, box_size=10)
        svg = image.to_string(encoding="unicode")
        return svg.replace("<svg ", '<svg class="mfa-qr" role="img" ', 1)


def provisioning_uri(seed: str, user: User) -> str:
    """``otpauth://totp/Issuer:account?secret=...&issuer=Issuer`` (Key Uri Format)."""
    return _totp(seed).provisioning_uri(
        name=user.email or user.username, issuer_name=current_app.config["MFA_ISSUER_NAME"]
    )


def _enrolment_key(user_id: int, enrolment_id: str) -> str:
    return get_redis().key("mfa", "enrol", str(user_id), enrolment_id)


def begin_enrolment(user: User) -> Enrolment:
    """A new seed, kept (encrypted) in Redis until a first code confirms it.

    Nothing is written to the database before confirmation, and each enrolment has its own
    id, so two tabs enrolling at once each keep their own QR code; the first confirmed wins.
    """
    seed = pyotp.random_base32()
    enrolment_id = secrets.token_urlsafe(12)
    get_redis().client.set(_enrolment_key(user.id, enrolment_id), crypto.encrypt(seed),
                           ex=ENROLMENT_TTL)
    return Enrolment(enrolment_id, seed, provisioning_uri(seed, user))


def pending_enrolment(user: User, enrolment_id: str) -> Enrolment | None:
    if not enrolment_id or len(enrolment_id) > 32:
        return None
    stored = get_redis().client.get(_enrolment_key(user.id, enrolment_id))
    if stored is None:
        return None
    seed = crypto.decrypt(stored.decode())
    return Enrolment(enrolment_id, seed, provisioning_uri(seed, user))


def authenticator(user_id: int) -> TotpAuthenticator | None:
    return db.session.get(TotpAuthenticator, user_id)


def is_enrolled(user_id: int) -> bool:
    return authenticator(user_id) is not None


def confirm_enrolment(user: User, enrolment_id: str, code: str, *, origin: Origin | None,
                      now: datetime) -> list[str]:
    """Turn the pending seed into the user's authenticator; return the new recovery codes."""
    enrolment = pending_enrolment(user, enrolment_id)
    if enrolment is None:
        raise EnrolmentError("expired")
    if is_enrolled(user.id):
        raise EnrolmentError("already")
    code = normalise(code)
    if not TOTP_PATTERN.match(code):
        raise CodeError("malformed")
    step = _matching_step(enrolment.seed, code, now)
    if step is None:
        audit.record("mfa.enrol", audit.FAILURE, origin=origin, user_id=user.id,
                     reason="wrong_code")
        raise CodeError("wrong")
    _claim_step(user.id, step)
    db.session.add(TotpAuthenticator(
        user_id=user.id, secret_encrypted=crypto.encrypt(enrolment.seed), confirmed_at=now,
        last_used_at=now, last_step=step,
    ))
    try:
        db.session.flush()
    except IntegrityError:
        # Another enrolment of this user was confirmed in between: it won, this one is void.
        db.session.rollback()
        log.info("enrolment of user %s lost a race to a concurrent one", user.id)
        raise EnrolmentError("already") from None
    codes = _new_recovery_codes(user.id, now)
    get_redis().client.delete(_enrolment_key(user.id, enrolment_id))
    audit.record("mfa.enrol", origin=origin, user_id=user.id, method="totp")
    return codes


# Verification.


def verify(user: User, code: str, *, origin: Origin | None, now: datetime) -> str:
    """Check a TOTP or recovery code; return "otp" or "recovery". Raise :class:`CodeError`.

    Wrong, replayed and reused codes count toward the account lockout; a malformed entry
    (not something a guesser would send) is refused without counting.
    """
    if lockout.locked_for(user.id, lockout.SECOND):
        audit.record("mfa.verify", audit.FAILURE, origin=origin, user_id=user.id,
                     reason="locked")
        raise CodeError("locked")
    record = authenticator(user.id)
    if record is None:
        raise CodeError("not_enrolled")
    code = normalise(code)
    if TOTP_PATTERN.match(code):
        step = _matching_step(crypto.decrypt(record.secret_encrypted), code, now)
        if step is None:
            _failure(user.id, origin, "wrong", "otp")
        if step <= record.last_step or not _claim_step(user.id, step):
            _failure(user.id, origin, "replayed", "otp")
        record.last_step = step
        record.last_used_at = now
        method = "otp"
    elif RECOVERY_PATTERN.match(code):
        used = db.session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hash_token(code),
                   RecoveryCode.used_at.is_(None))
            .values(used_at=now)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            reused = db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
                RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hash_token(code)))
            _failure(user.id, origin, "used" if reused else "wrong", "recovery")
        method = "recovery"
    else:
        raise CodeError("malformed")
    lockout.clear_failures(user.id, lockout.SECOND)
    audit.record("mfa.verify", origin=origin, user_id=user.id, method=method,
                 recovery_codes_left=remaining_recovery_codes(user.id)
                 if method == "recovery" else None)
    return method


def _failure(user_id: int, origin: Origin | None, reason: str, method: str) -> NoReturn:
    audit.record("mfa.verify", audit.FAILURE, origin=origin, user_id=user_id, reason=reason,
                 method=method)
    lockout.register_failure(user_id, origin, method=method, factor=lockout.SECOND)
    raise CodeError(reason)


# Recovery codes.


def _format_recovery_code(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def _new_recovery_codes(user_id: int, now: datetime) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    codes = ["".join(secrets.choice(alphabet) for _ in range(16))
             for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(RecoveryCode(user_id=user_id, code_hash=hash_token(code), created_at=now)
                       for code in codes)
    return [_format_recovery_code(code) for code in codes]


def regenerate_recovery_codes(user: User, *, origin: Origin | None, now: datetime) -> list[str]:
    """A fresh set of codes; every earlier code stops working."""
    codes = _new_recovery_codes(user.id, now)
    audit.record("mfa.recovery_codes.regenerate", origin=origin, user_id=user.id)
    return codes


def remaining_recovery_codes(user_id: int) -> int:
    return int(db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))) or 0)


# Removal.


def remove(user: User, *, origin: Origin | None, actor_id: int | None = None,
           event: str = "mfa.remove") -> bool:
    """Delete the authenticator, recovery codes and remembered devices; False if none."""
    record = authenticator(user.id)
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    now = utcnow()
    db.session.execute(update(RememberedDevice).where(
        RememberedDevice.user_id == user.id, RememberedDevice.revoked_at.is_(None)
    ).values(revoked_at=now))
    if record is not None:
        db.session.delete(record)
    audit.record(event, origin=origin, user_id=user.id, actor_id=actor_id,
                 had_authenticator=record is not None)
    return record is not None


# Remembered devices.


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=DEVICE_COOKIE_SALT)


def remember_device(user: User, *, origin: Origin, now: datetime, days: int
                    ) -> tuple[RememberedDevice, str]:
    """Record this browser; return the record and the signed cookie value for it."""
    token = new_token()
    device = RememberedDevice(
        id=new_token(nbytes=16)[:22], user_id=user.id, token_hash=hash_token(token),
        label=(origin.user_agent or "")[:255] or None, ip=origin.ip, created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.session.add(device)
    audit.record("mfa.device.remember", origin=origin, user_id=user.id, device_id=device.id,
                 days=days)
    cookie = _device_serializer().dumps({"u": user.id, "d": device.id, "s": token})
    return device, cookie


def device_from_cookie(user: User, cookie: str | None, now: datetime,
                       days: int) -> RememberedDevice | None:
    """The live device record this cookie stands for, if it belongs to ``user``."""
    if not cookie or len(cookie) > 512 or days <= 0:
        return None
    try:
        data = _device_serializer().loads(cookie, max_age=days * 24 * 3600)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("u") != user.id:
        return None
    device = db.session.get(RememberedDevice, str(data.get("d", ""))[:22])
    if device is None or device.user_id != user.id or not device.is_active(now):
        return None
    if not same(device.token_hash, hash_token(str(data.get("s", "")))):
        return None
    return device


def devices(user_id: int, now: datetime) -> list[RememberedDevice]:
    rows = db.session.scalars(select(RememberedDevice).where(
        RememberedDevice.user_id == user_id, RememberedDevice.revoked_at.is_(None),
    ).order_by(RememberedDevice.created_at.desc()))
    return [d for d in rows if d.is_active(now)]


def revoke_device(user: User, device_id: str, *, origin: Origin | None, now: datetime) -> bool:
    device = db.session.get(RememberedDevice, device_id[:22])
    if device is None or device.user_id != user.id or device.revoked_at is not None:
        return False
    device.revoked_at = now
    audit.record("mfa.device.revoke", origin=origin, user_id=user.id, device_id=device.id)
    return True


# Key rotation.


def rotate_encryption() -> int:
    """Re-encrypt every seed with the first configured key; return how many rows."""
    count = 0
    for record in db.session.scalars(select(TotpAuthenticator)):
        record.secret_encrypted = crypto.rotate(record.secret_encrypted)
        count += 1
    audit.record("mfa.key_rotation", rows=count)
    return count
