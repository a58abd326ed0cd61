"""Fixtures of the page checks: axe-core from npm, installed once per test session."""

from __future__ import annotations

import os

import pytest

from tests.pages import checks


@pytest.fixture(scope="session")
def axe_ready() -> None:
    """axe-core in tests/pages/node/node_modules; without npm the test skips, unless
    SSO_TEST_REQUIRE_BROWSER=1 (CI) makes that a failure."""
    try:
        checks.install_axe()
    except checks.AxeMissing as missing:
        if os.environ.get("SSO_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(str(missing))
        pytest.skip(str(missing))
