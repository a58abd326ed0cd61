"""Request plumbing every blueprint shares: CSRF, security headers, client origin."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from .audit import Origin
from .security import same

F = TypeVar("F", bound=Callable[..., Any])

CSRF_FIELD = "csrf_token"
_HOST_PORT = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_CSP = (
    "default-src 'self'; img-src 'self' data:{img_src}; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self' {form_action}; "
    "frame-ancestors 'none'{frame_src}"
)


class StaleForm(BadRequest):
    """A form posted without this browser's current CSRF token (forged, or a tab left open
    across a sign-in, which rotates the token)."""

    description = "csrf"


def csrf_exempt(view: F) -> F:
    """Mark a view that authenticates its caller otherwise (client credentials, bearer token)."""
    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view


def _sso_session_cookie() -> str:
    """The raw SSO session cookie of this browser (named as :mod:`sso.flow.passage` sets it)."""
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    return request.cookies.get("__Host-sso_session" if secure else "sso_session", "")


def _bound(nonce: str) -> str:
    """The form token for ``nonce`` in this browser's SSO session: a token minted under
    another session (an attacker's own, tossed in as a cookie) does not verify here."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    message = f"csrf|{nonce}|{_sso_session_cookie()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:43]


def csrf_token() -> str:
    nonce = session.get("csrf")
    if not nonce:
        nonce = secrets.token_urlsafe(32)
        session["csrf"] = nonce
    return _bound(str(nonce))


def _check_csrf() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "csrf_exempt", False):
        return
    sent = request.form.get(CSRF_FIELD, "") or request.headers.get("X-CSRF-Token", "")
    nonce = session.get("csrf")
    if not nonce or not sent or not same(str(sent), _bound(str(nonce))):
        raise StaleForm()


class DuplicateCookie(BadRequest):
    """Two cookies of one name: one was set by someone else (cookie tossing from a sibling
    subdomain, with a longer path so the browser sends it first). Neither is trusted."""

    description = "duplicate_cookie"


def duplicate_cookie(cookies: MultiDict[str, str]) -> bool:
    """Whether a cookie comes twice among ``cookies`` (parsed as ``request.cookies``)."""
    return any(len(values) > 1 for _name, values in cookies.lists())


def _refuse_duplicate_cookies() -> None:
    if duplicate_cookie(request.cookies):
        raise DuplicateCookie()


def _refuse_nul() -> None:
    """Refuse NUL characters in any parameter: no real input has one, and PostgreSQL cannot
    store or even compare text holding one, so it would fail deep inside a query.

    Checked on the raw request, without parsing it: in a query string or a URL-encoded body a
    NUL is either the byte itself or ``%00`` (the only escape that decodes to it), and the
    path is already decoded. Parsing the query and the form here, before the view, used to
    be a tenth of a ``client_credentials`` request (issue 15). A multipart form's fields are
    still parsed to be checked (its files may hold any byte).
    """
    environ = request.environ
    if refused_query(environ.get("QUERY_STRING", "")) or "\x00" in environ.get("PATH_INFO", ""):
        abort(400)
    if environ["REQUEST_METHOD"] in ("GET", "HEAD", "OPTIONS"):
        return
    mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if mimetype == "application/x-www-form-urlencoded":
        # Read once and kept: the form is parsed from these bytes when the view asks for it.
        body = request.get_data(cache=True, parse_form_data=False)
        if b"%00" in body or b"\x00" in body:
            abort(400)
    elif mimetype == "multipart/form-data" and any(
            "\x00" in part for pair in request.form.items(multi=True) for part in pair):
        abort(400)


def refused_query(query: str) -> bool:
    """Whether :func:`_refuse_nul` refuses the raw query string ``query``: it holds a NUL, or
    bytes that are not UTF-8 (Werkzeug would fail to decode it, a 500, wherever it is read)."""
    return "%00" in query or "\x00" in query or (not query.isascii() and not _utf8(query))


def here() -> str:
    """This page's path and query, to come back to (the language switch): the path alone
    where the query is not UTF-8, which :func:`_refuse_nul` refuses with a page that has
    that switch too."""
    query = request.environ.get("QUERY_STRING", "")
    return request.full_path if query.isascii() or _utf8(query) else request.path


def _utf8(wsgi_text: str) -> bool:
    """Whether a WSGI string (bytes as Latin-1) holds UTF-8."""
    try:
        wsgi_text.encode("latin-1").decode()
    except UnicodeError:
        return False
    return True


#: The caller of a request answered outside Flask's request context (:mod:`sso.oidc.direct`).
_direct_origin: contextvars.ContextVar[Origin | None] = contextvars.ContextVar(
    "sso_direct_origin", default=None)


def origin() -> Origin:
    """The caller's IP and user agent, for the audit log and sessions."""
    held = _direct_origin.get()
    if held is not None:
        return held
    return Origin(ip=request.remote_addr, user_agent=request.user_agent.string or None)


def hold_origin(environ: dict[str, Any]) -> contextvars.Token[Origin | None]:
    """Make the caller of the WSGI request ``environ`` the :func:`origin` (until
    :func:`release_origin`), for a request answered without Flask's request context."""
    return _direct_origin.set(Origin(ip=environ.get("REMOTE_ADDR"),
                                     user_agent=environ.get("HTTP_USER_AGENT") or None))


def release_origin(token: contextvars.Token[Origin | None]) -> None:
    _direct_origin.reset(token)


