"""The company's name, logo, colour and footer on every page and mail; each app's Chinese name
and logo on the pages that speak of it; a colour that would make text unreadable refused."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from sso import branding, create_app
from sso.cli import cli
from sso.config import ConfigError
from tests.conftest import LiveProvider, free_port, serve_in_thread
from tests.pages import checks
from tests.pages.catalogue import Visit, build_world

TEMPLATES = Path(__file__).parent.parent.parent / "templates"
BRAND = {"BRAND_NAME": {"en": "Acme Corp", "zh-CN": "艾克米集团"},
         "BRAND_PRIMARY_COLOR": "#8a1538",
         "BRAND_FOOTER": {"en": "Acme Corp IT · ext. 4357",
                          "zh-CN": "艾克米集团信息部 · 分机 4357"}}


def _png(colour: tuple[int, int, int], size: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="PNG")
    return out.getvalue()


# The colour check (WCAG 2.1 contrast).


def test_contrast_matches_wcag_examples() -> None:
    assert branding.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert branding.contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert branding.contrast("#ffffff", "#ffffff") == pytest.approx(1.0)


@pytest.mark.parametrize("colour", ["#ffcc00", "#7fbfff", "#44cc44", "#f0f0f0", "#ff0000"])
def test_a_colour_too_light_for_text_is_refused_with_a_shade_that_passes(colour: str) -> None:
    with pytest.raises(ConfigError) as refused:
        branding.check_primary(colour)
    message = str(refused.value)
    assert "SSO_BRAND_PRIMARY_COLOR" in message and "4.5:1" in message
    suggested = re.search(r"is (#[0-9a-f]{6})\.$", message)
    assert suggested, message
    assert branding.check_primary(suggested.group(1)) == suggested.group(1)
    for background in ("#ffffff", branding.PAGE_BACKGROUND):
        assert branding.contrast(suggested.group(1), background) >= 4.5


@pytest.mark.parametrize("colour", ["#1f5fbf", "#8a1538", "#0f7b6c", "#000", "#333333"])
def test_dark_enough_colours_are_kept(colour: str) -> None:
    assert branding.check_primary(colour) == branding.hex_colour(branding.parse_colour(colour))


@pytest.mark.parametrize("value", ["blue", "#12345", "javascript:alert(1)", "#1f5fbf; x"])
def test_a_value_that_is_no_colour_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="SSO_BRAND_PRIMARY_COLOR"):
        branding.check_primary(value)


def test_start_up_refuses_a_light_colour_and_a_logo_that_is_no_image(
        app_config: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too light"):
        create_app({**app_config, "BRAND_PRIMARY_COLOR": "#ffdd55"})
    fake = tmp_path / "logo.png"
    fake.write_text("<script>alert(1)</script>")
    with pytest.raises(ConfigError, match="SSO_BRAND_LOGO"):
        create_app({**app_config, "BRAND_LOGO": str(fake)})
    with pytest.raises(ConfigError, match="cannot read"):
        create_app({**app_config, "BRAND_LOGO": str(tmp_path / "missing.png")})


def test_every_page_template_extends_the_frame_that_carries_the_brand() -> None:
    """Pages get the name, logo, colour and footer from base.html; partials, mails and the
    demo apps' own pages are not provider pages."""
    skipped = ("mail/", "sms/", "demo/")
    pages = [p for p in TEMPLATES.rglob("*.html")
             if not p.name.startswith("_") and p.name != "base.html"
             and not str(p.relative_to(TEMPLATES)).startswith(skipped)
             and p.relative_to(TEMPLATES).as_posix() != "mfa/account.html"]
    assert pages
    for page in pages:
        assert _extends_base(page), page


def _extends_base(page: Path) -> bool:
    """True when ``page`` extends base.html, directly or through a layout (admin/_layout.html)."""
    for _depth in range(5):
        found = re.match(r'\{% extends "([^"]+)" %\}', page.read_text())
        if found is None:
            return False
        if found.group(1) == "base.html":
            return True
        page = TEMPLATES / found.group(1)
    return False


