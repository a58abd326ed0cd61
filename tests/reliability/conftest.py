"""Fixtures of the reliability tests: the apps' fixtures, and breakers forgotten per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sso import outbound
from tests.apps.conftest import make_app, receiver  # noqa: F401 - fixtures
from tests.mfa.conftest import enrol  # noqa: F401 - fixture


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    outbound.reset()
    yield
    outbound.reset()
