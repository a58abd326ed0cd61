"""Answers that take the same time whether or not an account exists (docs/hardening.md).

The forms a stranger can post about an account (password reset, self-registration, a new
activation link, the activation and reset codes) do different work for a known and an
unknown name: a token and a mail for one, nothing for the other. Each path does the same
checks (the password policy and a hash where a password is given), and the answer is held
until ``SSO_EVEN_ANSWER_SECONDS`` after the request began, so the time an answer takes says
nothing but the floor (bench/enumeration.py measures it). The wait is a sleep: it holds one of
the server's threads, not the CPU.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request

F = TypeVar("F", bound=Callable[..., Any])


def even_answer(view: F) -> F:
    """Hold a POST's answer until ``EVEN_ANSWER_SECONDS`` after it began."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.method != "POST":
            return view(*args, **kwargs)
        began = time.monotonic()
        try:
            return view(*args, **kwargs)
        finally:
            left = float(current_app.config.get("EVEN_ANSWER_SECONDS", 0.5)) - (
                time.monotonic() - began)
            if left > 0:
                time.sleep(left)

    return wrapper  # type: ignore[return-value]