# A branded provider in the browser.


@pytest.fixture(scope="session")
def logo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("brand") / "acme.png"
    path.write_bytes(_png((138, 21, 56)))
    return path


@pytest.fixture(scope="session")
def app_logos() -> Iterator[str]:
    """An app's own web server, answering its logo (another origin than the provider)."""
    body = _png((15, 123, 108), 40)

    def serve(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "image/png"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    port = free_port()
    server = serve_in_thread(serve, port)
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture(scope="session")
def branded(app: Flask, app_config: dict[str, Any], logo_file: Path
            ) -> Iterator[LiveProvider]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live = create_app({**app_config, "ISSUER": url, **BRAND, "BRAND_LOGO": str(logo_file)})
    server = serve_in_thread(live, port)
    yield LiveProvider(url=url, app=live)
    server.shutdown()


def _brand_client(live: LiveProvider, client_id: str, name_zh: str, logo_uri: str) -> None:
    from sso.branding import brand_client
    from sso.extensions import db
    from sso.oidc.clients import get

    with live.app.app_context():
        brand_client(get(client_id), name_zh=name_zh, logo_uri=logo_uri)
        db.session.commit()


def _image_loaded(page: Any, selector: str) -> bool:
    locator = page.locator(selector)
    for _ in range(50):
        if locator.evaluate("img => img.complete && img.naturalWidth > 0"):
            return True
        page.wait_for_timeout(100)
    return False


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_brand_and_the_apps_appear_on_the_pages_and_stay_accessible(
        chromium: Any, branded: LiveProvider, app_logos: str, axe_ready: None) -> None:
    world = build_world(branded.app)
    _brand_client(branded, "crm", "客户关系管理", f"{app_logos}/crm.png")
    visit = Visit(chromium, branded, world, "zh-CN")
    blocked: list[str] = []
    try:
        visit.authorize("crm")
        page = visit.page
        page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text
                else None)
        page.wait_for_selector("form#password")
        # The company: name, logo (served by the provider), colour, footer.
        assert page.locator(".brand").inner_text().strip() == "艾克米集团"
        assert page.title().endswith("艾克米集团")
        assert _image_loaded(page, ".brand img")
        assert page.locator("#brand-footer").inner_text() == "艾克米集团信息部 · 分机 4357"
        colour = page.locator("form#password button[type=submit]").evaluate(
            "b => getComputedStyle(b).backgroundColor")
        assert colour == "rgb(138, 21, 56)"
        link = page.locator(".account-links a").first.evaluate("a => getComputedStyle(a).color")
        assert link == "rgb(138, 21, 56)"
        # The app: its Chinese name and its logo, from its own origin, allowed by the CSP.
        assert "客户关系管理" in page.locator("#app-line").inner_text()
        assert _image_loaded(page, "#app-line img")
        assert checks.axe(page) == []
        visit.sign_in("alice")
        page.wait_for_selector("form.choices")
        assert "客户关系管理" in page.locator("h1").inner_text()
        assert _image_loaded(page, ".app img")
        assert checks.axe(page) == []
        # A page that names no app lets no other origin in.
        csp = visit.page.goto(f"{branded.url}/no/such/page").headers["content-security-policy"]
        assert app_logos not in csp and "img-src 'self' data:;" in csp
        assert visit.page.locator(".brand").inner_text().strip() == "艾克米集团"
        assert not blocked, blocked
        assert not visit.failed_parts
    finally:
        visit.close()


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_phone_confirmation_shows_the_apps_name_and_logo(
        chromium: Any, branded: LiveProvider, app_logos: str, axe_ready: None) -> None:
    world = build_world(branded.app)
    _brand_client(branded, "erp", "企业资源计划", f"{app_logos}/erp.png")
    visit = Visit(chromium, branded, world, "zh-CN")
    try:
        visit.authorize("erp")
        visit.page.click("#method-qrlogin-desktop")
        visit.page.wait_for_selector("#qr-image:not([hidden])")
        qr_id = re.search(r"/qr/sessions/([^/]+)/",
                          visit.page.locator("#qr-image").get_attribute("src")).group(1)
        phone = visit.signed_in_page("alice", viewport={"width": 412, "height": 915})
        visit.open(f"/qr/s/{qr_id}", phone)
        assert phone.locator("#qr-app").inner_text() == "企业资源计划"
        assert _image_loaded(phone, ".app img")
        assert checks.axe(phone) == []
    finally:
        visit.close()


