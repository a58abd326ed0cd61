"""The password policy: length, classes, common passwords, personal names, history, expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sso.accounts import policy
from sso.accounts.service import create_user, passwords, set_password
from sso.dbtypes import utcnow
from sso.extensions import db
from tests.conftest import PASSWORD

DEFAULTS = {"PASSWORD_MIN_LENGTH": 10, "PASSWORD_CLASSES": "letters,digits,symbols",
            "PASSWORD_REFUSE_COMMON": True, "PASSWORD_HISTORY": 5}


def codes(password: str, config: dict[str, Any] | None = None, **names: str) -> list[str]:
    return [p.code for p in policy.problems(password, config or DEFAULTS, **names)]


@pytest.mark.parametrize(("password", "expected"), [
    (PASSWORD, []),
    ("Demo-SSO-2024", []),
    ("Sh0rt-pw!", ["too_short"]),
    ("onlyletterslong", ["classes"]),
    ("letters-and-symbols", ["classes"]),
    ("1234567890123", ["classes"]),
    ("P@ssw0rd123", ["common"]),
    ("Password@123", ["common"]),
    ("x" * 300 + "1!", ["too_long"]),
    ("Alice-2024-winter", ["personal"]),
    ("Wonderland-77!", []),
])
def test_rules(password: str, expected: list[str]) -> None:
    assert codes(password, username="alice", email="alice.w@example.com") == expected


def test_email_local_part_is_refused() -> None:
    assert codes("Alice.W-2024-x", username="bob", email="alice.w@example.com") == ["personal"]


def test_classes_can_be_switched_off_and_length_changed() -> None:
    relaxed = {**DEFAULTS, "PASSWORD_CLASSES": "", "PASSWORD_MIN_LENGTH": 12}
    assert codes("quiet meadow stones", relaxed) == []
    assert codes("short words", relaxed) == ["too_short"]
    assert codes("qwertyuiop", {**DEFAULTS, "PASSWORD_REFUSE_COMMON": False}) == ["classes"]


def test_the_shipped_list_is_large_and_lower_case() -> None:
    common = policy.common_passwords()
    assert len(common) > 20000
    assert "123456" in common and "p@ssw0rd" in common
    assert all(word == word.lower() for word in list(common)[:500])


def test_last_five_passwords_are_refused(app: Any, ctx: None) -> None:
    user = create_user("carol", email="carol@example.com", password=PASSWORD)
    history = [f"Rotation-{n}-Kestrel!" for n in range(1, 6)]
    for password in history:
        set_password(user, password)
    db.session.commit()
    for password in history:
        with pytest.raises(policy.PasswordRejected) as refused:
            set_password(user, password)
        assert [p.code for p in refused.value.problems] == ["reused"]
    # The initial password has dropped out of the last five.
    set_password(user, PASSWORD)
    assert passwords().verify(user.password_hash, PASSWORD)
    rows = db.session.scalars(db.select(policy.PasswordHistory)
                              .where(policy.PasswordHistory.user_id == user.id)).all()
    assert len(rows) == 5


def test_optional_expiry(app: Any, ctx: None) -> None:
    user = create_user("dave", email="dave@example.com", password=PASSWORD)
    later = utcnow() + timedelta(days=91)
    assert not policy.expired(user, {"PASSWORD_MAX_AGE_DAYS": 0}, later)
    assert policy.expired(user, {"PASSWORD_MAX_AGE_DAYS": 90}, later)
    assert not policy.expired(user, {"PASSWORD_MAX_AGE_DAYS": 90}, utcnow())


def test_create_refuses_a_weak_password(app: Any, ctx: None) -> None:
    with pytest.raises(policy.PasswordRejected):
        create_user("erin", email="erin@example.com", password="password1")