#: On every answer: never framed, never sniffed, no Referer sent on.
SECURITY_HEADERS = (("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"))
#: On every answer when the provider is served over https (``SSO_SESSION_COOKIE_SECURE``).
HSTS = ("Strict-Transport-Security", "max-age=31536000")


def _security_headers(response: Response) -> Response:
    """The defaults every answer carries, each unless the answer set its own. Added in one
    pass over the names present: Werkzeug's ``setdefault`` looks each name up, and every
    miss builds an HTTP exception (``BadRequestKeyError``), about a microsecond each."""
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    defaults = list(SECURITY_HEADERS)
    if response.mimetype == "text/html":
        # ``g.get``, not ``getattr``: a name ``g`` lacks raises inside ``getattr`` (a page
        # that allows nothing more, a redirect's body, lacks all three).
        form_action = g.get("csp_form_action")
        img_src = g.get("csp_img_src")
        frames = g.get("csp_frame_src")
        policy = (_csp(" ".join(form_action or ()), dict.fromkeys(img_src or ()),
                       dict.fromkeys(frames or ()))
                  if form_action or img_src or frames else DEFAULT_CSP)
        defaults += [("Content-Security-Policy", policy), ("Cache-Control", "no-store")]
    if current_app.config["SESSION_COOKIE_SECURE"]:
        defaults.append(HSTS)
    headers.extend([pair for pair in defaults if pair[0].lower() not in present])
    return response


def _csp(form_action: str, img_src: Iterable[str], frames: Iterable[str]) -> str:
    """The pages' Content-Security-Policy, with the origins a page allows besides its own."""
    frame_src = " ".join(frames)
    return _CSP.format(form_action=form_action, img_src="".join(f" {found}" for found in img_src),
                       frame_src=f"; frame-src {frame_src}" if frame_src else "")


DEFAULT_CSP = _csp("", (), ())


def allow_form_action(uri: str) -> None:
    """Let this page's CSP post a form to ``uri``'s origin (consent and logout redirects)."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.netloc:
        g.setdefault("csp_form_action", []).append(f"{parts.scheme}://{parts.netloc}")


def allow_image(uri: str) -> None:
    """Let this page load an image from ``uri``'s origin (the logo of the app it names)."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(uri)
    # Only a plain host[:port]: anything else could smuggle a directive into the header.
    if parts.scheme in ("http", "https") and _HOST_PORT.fullmatch(parts.netloc):
        g.setdefault("csp_img_src", []).append(f"{parts.scheme}://{parts.netloc}")


def allow_frame(uri: str) -> None:
    """Let this page load ``uri``'s origin in an iframe (front-channel logout only)."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and _HOST_PORT.fullmatch(parts.netloc):
        g.setdefault("csp_frame_src", []).append(f"{parts.scheme}://{parts.netloc}")


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session (the ``sso_flow`` cookie), with its serializer built once
    per set of keys: Flask builds a new one on every request, cookie or not."""

    _serializer: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = self._serializer
        if cached is None or cached[0] != keys:
            cached = (keys, super().get_signing_serializer(app))
            self._serializer = cached
        return cached[1]


class ProviderApp(Flask):
    """Flask, with the answer to "is this hook a coroutine?" kept per function: Flask asks it
    for every hook and view of every request (about fifteen times, ~1 µs each), and the
    provider's functions never change their nature. Bounded: a request's own callbacks
    (``after_this_request``) are new functions each time."""

    SYNC_FUNCTIONS_KEPT = 512

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        cache: dict[Any, Callable[..., Any]] = self.__dict__.setdefault("_sync_functions", {})
        try:
            return cache[func]
        except KeyError:
            found = super().ensure_sync(func)
            if len(cache) < self.SYNC_FUNCTIONS_KEPT:
                cache[func] = found
            return found
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)


class FromTrustedProxies:
    """Drop ``X-Forwarded-*`` unless the direct peer is a trusted proxy (RFC 10027, forged
    context: with the port published directly, anyone could name any client address)."""

    def __init__(self, wsgi_app: Any, networks: str | list[str]) -> None:
        items = [n.strip() for n in (networks.split(",") if isinstance(networks, str)
                                     else networks) if n.strip()]
        if "*" in items:  # gunicorn's "trust every peer"
            items = ["0.0.0.0/0", "::/0"]
        self.networks = [ipaddress.ip_network(n, strict=False) for n in items]
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            peer = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
        except ValueError:
            peer = None
        if peer is None or not any(peer in network for network in self.networks):
            for key in [k for k in environ if k.startswith("HTTP_X_FORWARDED_")]:
                del environ[key]
        return self.wsgi_app(environ, start_response)


def trust_proxies(app: Flask) -> None:
    """Read the client's address and scheme from the trusted proxies' ``X-Forwarded-*``: the
    outermost layer around the app (the factory installs it last), so that every layer
    inside it, Flask and the published documents (:mod:`sso.oidc.documents`), sees them."""
    proxies = int(app.config.get("TRUSTED_PROXIES", 0) or 0)
    if proxies:
        fixed = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
        app.wsgi_app = FromTrustedProxies(  # type: ignore[method-assign]
            fixed, app.config.get("TRUSTED_PROXY_NETWORKS") or "")


def init_app(app: Flask) -> None:
    app.before_request(_refuse_duplicate_cookies)
    app.before_request(_refuse_nul)
    app.session_interface = CookieSessionInterface()
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["here"] = here