def test_mails_carry_the_brand(branded: LiveProvider, logo_file: Path) -> None:
    from sso import notify
    from sso.extensions import db
    from sso.users.models import User

    with branded.app.test_request_context("/"):
        user = User(username="wang", name="王伟", email="wang@example.com")
        message = notify.mail("wang@example.com", "reset", locale="zh-CN", user=user,
                              link="https://sso.example.com/password/reset/x", minutes=30)
        html = message.body_html or ""
        db.session.rollback()
    assert "艾克米集团" in html and "艾克米集团信息部 · 分机 4357" in html
    assert f'src="{branded.url}/branding/logo?v=' in html
    assert "#8a1538" in html


def test_the_logo_is_served_by_the_provider_and_cannot_run_script(
        branded: LiveProvider, logo_file: Path) -> None:
    client = branded.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    logo_url = re.search(r'class="brand"><img src="([^"]+)"', page).group(1)
    logo = client.get(logo_url)
    assert logo.status_code == 200 and logo.data == logo_file.read_bytes()
    assert logo.mimetype == "image/png"
    assert "immutable" in logo.headers["Cache-Control"]
    assert logo.headers["Content-Security-Policy"].startswith("default-src 'none'")
    css = client.get(re.search(r'href="(/branding.css[^"]+)"', page).group(1))
    assert "--accent: #8a1538" in css.get_data(as_text=True)
    assert client.get("/favicon.ico").status_code == 200


# Each app's name and logo, through the CLI.


def test_clients_create_and_update_set_the_chinese_name_and_logo(runner: Any, app: Flask) -> None:
    created = runner.invoke(cli, [
        "clients", "create", "--name", "Payroll", "--redirect-uri",
        "https://payroll.example.com/cb", "--name-zh", "薪资", "--logo-uri",
        "https://payroll.example.com/logo.png", "--json"])
    assert created.exit_code == 0, created.output
    data = json.loads(created.output)
    assert data["name_zh"] == "薪资" and data["logo_uri"] == "https://payroll.example.com/logo.png"
    client_id = data["client_id"]
    updated = runner.invoke(cli, ["clients", "update", client_id, "--name-zh", "",
                                  "--logo-uri", "https://cdn.example.com/p.svg"])
    assert updated.exit_code == 0, updated.output
    from sso.oidc.clients import get

    with app.app_context():
        client = get(client_id)
        assert client.name_zh is None and client.logo_uri == "https://cdn.example.com/p.svg"
        assert client.display_name("zh-CN") == "Payroll"
        client.name_zh = "薪资"
        assert client.display_name("zh-CN") == "薪资" and client.display_name("en") == "Payroll"


@pytest.mark.parametrize("uri", ["http://cdn.example.com/logo.png", "javascript:alert(1)",
                                 "https://user:pw@cdn.example.com/l.png", "/static/logo.png",
                                 "https://cdn.example.com/" + "x" * 600])
def test_a_logo_uri_that_is_not_plain_https_is_refused(runner: Any, app: Flask, uri: str) -> None:
    result = runner.invoke(cli, [
        "clients", "create", "--name", "Payroll", "--redirect-uri",
        "https://payroll.example.com/cb", "--logo-uri", uri])
    assert result.exit_code != 0 and "logo URI" in result.output


def test_a_logo_origin_with_a_directive_in_it_never_reaches_the_csp(app: Flask) -> None:
    from flask import g

    from sso.web import allow_image

    with app.test_request_context("/"):
        allow_image("https://a.example.com;script-src *")
        allow_image("https://b.example.com:8443/logo.png")
        assert g.csp_img_src == ["https://b.example.com:8443"]
