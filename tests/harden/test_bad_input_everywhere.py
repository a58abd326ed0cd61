"""Every route of the provider, fed malformed input, answers without a 5xx.

The routes come from ``app.url_map``, so a route added later is walked too. Each is hit with
every HTTP method (allowed or not) and with a table of bad inputs: no parameters; junk,
oversized, duplicated, NUL and invalid-UTF-8 values in the query and the form; wrong content
types and malformed JSON; path segments too long or malformed. Each runs without a session and
with a signed-in one, with and without a valid CSRF token. Beside "no 5xx", HTML answers carry
the security headers, and JSON answers of the protocol endpoints use the specs' error codes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict
from werkzeug.routing import Rule

from sso.oidc.views import JSON_ENDPOINTS
from tests.conftest import Flow, csrf_of

ROOT = Path(__file__).parent.parent.parent
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")

#: Error codes the endpoints may answer with: RFC 6749 §5.2 and §4.1.2.1, RFC 6750 §3.1,
#: RFC 7009 §2.2.1, OIDC Core §3.1.2.6, and the QR API's own codes (its OpenAPI lists them).
SPEC_ERRORS = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "invalid_token", "insufficient_scope",
    "unsupported_token_type", "access_denied", "unsupported_response_type", "server_error",
    "temporarily_unavailable", "login_required", "consent_required", "interaction_required",
    "slow_down",
}

#: The QR phone API's own codes, as its OpenAPI description lists them.
QR_API_ERRORS = SPEC_ERRORS | {
    "wrong_number", "other_user", "step_up_required", "expired", "not_scanned", "conflict",
    "unavailable",
}

#: Parameter names the protocol endpoints read through Authlib (not visible to a grep).
PROTOCOL_PARAMS = [
    "response_type", "redirect_uri", "scope", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "max_age", "ui_locales", "login_hint", "id_token_hint",
    "post_logout_redirect_uri", "code_verifier", "refresh_token", "email", "phone",
    "new_password", "password_confirm", "response_mode", "claims", "request", "request_uri",
]

JUNK_VALUES = [
    "",
    "x" * 20000,
    "\x00",
    "a\x00b",
    "用户\u202e名",
    "-1",
    "9" * 40,
    "../../../../etc/passwd",
    "//evil.example/path",
    "javascript:alert(1)",
    "[]",
    '{"a": 1}',
]


def _param_names() -> list[str]:
    """Every parameter name the code reads, found in the sources, plus the protocol's."""
    names: set[str] = set(PROTOCOL_PARAMS)
    pattern = re.compile(r"""(?:args|form|values)(?:\.get(?:list)?\(|\[)\s*["']([a-z_]+)["']""")
    for path in (ROOT / "sso").rglob("*.py"):
        names.update(pattern.findall(path.read_text(encoding="utf-8")))
    for path in (ROOT / "templates").rglob("*.html"):
        names.update(re.findall(r'name="([a-z_]+)"', path.read_text(encoding="utf-8")))
    return sorted(names)


PARAMS = _param_names()

#: Raw query strings Werkzeug must decode: invalid UTF-8, NUL, broken escapes.
RAW_QUERIES = [
    "flow=%FF%FE&next=%C0%AF&client_id=%ED%A0%80",
    "flow=%00&code=%00&token=%00",
    "flow=%&next=%zz&=x&&&==",
]
#: Bytes that are not UTF-8, sent unescaped (a raw HTTP client can).
NOT_UTF8_QUERY = "flow=\xff\xfe&next=\xc0\xaf&client_id=\xed\xa0\x80"

#: Malformed headers: language tags, cookies, credentials, forwarding, oversized values.
JUNK_HEADERS = [
    {"Accept-Language": "zh-CN;q=abc,,;;=,en;q=2"},
    {"User-Agent": "U" * 20000, "Accept-Language": "x" * 9000},
    {"Cookie": "session=garbage.%%%.xx; lang=%FF; sso_session=" + "A" * 4000},
    {"X-Forwarded-For": "not-an-ip, ::::1", "Host": "evil.example:99999"},
    {"Authorization": "Basic " + "A" * 10000, "X-CSRF-Token": "\u00ff" * 100},
    {"Authorization": "Bearer a.b.c, Basic x", "Content-Length": "99999999999"},
]

