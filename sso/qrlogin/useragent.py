"""A browser and operating system name from a User-Agent, for the phone's confirmation page.

Deliberately simple: it names what a person recognises ("Chrome on Windows"), nothing more.
"""

from __future__ import annotations

# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS = (
    ("MicroMessenger", "WeChat"), ("Edg", "Edge"), ("OPR", "Opera"), ("Firefox", "Firefox"),
    ("Chrome", "Chrome"), ("Chromium", "Chromium"), ("Safari", "Safari"),
)
_SYSTEMS = (
    ("Windows", "Windows"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"),
    ("CrOS", "ChromeOS"), ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("Linux", "Linux"),
)


def describe(user_agent: str | None) -> tuple[str, str]:
    """``(browser, system)``; "?" for what cannot be told."""
    ua = user_agent or ""
    browser = next((name for token, name in _BROWSERS if token in ua), "?")
    system = next((name for token, name in _SYSTEMS if token in ua), "?")
    return browser, system
