"""The password policy, applied on every password set: activation, reset, change,
registration, ``sso users create`` and ``set-password``.

Settings (``SSO_PASSWORD_*``): minimum length, the character classes to mix, refusal of the
most common passwords (a list shipped with the package), of the username and the email's
local part, of the last N passwords, and an optional maximum age. The problems come back as
codes so the pages can say them in the user's language and the CLI in English.
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..security import PasswordHashing
from ..users.models import User
from .models import PasswordHistory

COMMON_PASSWORDS = Path(__file__).parent / "data" / "common-passwords.txt.gz"
MAX_LENGTH = 256
CLASSES = ("letters", "digits", "symbols")


@dataclass(frozen=True)
class Problem:
    """One rule the password breaks; ``code`` is stable, ``english`` is for the CLI and logs."""

    code: str
    english: str
    value: int = 0


class PasswordRejected(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.english for p in problems))
        self.problems = problems


@functools.cache
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip() for line in fh if line.strip() and line[0] != "#")


def _classes_of(password: str) -> set[str]:
    found = set()
    for char in password:
        if char.isalpha():
            found.add("letters")
        elif char.isdigit():
            found.add("digits")
        elif not char.isspace():
            found.add("symbols")
    return found


def required_classes(config: Any) -> list[str]:
    raw = config.get("PASSWORD_CLASSES", "")
    names = raw if isinstance(raw, list) else str(raw).replace(" ", "").split(",")
    return [name for name in CLASSES if name in names]


def problems(password: str, config: Any, *, username: str | None = None,
             email: str | None = None) -> list[Problem]:
    """What is wrong with ``password`` (without the history check, which needs the user)."""
    found: list[Problem] = []
    minimum = int(config.get("PASSWORD_MIN_LENGTH", 10))
    if len(password) < minimum:
        found.append(Problem("too_short", f"at least {minimum} characters", minimum))
    if len(password) > MAX_LENGTH:
        found.append(Problem("too_long", f"at most {MAX_LENGTH} characters", MAX_LENGTH))
    missing = [c for c in required_classes(config) if c not in _classes_of(password)]
    if missing:
        found.append(Problem("classes", "mix " + ", ".join(required_classes(config))))
    lowered = password.lower()
    if config.get("PASSWORD_REFUSE_COMMON", True) and lowered in common_passwords():
        found.append(Problem("common", "one of the most common passwords"))
    names = [username or ""]
    if email:
        names.append(email.partition("@")[0])
    if any(len(name) >= 3 and name.lower() in lowered for name in names):
        found.append(Problem("personal", "must not contain the username or email name"))
    return found


def reused(user: User, password: str, hasher: PasswordHashing, config: Any) -> bool:
    """True if ``password`` is one of the user's last ``PASSWORD_HISTORY`` passwords."""
    keep = int(config.get("PASSWORD_HISTORY", 5))
    if keep <= 0 or user.id is None:
        return False
    recent = db.session.scalars(
        select(PasswordHistory.password_hash).where(PasswordHistory.user_id == user.id)
        .order_by(PasswordHistory.id.desc()).limit(keep)
    ).all()
    candidates = list(recent) or ([user.password_hash] if user.password_hash else [])
    return any(hasher.verify(stored, password) for stored in candidates)


def check(password: str, config: Any, hasher: PasswordHashing, *, user: User | None = None,
          username: str | None = None, email: str | None = None) -> None:
    """Raise :class:`PasswordRejected` listing every rule ``password`` breaks."""
    found = problems(password, config, username=username or (user.username if user else None),
                     email=email or (user.email if user else None))
    if not found and user is not None and reused(user, password, hasher, config):
        keep = int(config.get("PASSWORD_HISTORY", 5))
        found.append(Problem("reused", f"not one of your last {keep} passwords", keep))
    if found:
        raise PasswordRejected(found)


def remember(user: User, password_hash: str, config: Any) -> None:
    """Add the new hash to the history and forget those beyond ``PASSWORD_HISTORY``."""
    keep = int(config.get("PASSWORD_HISTORY", 5))
    if keep <= 0:
        return
    db.session.add(PasswordHistory(user_id=user.id, password_hash=password_hash))
    db.session.flush()
    stale = db.session.scalars(
        select(PasswordHistory.id).where(PasswordHistory.user_id == user.id)
        .order_by(PasswordHistory.id.desc()).offset(keep)
    ).all()
    if stale:
        db.session.execute(db.delete(PasswordHistory).where(PasswordHistory.id.in_(stale)))


def expired(user: User, config: Any, now: datetime) -> bool:
    """True when the optional maximum age (``PASSWORD_MAX_AGE_DAYS``) has passed."""
    days = int(config.get("PASSWORD_MAX_AGE_DAYS", 0) or 0)
    if days <= 0 or user.password_changed_at is None:
        return False
    return now - user.password_changed_at > timedelta(days=days)
