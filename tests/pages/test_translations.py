"""Every mail and SMS in Chinese has no English left in it, and Chinese text takes Chinese
punctuation, in the catalogues as on the pages (the page walk checks the pages)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from sso import i18n
from tests.pages import checks

TEMPLATES = Path(__file__).parent.parent.parent / "templates"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def test_chinese_translations_use_chinese_punctuation() -> None:
    i18n._load()
    wrong = {}
    for source, text in i18n._catalogs["zh-CN"].items():
        found = checks.ascii_punctuation([PLACEHOLDER.sub("X", text)])
        if found:
            wrong[source] = found
    assert not wrong, wrong


class _Text(HTMLParser):
    """The text of a mail's HTML a reader sees, without <code> (commands, codes)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "code":
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth and data.strip():
            self.parts.append(data.strip())


def _context() -> dict[str, Any]:
    from sso.users.models import User

    user = User(username="wang", name="王伟", email="wang@example.com")
    return {"user": user, "link": "https://sso.example.com/x/abc", "hours": 72, "minutes": 30,
            "ip": "203.0.113.9", "reset_link": "https://sso.example.com/password/reset",
            "app": "客户关系管理", "username": "wang", "admin": "admin", "client_id": "crm",
            "code": "123456"}


MAILS = sorted(p.stem for p in (TEMPLATES / "mail").glob("*.html") if not p.stem.startswith("_"))
SMS = sorted(p.stem for p in (TEMPLATES / "sms").glob("*.txt"))


@pytest.mark.parametrize("name", MAILS)
def test_every_mail_in_chinese_is_all_chinese(app: Flask, name: str) -> None:
    from sso.notify import _render_blocks, language

    with app.test_request_context("/"), language("zh-CN"):
        blocks = _render_blocks(f"mail/{name}.html", _context())
    assert set(blocks) == {"subject", "text", "html"}, f"{name} lacks a block"
    parser = _Text()
    parser.feed(blocks["html"])
    texts = [blocks["subject"], *parser.parts]
    assert re.search(r"[\u4e00-\u9fff]", blocks["subject"]), blocks["subject"]
    assert checks.untranslated(texts) == []
    assert checks.ascii_punctuation(texts) == []


@pytest.mark.parametrize("name", SMS)
def test_every_sms_in_chinese_is_all_chinese(app: Flask, name: str) -> None:
    from sso.notify import language

    with app.test_request_context("/"), language("zh-CN"):
        text = app.jinja_env.get_template(f"sms/{name}.txt").render(
            code="123456", minutes="10", link="https://sso.example.com/activate/code")
    assert checks.untranslated([text]) == [] and checks.ascii_punctuation([text]) == []
    assert re.search(r"[\u4e00-\u9fff]", text)
