"""The company's look on every page and mail: name, logo, primary colour and a footer line
(``SSO_BRAND_*``), and each app's own name and logo on the pages that speak of it.

Why these choices:

* **The colour is checked, not trusted.** Buttons put white text on the primary colour and
  links put the primary colour on white, so both need WCAG 2.1's 4.5:1 (SC 1.4.3). A colour
  that falls short is refused at start-up with the ratio it reached and the nearest darker
  shade of the same hue that passes; silently darkening it would ship a colour nobody chose.
* **The page's CSP stays strict.** The colour reaches the pages through a stylesheet the
  provider serves (``/branding.css``), never an inline style; the company logo is read from a
  file at start-up and served by the provider itself (``img-src 'self'``).
* **An app's logo is its ``logo_uri``** (RFC 7591 client metadata), loaded by the browser from
  the app's own origin. Only the page that names that app lets that one origin in
  ``img-src``: the app learns nothing it does not already know (the user is signing in to
  it), the provider makes no outbound request while rendering (no SSRF, nothing leaving the
  process), and nodes need no shared file store.
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, url_for
from werkzeug.wrappers import Response

from .config import ConfigError
from .i18n import current_locale
from .i18n import gettext as _

bp = Blueprint("branding", __name__)

DEFAULT_PRIMARY = "#1f5fbf"
#: WCAG 2.1 SC 1.4.3 (AA) for normal text.
MINIMUM_CONTRAST = 4.5
WHITE = "#ffffff"
#: Backgrounds the primary colour is drawn on: white cards, the page, secondary buttons.
PAGE_BACKGROUND = "#f3f5f8"
LOGO_MAX_BYTES = 256 * 1024
LOGO_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}
LOGO_URI_MAX = 512
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_ICON = Path(__file__).parent / "static" / "favicon.svg"


# Colour arithmetic (WCAG 2.1 relative luminance).


def parse_colour(value: str) -> tuple[int, int, int]:
    text = str(value).strip().lstrip("#")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"{value!r} is not a colour like #1f5fbf")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two colours, from 1 to 21."""
    a, b = _luminance(parse_colour(first)), _luminance(parse_colour(second))
    lighter, darker = max(a, b), min(a, b)
    return (lighter + 0.05) / (darker + 0.05)


def mix(colour: str, other: str, weight: float) -> str:
    """``weight`` of ``colour`` over ``other`` (the tint of a secondary button)."""
    a, b = parse_colour(colour), parse_colour(other)
    return hex_colour(tuple(x * weight + y * (1 - weight)  # type: ignore[arg-type]
                            for x, y in zip(a, b, strict=True)))


def soft(primary: str) -> str:
    """The light tint behind secondary buttons and selected items."""
    return mix(primary, WHITE, 0.09)


def backgrounds(primary: str) -> tuple[str, ...]:
    return (WHITE, PAGE_BACKGROUND, soft(primary))


def worst_contrast(primary: str) -> float:
    return min(contrast(primary, background) for background in backgrounds(primary))


def darkened(primary: str) -> str:
    """The lightest shade of ``primary``'s hue and saturation that reads on every background."""
    r, g, b = (c / 255 for c in parse_colour(primary))
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    while lightness > 0:
        lightness = max(0.0, lightness - 0.01)
        shade = hex_colour(tuple(c * 255 for c in  # type: ignore[arg-type]
                                 colorsys.hls_to_rgb(hue, lightness, saturation)))
        if worst_contrast(shade) >= MINIMUM_CONTRAST:
            return shade
    return "#000000"


def check_primary(value: str, setting: str = "SSO_BRAND_PRIMARY_COLOR") -> str:
    """The colour as ``#rrggbb`` if text in it and on it stays readable; else ConfigError."""
    try:
        colour = hex_colour(parse_colour(value))
    except ValueError as error:
        raise ConfigError(f"{setting}: {error}") from None
    ratio = worst_contrast(colour)
    if ratio < MINIMUM_CONTRAST:
        raise ConfigError(
            f"{setting}={colour} is too light: white text on it, or it as text on a light "
            f"background, reaches only {ratio:.2f}:1 where WCAG 2.1 AA asks for "
            f"{MINIMUM_CONTRAST}:1. The same hue dark enough is {darkened(colour)}."
        )
    return colour


# The company logo.


@dataclass(frozen=True)
class Logo:
    data: bytes
    mimetype: str
    version: str


def _sniff(data: bytes, name: str) -> str | None:
    for magic, mimetype in LOGO_TYPES.items():
        if data.startswith(magic):
            return mimetype
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    head = data[:512].lstrip().lower()
    if name.lower().endswith(".svg") and (head.startswith(b"<svg") or head.startswith(b"<?xml")):
        return "image/svg+xml"
    return None


def load_logo(path: str | None, setting: str = "SSO_BRAND_LOGO") -> Logo | None:
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{setting}: cannot read {path}: {error.strerror}") from None
    if len(data) > LOGO_MAX_BYTES:
        raise ConfigError(f"{setting}: {path} is larger than {LOGO_MAX_BYTES // 1024} KiB")
    mimetype = _sniff(data, path)
    if mimetype is None:
        raise ConfigError(f"{setting}: {path} is not a PNG, JPEG, GIF, WebP or SVG image")
    return Logo(data, mimetype, hashlib.sha256(data).hexdigest()[:12])


# The brand of this provider.


def _localised(value: Any, locale: str) -> str | None:
    """A setting given as text, or as {"zh-CN": ..., "en": ...} for each language."""
    if isinstance(value, dict):
        text = value.get(locale) or value.get("en") or next(iter(value.values()), None)
        return str(text) if text else None
    return str(value) if value else None


