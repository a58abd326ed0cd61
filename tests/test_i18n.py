"""Every text the pages show has its Chinese translation (the UI is zh-CN and en)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from sso import i18n

ROOT = Path(__file__).parent.parent


def _messages() -> set[str]:
    found: set[str] = set()
    for directory, method_map in (
        (ROOT / "sso", [("**.py", "python"), ("**/templates/**.html", "jinja2"),
                        ("**/templates/**.txt", "jinja2")]),
        (ROOT / "templates", [("**.html", "jinja2"), ("**.txt", "jinja2")]),
    ):
        for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(directory), method_map, keywords={"_": None, "gettext": None, "N_": None,
                                                  "ngettext": (1, 2)},
            options_map={pattern: {"extensions": "jinja2.ext.i18n"} for pattern in (
                "**.html", "**.txt", "**/templates/**.html", "**/templates/**.txt")},
        ):
            for text in (message if isinstance(message, tuple) else (message,)):
                if text:
                    found.add(text)
    return found


def test_every_message_has_a_chinese_translation() -> None:
    i18n._load()
    catalog = i18n._catalogs["zh-CN"]
    missing = sorted(m for m in _messages() if m not in catalog)
    assert not missing, "missing zh-CN translations:\n" + "\n".join(missing)


def test_placeholders_survive_translation() -> None:
    import re

    i18n._load()
    for source, translated in i18n._catalogs["zh-CN"].items():
        assert sorted(re.findall(r"%\(\w+\)s", source)) == sorted(
            re.findall(r"%\(\w+\)s", translated)), source
