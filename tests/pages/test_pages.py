"""Every page state of :data:`catalogue.PAGES`, in Chinese and English, at a desktop and a phone
width, in Debian's chromium: no axe-core violation at WCAG 2.1 AA, nothing wider than the
screen, no part of the page failing to load, a visible focus on every stop of the Tab key,
the strict CSP on every page of the way, and (in Chinese) no English left and no ASCII
punctuation beside Chinese text.

The pages do not depend on the database backend, so this walk runs on SQLite only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import _empty_redis, _empty_tables
from tests.pages import checks
from tests.pages.catalogue import LANGUAGES, PAGES, PHONE, PageState, Visit, build_world

pytestmark = [pytest.mark.browser,
              pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture
def visits(chromium: Any, live_provider: Any) -> Iterator[Any]:
    """Start a visit in a language; each starts from the same fresh world."""
    opened: list[Visit] = []

    def visit(locale: str) -> Visit:
        if opened:
            _empty_tables(live_provider.app)
            _empty_redis(live_provider.app.config["REDIS_URL"],
                         live_provider.app.config["REDIS_PREFIX"])
        opened.append(Visit(chromium, live_provider, build_world(live_provider.app), locale))
        return opened[-1]

    yield visit
    for one in opened:
        one.close()


@pytest.mark.parametrize("state", PAGES, ids=[state.name for state in PAGES])
def test_page_state(state: PageState, visits: Any, axe_ready: None) -> None:
    problems: dict[str, list[str]] = {}
    for locale in LANGUAGES:
        visit = visits(locale)
        page = state.reach(visit)
        page.wait_for_load_state()
        for width, size in (("desktop", page.viewport_size), ("phone", PHONE)):
            page.set_viewport_size(size)
            problems[f"{locale} {width} axe"] = checks.axe(page)
            problems[f"{locale} {width} overflow"] = [
                found for found in [checks.overflow(page)] if found]
        problems[f"{locale} focus"] = checks.focus_rings(page)
        if locale == "zh-CN":
            texts = checks.visible_texts(page)
            problems["zh-CN untranslated"] = checks.untranslated(texts)
            problems["zh-CN punctuation"] = checks.ascii_punctuation(texts)
        problems[f"{locale} failed requests"] = visit.failed_parts
        problems[f"{locale} CSP"] = visit.loose_policies
    assert not any(problems.values()), checks.describe(problems)
