"""Chinese (zh-CN) and English pages; the language follows the browser.

Catalogs are gettext ``.po`` files, ``sso/translations/<language>/<area>.po`` (one file per
package, merged; a package may keep its own in ``sso/<package>/translations/``), read once at
start-up. The language of a request is, in
order: the ``ui_locales`` of the authorization request being served, the ``lang`` cookie set
by the language switch, then the browser's ``Accept-Language``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po
from flask import Flask, current_app, g, request

TRANSLATIONS = Path(__file__).parent / "translations"
SUPPORTED = ("zh-CN", "en")
LANG_COOKIE = "lang"

_catalogs: dict[str, dict[str, str]] = {}
_translated: dict[str, frozenset[str]] = {}


def _load() -> None:
    # A package may carry its own catalogs (``sso/<package>/translations/<language>/``), so
    # that a sign-in method is one folder.
    roots = [TRANSLATIONS, *sorted(TRANSLATIONS.parent.glob("*/translations"))]
    for folder in sorted((p for root in roots for p in root.iterdir() if p.is_dir()),
                         key=lambda p: (p.name, str(p))):
        messages = _catalogs.setdefault(folder.name.replace("_", "-"), {})
        for path in sorted(folder.glob("*.po")):
            with path.open("rb") as fh:
                catalog = read_po(fh)
            messages.update({str(m.id): str(m.string) for m in catalog if m.id and m.string})


def lang_cookie_name() -> str:
    """``__Host-lang`` when the provider is on https (every cookie of ours is __Host-)."""
    return f"__Host-{LANG_COOKIE}" if current_app.config.get("SESSION_COOKIE_SECURE") \
        else LANG_COOKIE


def normalise(tag: str | None) -> str | None:
    """Map a BCP 47 tag to a supported language: any Chinese to zh-CN, any English to en."""
    if not tag:
        return None
    tag = tag.strip().lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def select(ui_locales: str | None, cookie: str | None, accept: Any, default: str) -> str:
    for tag in (ui_locales or "").split():
        if found := normalise(tag):
            return found
    if found := normalise(cookie):
        return found
    for tag, _quality in accept:
        if found := normalise(tag):
            return found
    return default


def current_locale() -> str:
    locale = getattr(g, "locale", None)
    if locale is None:
        locale = select(
            getattr(g, "ui_locales", None),
            request.cookies.get(lang_cookie_name()),
            request.accept_languages,
            "en",
        )
        g.locale = locale
    return locale  # type: ignore[no-any-return]


def gettext(message: str, **variables: Any) -> str:
    """Translate ``message`` into the request's language; ``%(name)s`` placeholders are filled."""
    text = _catalogs.get(current_locale(), {}).get(message, message)
    if variables:
        text = text % variables
    return text


def is_translation(text: str) -> bool:
    """Whether ``text`` is already in the request's language: a translation the catalogue
    holds (a page handed a message it translated itself)."""
    locale = current_locale()
    found = _translated.get(locale)
    if found is None:
        found = _translated[locale] = frozenset(_catalogs.get(locale, {}).values())
    return text in found


def ngettext(singular: str, plural: str, n: int) -> str:
    """Pick and translate the form for ``n``; Jinja fills ``%(num)s`` afterwards."""
    return gettext(singular if n == 1 else plural)


def init_app(app: Flask) -> None:
    if not _catalogs:
        _load()
    app.jinja_env.add_extension("jinja2.ext.i18n")
    # Jinja's new-style gettext escapes the variables and fills the placeholders itself.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext, ngettext, newstyle=True
    )
    app.jinja_env.globals["current_locale"] = current_locale
