"""What every page state must pass in a real browser: axe-core's WCAG 2.1 AA rules, no
English left in the Chinese pages, nothing wider than the screen, no part of the page that
fails to load.

axe-core comes from npm (``tests/pages/node``, installed on first use into its git-ignored
``node_modules``). It is evaluated through the DevTools protocol, which the page's strict CSP
does not govern, so the pages are checked exactly as served.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from sso import i18n

NODE_DIR = Path(__file__).parent / "node"
AXE = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
#: WCAG 2.0 and 2.1, levels A and AA.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


class AxeMissing(RuntimeError):
    pass


def install_axe() -> Path:
    """``npm ci`` the pinned axe-core unless it is there; returns the script's path."""
    if AXE.exists():
        return AXE
    npm = shutil.which("npm")
    if npm is None:
        raise AxeMissing("npm is missing (apt-get install npm)")
    command = "ci" if (NODE_DIR / "package-lock.json").exists() else "install"
    result = subprocess.run(
        [npm, command, "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
        capture_output=True, text=True, timeout=300, check=False,
    )
    if result.returncode != 0 or not AXE.exists():
        raise AxeMissing(f"npm {command} failed:\n{result.stderr[-2000:]}")
    return AXE


@cache
def _axe_source() -> str:
    return install_axe().read_text()


def axe(page: Any) -> list[str]:
    """axe-core's WCAG 2.1 AA violations on the page as it is now, one line per node."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: "
        "['violations']}).then(r => r.violations.map(v => ({id: v.id, help: v.help, "
        "nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)})))",
        AXE_TAGS,
    )
    return [f"{v['id']} ({v['help']}): {node}" for v in result for node in v["nodes"]]


def overflow(page: Any) -> str | None:
    """Whether the page is wider than the window (so a person must scroll sideways)."""
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] > widths[1]:
        return f"the page is {widths[0]} px wide in a {widths[1]} px window"
    return None


_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const ring = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  const name = el.id || el.getAttribute('name') || (el.textContent || '').trim().slice(0, 30);
  return {key: el.tagName + '#' + name, ring: ring};
}"""


def focus_rings(page: Any, limit: int = 60) -> list[str]:
    """Tab through the page from the top: every element that takes the focus must show it
    (WCAG 2.4.7). Returns the ones that do not."""
    # Start at the skip link, the page's first stop (the keyboard walks check it shows).
    page.evaluate("() => document.querySelector('a.skip').focus()")
    missing: list[str] = []
    seen: set[str] = set()
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUSED)
        if focused is None or focused["key"] in seen:
            break
        seen.add(focused["key"])
        if not focused["ring"]:
            missing.append(f"no visible focus on {focused['key']}")
    return missing


_VISIBLE_TEXT = """() => {
  const skip = 'script, style, code, kbd, pre, [translate=no], [lang^=en]';
  const out = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    if (node.textContent.trim()) out.push(node.textContent.trim());
  }
  for (const el of document.querySelectorAll('[alt], [aria-label], [title], [placeholder],'
      + ' [data-msg-loading], input[type=submit], input[type=button]')) {
    if (el.closest(skip)) continue;
    for (const attr of el.attributes) {
      if (['alt', 'aria-label', 'title', 'placeholder', 'value'].includes(attr.name)
          || attr.name.startsWith('data-msg-')) out.push(attr.value);
    }
  }
  return out;
}"""

#: Four or more English words in a row.
ENGLISH_RUN = re.compile(r"[A-Za-z][a-z']+(?:[ ,;:-]+[A-Za-z][a-z']*){3,}")


@cache
def _english_sources() -> tuple[str, ...]:
    """The fragments of every catalogue message long enough not to be a name."""
    if not i18n._catalogs:
        i18n._load()
    pieces: set[str] = set()
    for source in i18n._catalogs["zh-CN"]:
        for piece in re.split(r"%\(\w+\)s", source):
            piece = piece.strip(" .,:;")
            if len(piece) >= 8 and " " in piece:
                pieces.add(piece)
    return tuple(sorted(pieces))


def untranslated(texts: list[str]) -> list[str]:
    """English left in texts shown to a Chinese reader: a catalogue's English source, or any
    run of four English words (the library's own messages, a string never put in a
    catalogue)."""
    found = []
    for text in texts:
        for source in _english_sources():
            if source in text:
                found.append(f"{source!r} in {text!r}")
        for run in ENGLISH_RUN.findall(text):
            found.append(f"{run!r} in {text!r}")
    return sorted(set(found))


def visible_texts(page: Any) -> list[str]:
    return [str(t) for t in page.evaluate(_VISIBLE_TEXT)]


#: ASCII punctuation next to a Chinese character (Chinese text takes full-width marks).
ASCII_BESIDE_CJK = re.compile(r"[\u3400-\u9fff][,.:;!?()]|[,:;!?(][\u3400-\u9fff]")


def ascii_punctuation(texts: list[str]) -> list[str]:
    return sorted({f"{m.group(0)!r} in {t!r}" for t in texts
                   for m in ASCII_BESIDE_CJK.finditer(t)})


def describe(problems: dict[str, list[str]]) -> str:
    return json.dumps({k: v for k, v in problems.items() if v}, ensure_ascii=False, indent=1)