#: Path argument values: too long, NUL, invalid UTF-8, traversal, non-ASCII.
PATH_VALUES = [
    "x" * 22, "x" * 5000, "%00", "%FF%FE", "..%2F..%2Fetc", "用户", "a.b.c", "-1", "0" * 64,
]


@dataclass
class Request:
    method: str
    query: Any = None
    data: Any = None
    content_type: str | None = None
    csrf: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    #: The query string as the server hands it to WSGI (bytes as Latin-1), not encoded.
    raw_query: str | None = None

    def describe(self) -> str:
        shown = repr(self.raw_query or self.query or self.data)[:80]
        headers = repr(self.headers)[:60] if self.headers else ""
        return f"{self.method} csrf={self.csrf} {self.content_type or ''} {shown} {headers}"


def _junk(value: str) -> dict[str, str]:
    return dict.fromkeys(PARAMS, value)


def _requests_for(methods: set[str]) -> Iterator[Request]:
    for method in METHODS:
        if method not in methods:
            yield Request(method)
            continue
        yield Request(method)
        for headers in JUNK_HEADERS:
            yield Request(method, headers=headers)
        if method == "GET":
            for value in JUNK_VALUES:
                yield Request(method, query=_junk(value))
            yield Request(method, query=[(n, v) for n in PARAMS for v in ("a", "b")])
            for raw in RAW_QUERIES:
                yield Request(method, query=raw)
            yield Request(method, raw_query=NOT_UTF8_QUERY)
            continue
        for csrf in (True, False):
            for value in JUNK_VALUES:
                yield Request(method, data=_junk(value), csrf=csrf)
            yield Request(method, data=[(n, v) for n in PARAMS for v in ("a", "b")], csrf=csrf)
        for raw in RAW_QUERIES:
            yield Request(method, query=raw, data={"x": "1"})
        yield Request(method, raw_query=NOT_UTF8_QUERY, data={"x": "1"})
        yield Request(method, data=b"\xff\xfe\x00garbage=%FF",
                      content_type="application/x-www-form-urlencoded")
        yield Request(method, data=b'{"flow": ', content_type="application/json")
        yield Request(method, data=b'{"flow": "\\u0000", "next": [1], "code": {}}',
                      content_type="application/json")
        yield Request(method, data=b"[1, 2, 3]", content_type="application/json")
        yield Request(method, data=b"\xff\xfe", content_type="application/json")
        yield Request(method, data=b"<a/>", content_type="text/xml")
        yield Request(method, data=b"--b\r\nbroken", content_type="multipart/form-data; boundary=b")
        yield Request(method, data=b"x=1", content_type="application/x-www-form-urlencoded",
                      headers={"Authorization": "Basic %%%"})
        yield Request(method, data=b"x=1", content_type="application/x-www-form-urlencoded",
                      headers={"Authorization": "Bearer " + "x" * 9000})


def _paths(rule: Rule) -> list[str]:
    """The rule's URL with its arguments set to each malformed value (one URL if none)."""
    if not rule.arguments:
        return [rule.rule]
    if "filename" in rule.arguments:
        return [rule.rule.replace("<path:filename>", v) for v in ("sso.css", "..%2F..%2Fx", "%00")]
    paths = []
    for value in PATH_VALUES:
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<(?:\w+:)?{name}>", value, path)
        paths.append(path)
    return paths


def _live_path(rule: Rule, app: Flask, http: FlaskClient, flow_id: str) -> str | None:
    """The rule's URL with a real argument (a live QR code, a real reset link), if it has one
    we can make: junk then meets the code that runs past the lookup."""
    if rule.arguments == {"qr_id"}:
        page = http.get("/qr/login", query_string={"flow": flow_id})
        made = http.post("/qr/sessions", data={"flow": flow_id},
                         headers={"X-CSRF-Token": csrf_of(page.get_data(as_text=True))})
        assert made.status_code == 201, made.get_data(as_text=True)[:200]
        return re.sub(r"<(?:\w+:)?qr_id>", made.get_json()["id"], rule.rule)
    if rule.endpoint == "accounts.reset":
        from tests.harden.test_forms_and_headers import _reset_link

        return _reset_link(app, "alice")
    return None


def _rules(app: Flask) -> list[Rule]:
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))


