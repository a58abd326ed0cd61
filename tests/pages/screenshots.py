"""Photograph every page state of :data:`catalogue.PAGES` in both languages at a desktop and a
phone width, for a person to look over: ``make screenshots`` (PNG files under ``screenshots/``,
git-ignored).

It runs the provider on a throw-away SQLite database and the Redis the tests use (127.0.0.1:6379,
else an embedded one), and drives Debian's chromium. ``SSO_BRAND_*`` settings in the
environment apply, so ``SSO_BRAND_PRIMARY_COLOR='#8a1538' make screenshots`` shows the pages in
a company's colour.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import tempfile
from pathlib import Path

from tests.conftest import (
    CHROMIUM,
    DEFAULT_REDIS,
    _answers,
    _empty_redis,
    _empty_tables,
    free_port,
    serve_in_thread,
)
from tests.pages.catalogue import DESKTOP, LANGUAGES, PAGES, PHONE, Visit, build_world

WIDTHS = {"desktop": DESKTOP, "phone": PHONE}


class Live:
    def __init__(self, url: str, app: object) -> None:
        self.url = url
        self.app = app


def _provider(folder: Path) -> tuple[Live, object]:
    from sso import create_app, migrate

    redis_url = DEFAULT_REDIS
    if not _answers(redis_url):
        from sso.embedded import ensure_redis

        redis_url = ensure_redis(str(folder / "redis"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app({
        "TESTING": True, "ISSUER": url, "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": f"sqlite:///{folder / 'sso.sqlite3'}", "REDIS_URL": redis_url,
        "REDIS_PREFIX": f"ssoshots:{secrets.token_hex(4)}:", "KEYS_DIR": str(folder / "keys"),
        "INSTANCE_PATH": str(folder / "instance"), "ARGON2_MEMORY_KIB": 8 * 1024,
        "ARGON2_TIME_COST": 1,
    })
    migrate.upgrade(app)
    return Live(url, app), serve_in_thread(app, port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="screenshots", help="folder for the PNG files")
    parser.add_argument("--only", nargs="*", default=[], help="page states to photograph")
    parser.add_argument("--languages", nargs="*", default=list(LANGUAGES))
    args = parser.parse_args(argv)
    states = [s for s in PAGES if not args.only or s.name in args.only]
    if not states:
        parser.error(f"no page state named {args.only}; see tests/pages/catalogue.py")
    out = Path(args.out)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        live, server = _provider(Path(folder))
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for state in states:
                for locale in args.languages:
                    _empty_tables(live.app)  # type: ignore[arg-type]
                    _empty_redis(live.app.config["REDIS_URL"],  # type: ignore[attr-defined]
                                 live.app.config["REDIS_PREFIX"])  # type: ignore[attr-defined]
                    visit = Visit(browser, live, build_world(live.app), locale)
                    try:
                        page = state.reach(visit)
                        page.wait_for_load_state()
                        for width, size in WIDTHS.items():
                            page.set_viewport_size(size)
                            target = out / locale / width / f"{state.name}.png"
                            target.parent.mkdir(parents=True, exist_ok=True)
                            page.screenshot(path=str(target), full_page=True,
                                            animations="disabled")
                        print(f"{state.name} {locale}: {state.about or 'ok'}")
                    except Exception as error:  # noqa: BLE001 - report and go on
                        print(f"{state.name} {locale}: FAILED {error}", file=sys.stderr)
                    finally:
                        visit.close()
        finally:
            browser.close()
            server.shutdown()  # type: ignore[attr-defined]
    print(f"screenshots in {out}/<language>/<width>/<state>.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