@dataclass(frozen=True)
class Brand:
    names: Any
    footers: Any
    primary: str
    logo: Logo | None

    def name(self) -> str:
        return _localised(self.names, current_locale()) or _("Company sign-in")

    def footer(self) -> str | None:
        return _localised(self.footers, current_locale())

    @property
    def version(self) -> str:
        material = f"{self.primary}:{self.logo.version if self.logo else ''}"
        return hashlib.sha256(material.encode()).hexdigest()[:12]

    def css_url(self) -> str:
        return url_for("branding.stylesheet", v=self.version)

    def logo_url(self, external: bool = False) -> str | None:
        """The logo's path; ``external`` (mail) puts the issuer before it."""
        if self.logo is None:
            return None
        path = url_for("branding.logo", v=self.logo.version)
        return f"{current_app.config['ISSUER']}{path}" if external else path

    def icon_url(self) -> str:
        return url_for("branding.icon", v=self.version)

    def stylesheet(self) -> str:
        return (f":root {{ --accent: {self.primary}; --accent-soft: {soft(self.primary)}; "
                f"--accent-strong: {mix(self.primary, '#000000', 0.8)}; }}\n")


def from_config(config: Any) -> Brand:
    """Read and check the ``SSO_BRAND_*`` settings (ConfigError names the one to fix)."""
    for setting in ("BRAND_NAME", "BRAND_FOOTER"):
        value = config.get(setting)
        if value is not None and not isinstance(value, str | dict):
            raise ConfigError(f"SSO_{setting}: text, or a JSON object of language -> text")
    return Brand(
        names=config.get("BRAND_NAME"),
        footers=config.get("BRAND_FOOTER"),
        primary=check_primary(config.get("BRAND_PRIMARY_COLOR") or DEFAULT_PRIMARY),
        logo=load_logo(config.get("BRAND_LOGO")),
    )


def brand() -> Brand:
    return current_app.extensions["sso_brand"]  # type: ignore[no-any-return]


# An app's name and logo.


class LogoURIError(ValueError):
    pass


def check_logo_uri(uri: str) -> str:
    """An https URL (plain http only on this machine) without credentials or fragment."""
    uri = uri.strip()
    parts = urlsplit(uri)
    if len(uri) > LOGO_URI_MAX or not parts.hostname or parts.username or parts.fragment:
        raise LogoURIError(f"logo URI: an absolute URL of at most {LOGO_URI_MAX} characters, "
                           "without credentials or fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return uri
    raise LogoURIError("logo URI: use https (plain http only for 127.0.0.1)")


def brand_client(client: Any, *, name_zh: str | None = None, logo_uri: str | None = None,
                 origin: Any = None) -> None:
    """Set an app's Chinese name and logo URI (None leaves one as it is, "" removes it)."""
    from . import audit  # noqa: PLC0415

    if name_zh is not None:
        name_zh = name_zh.strip()
        if len(name_zh) > 128:
            raise LogoURIError("Chinese name: at most 128 characters")
        client.name_zh = name_zh or None
    if logo_uri is not None:
        client.logo_uri = check_logo_uri(logo_uri) if logo_uri.strip() else None
    audit.record("client.branding", origin=origin, client_id=client.client_id,
                 name_zh=client.name_zh, logo_uri=client.logo_uri)


@dataclass(frozen=True)
class AppBrand:
    """What a page shows of an app: its name in the reader's language and its logo."""

    name: str
    logo_uri: str | None = None


def app_brand(client_id: str | None, fallback_name: str = "") -> AppBrand | None:
    """The app's name and logo; its logo's origin becomes loadable on this page only."""
    from .oidc.public import cached_client  # noqa: PLC0415
    from .web import allow_image  # noqa: PLC0415

    client = cached_client(client_id) if client_id else None
    if client is None:
        return AppBrand(fallback_name) if fallback_name else None
    logo = getattr(client, "logo_uri", None)
    if logo:
        allow_image(logo)
    return AppBrand(client.display_name(current_locale()), logo)


def flow_app(flow_id: str | None) -> AppBrand | None:
    """The app a pending sign-in is for (the sign-in, MFA and activation pages)."""
    from .flow import pending as pending_flows  # noqa: PLC0415

    pending = pending_flows.get(flow_id) if flow_id else None
    if pending is None:
        return None
    return app_brand(pending.params.get("client_id"), pending.client_name)


# Routes.


def _cached(response: Response) -> Response:
    # The URL carries the content's hash, so it may be kept for a year.
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@bp.get("/branding.css")
def stylesheet() -> Response:
    return _cached(Response(brand().stylesheet(), mimetype="text/css"))


@bp.get("/branding/logo")
def logo() -> Response:
    found = brand().logo
    if found is None:
        return Response(status=404)
    response = _cached(Response(found.data, mimetype=found.mimetype))
    # An SVG opened on its own must not run script in this origin.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


@bp.get("/favicon.ico")
@bp.get("/branding/icon")
def icon() -> Response:
    """The company logo, or a plain key; browsers ask for /favicon.ico on their own."""
    found = brand().logo
    response = logo() if found is not None else Response(DEFAULT_ICON.read_bytes(),
                                                          mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def init_app(app: Flask) -> None:
    app.extensions["sso_brand"] = from_config(app.config)
    app.register_blueprint(bp)
    app.jinja_env.globals.update(brand=brand, app_brand=app_brand, flow_app=flow_app)