def _rule_ids() -> list[str]:
    """Rule ids for parametrising, read from an app built without stores (it connects to
    nothing; its folder is removed at once)."""
    import tempfile

    from sso import create_app

    with tempfile.TemporaryDirectory(prefix="sso-routes-") as folder:
        app = create_app({
            "TESTING": True, "SECRET_KEY": "x" * 64, "REDIS_URL": "redis://127.0.0.1:1/0",
            "DATABASE_URL": f"sqlite:///{folder}/routes.sqlite3", "KEYS_DIR": folder,
            "INSTANCE_PATH": folder,
        })
        return [f"{rule.endpoint}:{rule.rule}" for rule in _rules(app)]


RULE_IDS = _rule_ids()


def _signed_in(client: FlaskClient, erp: Any) -> str:
    """Sign ``client`` in as alice; return the id of a real pending flow it holds."""
    flow = Flow(client, erp)
    response = client.get("/authorize", query_string=flow.authorize_params())
    flow_id = response.headers["Location"].split("flow=")[1].split("&")[0]
    flow.login(flow_id=flow_id)
    again = client.get("/authorize", query_string=flow.authorize_params(prompt="login"))
    return str(again.headers.get("Location", "").partition("flow=")[2].split("&")[0])


def _csrf(client: FlaskClient) -> str:
    client.get("/login")
    with client.session_transaction() as session:
        return str(session.get("csrf", ""))


def _error_codes(endpoint: str) -> set[str] | None:
    """The error codes a JSON endpoint may use; None where it is the pages' own JSON."""
    if endpoint in JSON_ENDPOINTS:
        return SPEC_ERRORS
    if endpoint.startswith("qrlogin_api."):
        return QR_API_ERRORS
    return None


def _check(response: Any, request: Request, path: str, endpoint: str,
           problems: list[str]) -> None:
    where = f"{path} {request.describe()} -> {response.status_code}"
    if response.status_code >= 500 and response.status_code != 503:
        problems.append(where)
        return
    if response.mimetype == "text/event-stream":
        response.close()
        return
    if response.mimetype == "text/html":
        for header in ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
            if header not in response.headers:
                problems.append(f"{where}: no {header}")
        if "frame-ancestors 'none'" not in response.headers.get("Content-Security-Policy", ""):
            problems.append(f"{where}: no CSP frame-ancestors")
    elif response.mimetype == "application/json" and response.status_code >= 400:
        body = response.get_json(silent=True)
        allowed = _error_codes(endpoint)
        if not isinstance(body, dict) or not isinstance(body.get("error"), str) or (
                allowed is not None and body["error"] not in allowed):
            problems.append(f"{where}: error {str(body)[:120]} is not a spec error code")
        if response.status_code == 401 and "WWW-Authenticate" not in response.headers:
            problems.append(f"{where}: 401 without WWW-Authenticate")
    response.close()


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_no_route_answers_bad_input_with_a_server_error(
    app: Flask, rule_id: str, make_client: Any, make_user: Any
) -> None:
    endpoint, _, rule_text = rule_id.partition(":")
    rule = next(r for r in _rules(app) if r.endpoint == endpoint and r.rule == rule_text)
    erp = make_client("ERP")
    make_user("alice")
    problems: list[str] = []
    for signed_in in (False, True):
        http = app.test_client()
        real_flow = _signed_in(http, erp) if signed_in else ""
        token = _csrf(http)
        requests = list(_requests_for(set(rule.methods or ()) - {"HEAD", "OPTIONS"}))
        if real_flow:
            requests.append(Request("GET", query={"flow": real_flow, "next": "/"}))
            requests.append(Request("POST", data={"flow": real_flow, "code": "000000"}))
        live = _live_path(rule, app, http, real_flow) if real_flow else None
        for index, path in enumerate(([live] if live else []) + _paths(rule)):
            # The full table on the first path; the other malformed paths with every method.
            for request in requests if index == 0 else [Request(m) for m in METHODS]:
                data = request.data
                if isinstance(data, dict) and request.csrf:
                    data = {**data, "csrf_token": token}
                elif isinstance(data, list):
                    data = MultiDict([*data, ("csrf_token", token)] if request.csrf else data)
                response = http.open(
                    path, method=request.method, query_string=request.query, data=data,
                    content_type=request.content_type, headers=request.headers,
                    environ_overrides=({"QUERY_STRING": request.raw_query}
                                       if request.raw_query is not None else None),
                )
                _check(response, request, path, rule.endpoint, problems)
    assert not problems, "\n".join(problems[:40])
