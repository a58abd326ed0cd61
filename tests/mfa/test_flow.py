"""Two-step verification inside the sign-in flow, driven through the test client."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pyotp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from sso.cli import cli
from tests.conftest import PASSWORD, Flow, csrf_of, query_of

LOA2 = "urn:sso:loa:2"
LOA1 = "urn:sso:loa:1"


class Driver:
    """Follows the flow like a browser, answering the pages it meets."""

    def __init__(self, flow: Flow, code: Any = None, username: str = "alice") -> None:
        self.flow = flow
        self.username = username
        #: Called with the seed (or None) to get the code to type.
        self.code = code
        self.pages: list[str] = []
        self.seed: str | None = None
        self.recovery_codes: list[str] = []
        self.remember = False

    def run(self, **overrides: Any) -> dict[str, str]:
        flow = self.flow
        flow.params = flow.authorize_params(**overrides)
        response = flow.http.get("/authorize", query_string=flow.params)
        for _ in range(10):
            assert response.status_code == 302, response.get_data(as_text=True)[:800]
            location = response.headers["Location"]
            if location.startswith(flow.params["redirect_uri"]):
                return query_of(location)
            path = location.split("?")[0]
            if path != "/authorize/resume":
                self.pages.append(path)
            if path == "/login":
                response = flow.login(self.username, PASSWORD, query_of(location)["flow"])
            elif path == "/mfa/enrol":
                response = self.enrol(location)
            elif path == "/mfa/verify":
                response = self.verify(location)
            else:
                response = flow.http.get(location)
        raise AssertionError("the flow did not come back to the app")

    def until_verify(self, **overrides: Any) -> str:
        """Sign in with the password and stop at the verify page; return its location."""
        flow = self.flow
        flow.params = flow.authorize_params(**overrides)
        response = flow.http.get("/authorize", query_string=flow.params)
        for _ in range(5):
            location = response.headers["Location"]
            if location.startswith("/mfa/verify"):
                return str(location)
            if location.startswith("/login"):
                response = flow.login(self.username, PASSWORD, query_of(location)["flow"])
            else:
                response = flow.http.get(location)
        raise AssertionError("the flow did not ask for a code")

    def enrol(self, location: str) -> Any:
        page = self.flow.http.get(location)
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and "<svg" in text
        self.seed = re.search(r'id="mfa-manual-key">([A-Z2-7 ]+)<', text).group(1).replace(" ",
                                                                                          "")
        form = {
            "csrf_token": csrf_of(text), "flow": query_of(location).get("flow", ""),
            "next": query_of(location).get("next", ""),
            "enrolment": re.search(r'name="enrolment" value="([^"]+)"', text).group(1),
            "code": pyotp.TOTP(self.seed).now(),
        }
        done = self.flow.http.post("/mfa/enrol", data=form)
        body = done.get_data(as_text=True)
        assert done.status_code == 200, body[:500]
        self.recovery_codes = re.findall(r"<li><code>([a-z2-7-]{19})</code></li>", body)
        continue_url = html.unescape(re.search(r'href="([^"]+)" id="mfa-continue"', body)
                                     .group(1))
        return self.flow.http.get(continue_url)

    def verify(self, location: str) -> Any:
        page = self.flow.http.get(location)
        if page.status_code == 302:  # a remembered device answered
            return page
        text = page.get_data(as_text=True)
        self.last_page = text
        assert page.status_code == 200 and 'id="mfa-verify"' in text
        form = {"csrf_token": csrf_of(text), "flow": query_of(location).get("flow", ""),
                "next": query_of(location).get("next", ""),
                "remember": query_of(location).get("remember", "0"), "code": self.code()}
        if self.remember:
            form["remember_device"] = "1"
        return self.flow.http.post("/mfa/verify", data=form)


def claims_of(flow: Flow, result: dict[str, str]) -> dict[str, Any]:
    body = flow.token(result["code"]).get_json()
    jwks = KeySet.import_key_set(flow.http.get("/jwks.json").get_json())
    return jwt.decode(body["id_token"], jwks, algorithms=["RS256"]).claims


@pytest.fixture
def mfa_app(make_client: Any) -> Any:
    return make_client("Payroll", redirect_uris=["https://payroll.example.com/cb"],
                       policy={"mfa_required": True})


def test_user_without_mfa_is_led_through_enrolment_in_the_flow(client: Any, alice: Any,
                                                               mfa_app: Any) -> None:
    driver = Driver(Flow(client, mfa_app))
    result = driver.run()
    assert driver.pages == ["/login", "/mfa/enrol"]
    assert len(driver.recovery_codes) == 10
    claims = claims_of(driver.flow, result)
    assert claims["acr"] == LOA2
    assert set(claims["amr"]) == {"pwd", "otp", "mfa"}


def test_app_without_requirement_skips_mfa(flow: Flow) -> None:
    driver = Driver(flow)
    result = driver.run()
    assert driver.pages == ["/login"]
    assert claims_of(flow, result)["amr"] == ["pwd"]


def test_enrolled_user_is_asked_everywhere(flow: Flow, enrol: Any) -> None:
    enrolled = enrol("alice")
    driver = Driver(flow, lambda: enrolled.code())
    result = driver.run()
    assert driver.pages == ["/login", "/mfa/verify"]
    assert claims_of(flow, result)["acr"] == LOA2
    # The second app in the same SSO session does not ask again.
    again = Driver(flow)
    again.run()
    assert again.pages == []


def test_acr_values_asks_for_the_second_factor(flow: Flow, enrol: Any, client: Any,
                                               make_user: Any) -> None:
    make_user("bob")
    Driver(flow).run()  # alice signs in with a password only
    client.delete_cookie("sso_session")
    enrolled = enrol("bob")
    driver = Driver(flow, lambda: enrolled.code(), username="bob")
    result = driver.run(acr_values=LOA2)
    assert driver.pages == ["/login", "/mfa/verify"]
    claims = claims_of(flow, result)
    assert claims["acr"] == LOA2 and "otp" in claims["amr"]


def test_acr_values_on_a_password_session_steps_up(flow: Flow, enrol: Any, client: Any,
                                                   alice: Any) -> None:
    Driver(flow).run()
    enrolled = enrol("alice")
    driver = Driver(flow, lambda: enrolled.code())
    claims = claims_of(flow, driver.run(acr_values=f"urn:example:gold {LOA2}"))
    assert driver.pages == ["/mfa/verify"]
    assert claims["acr"] == LOA2 and set(claims["amr"]) == {"pwd", "otp", "mfa"}


def test_unknown_acr_values_are_ignored_and_acr_tells_the_truth(flow: Flow) -> None:
    driver = Driver(flow)
    claims = claims_of(flow, driver.run(acr_values="urn:example:gold silver"))
    assert driver.pages == ["/login"]
    assert claims["acr"] == LOA1


def test_discovery_advertises_the_acr_values(client: Any) -> None:
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert metadata["acr_values_supported"] == [LOA1, LOA2]


def test_wrong_code_shows_an_error_then_the_right_one_passes(flow: Flow, enrol: Any) -> None:
    enrolled = enrol("alice")
    codes = iter(["000000" if enrolled.code() != "000000" else "111111", enrolled.code()])
    driver = Driver(flow, lambda: next(codes))
    location = driver.until_verify()
    wrong = driver.verify(location)
    assert wrong.status_code == 200
    assert "That code is not correct" in wrong.get_data(as_text=True)
    right = driver.verify(location)
    assert right.status_code == 302


@pytest.mark.parametrize("entry", ["12 34", "abcdefgh", "<script>", "9" * 300])
def test_malformed_code_is_a_readable_error(flow: Flow, enrol: Any, entry: str) -> None:
    enrol("alice")
    driver = Driver(flow, lambda: entry)
    page = driver.verify(driver.until_verify())
    assert page.status_code == 200
    assert "Enter the 6-digit code" in page.get_data(as_text=True)


def test_replayed_code_in_a_new_session_is_refused(flow: Flow, enrol: Any,
                                                   client: Any) -> None:
    enrolled = enrol("alice")
    code = enrolled.code()
    Driver(flow, lambda: code).run()
    client.delete_cookie("sso_session")
    driver = Driver(flow, lambda: code)
    page = driver.verify(driver.until_verify())
    assert "already been used" in page.get_data(as_text=True)


def test_recovery_code_signs_in_once(flow: Flow, enrol: Any, client: Any) -> None:
    enrolled = enrol("alice")
    code = enrolled.recovery_codes[3]
    claims = claims_of(flow, Driver(flow, lambda: code).run())
    assert "otp" in claims["amr"]
    client.delete_cookie("sso_session")
    again = Driver(flow, lambda: code)
    page = again.verify(again.until_verify())
    assert "recovery code has already been used" in page.get_data(as_text=True)


@pytest.mark.parametrize("demand", [{"prompt": "login"}, {"max_age": "0"}])
def test_prompt_login_and_max_age_ask_the_second_factor_again(
        flow: Flow, enrol: Any, demand: dict[str, str]) -> None:
    enrolled = enrol("alice")
    Driver(flow, lambda: enrolled.code()).run()
    driver = Driver(flow, lambda: enrolled.code(1))
    claims = claims_of(flow, driver.run(**demand))
    assert driver.pages == ["/login", "/mfa/verify"]
    assert claims["acr"] == LOA2


def test_prompt_none_answers_interaction_required(client: Any, alice: Any,
                                                  mfa_app: Any, erp: Any) -> None:
    Driver(Flow(client, erp)).run()
    flow = Flow(client, mfa_app)
    flow.params = flow.authorize_params(prompt="none")
    response = client.get("/authorize", query_string=flow.params)
    assert query_of(response.headers["Location"])["error"] == "interaction_required"


def test_admins_need_mfa_by_default(client: Any, make_user: Any, erp: Any) -> None:
    make_user("root", is_admin=True)
    driver = Driver(Flow(client, erp), username="root")
    driver.run()
    assert driver.pages == ["/login", "/mfa/enrol"]


def test_role_requirement(app: Any, client: Any, alice: Any, erp: Any, runner: Any) -> None:
    runner.invoke(cli, ["roles", "define", erp.client_id, "payroll-admin"])
    runner.invoke(cli, ["roles", "grant", "alice", erp.client_id, "payroll-admin"])
    result = runner.invoke(cli, ["roles", "require-mfa", erp.client_id, "payroll-admin"])
    assert result.exit_code == 0, result.output
    driver = Driver(Flow(client, erp))
    driver.run()
    assert driver.pages == ["/login", "/mfa/enrol"]


def test_user_requirement(client: Any, alice: Any, erp: Any, runner: Any) -> None:
    assert runner.invoke(cli, ["users", "require-mfa", "alice"]).exit_code == 0
    driver = Driver(Flow(client, erp))
    driver.run()
    assert driver.pages == ["/login", "/mfa/enrol"]


def test_remembered_device_skips_the_code(flow: Flow, enrol: Any, client: Any) -> None:
    enrolled = enrol("alice")
    first = Driver(flow, lambda: enrolled.code())
    first.remember = True
    first.run()
    session_cookie = client.get_cookie("sso_session")
    client.delete_cookie("sso_session")
    assert client.get_cookie("sso_mfa_device") is not None and session_cookie is not None
    second = Driver(flow, lambda: pytest.fail("the code was asked for"))
    claims = claims_of(flow, second.run())
    assert second.pages == ["/login", "/mfa/verify"]
    # The device stood in for the code; the token does not claim a code was entered.
    assert claims["amr"] == ["pwd"] and claims["acr"] == LOA1
    # An explicit demand for a second factor is not met by a remembered device.
    third = Driver(flow, lambda: enrolled.code(1))
    claims = claims_of(flow, third.run(acr_values=LOA2))
    assert third.pages == ["/mfa/verify"] and claims["acr"] == LOA2


def test_app_can_refuse_remembered_devices(client: Any, alice: Any, enrol: Any,
                                           make_client: Any, runner: Any) -> None:
    strict = make_client("Treasury", redirect_uris=["https://treasury.example.com/cb"])
    result = runner.invoke(cli, ["clients", "set-mfa", strict.client_id, "--required",
                                 "--no-remember-device"])
    assert result.exit_code == 0 and '"remember_device": false' in result.output
    enrolled = enrol("alice")
    flow = Flow(client, strict)
    first = Driver(flow, lambda: enrolled.code())
    first.remember = True
    first.run()
    # The page offered no "remember" option, and a forged one is not honoured.
    assert 'name="remember_device"' not in first.last_page
    assert client.get_cookie("sso_mfa_device") is None


def test_next_instead_of_flow(client: Any, flow: Flow, enrol: Any) -> None:
    Driver(flow).run()
    enrolled = enrol("alice")
    page = client.get("/mfa/verify?next=/qr/s/abc%3Fx%3D1")
    form = {"csrf_token": csrf_of(page.get_data(as_text=True)), "next": "/qr/s/abc?x=1",
            "code": enrolled.code()}
    done = client.post("/mfa/verify", data=form)
    assert done.status_code == 302 and done.headers["Location"] == "/qr/s/abc?x=1"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/\\evil.example", "javascript:alert(1)", "x"])
def test_next_must_stay_on_this_site(client: Any, flow: Flow, target: str) -> None:
    Driver(flow).run()
    page = client.get("/mfa/verify", query_string={"next": target})
    assert page.status_code == 400
    assert "does not lead back" in page.get_data(as_text=True)


def test_enrol_with_next_returns_there(client: Any, flow: Flow) -> None:
    Driver(flow).run()
    driver = Driver(flow)
    response = driver.enrol("/mfa/enrol?next=/account-x")
    assert response.request.path == "/account-x"
    assert len(driver.recovery_codes) == 10


def test_pages_need_a_session_and_csrf(client: Any, flow: Flow, enrol: Any) -> None:
    assert client.get("/mfa/verify").headers["Location"].startswith("/login")
    assert client.get("/mfa/enrol").headers["Location"].startswith("/login")
    Driver(flow).run()
    assert client.post("/mfa/verify", data={"code": "123456"}).status_code == 400


def test_wrong_enrolment_code_then_racing_tab(client: Any, flow: Flow) -> None:
    Driver(flow).run()
    tab_one = client.get("/mfa/enrol").get_data(as_text=True)
    tab_two = client.get("/mfa/enrol").get_data(as_text=True)

    def form(text: str, code: str) -> dict[str, str]:
        return {"csrf_token": csrf_of(text),
                "enrolment": re.search(r'name="enrolment" value="([^"]+)"', text).group(1),
                "code": code}

    def seed(text: str) -> str:
        return re.search(r'id="mfa-manual-key">([A-Z2-7 ]+)<', text).group(1).replace(" ", "")

    wrong = pyotp.TOTP(seed(tab_one)).at(time.time() + 600)
    page = client.post("/mfa/enrol", data=form(tab_one, wrong))
    assert page.status_code == 200 and "That code is not correct" in page.get_data(as_text=True)
    assert client.post("/mfa/enrol", data=form(tab_two, pyotp.TOTP(seed(tab_two)).now())
                       ).status_code == 200
    # The second factor stepped the session up, which rotates the CSRF token: the tab left
    # open says its form expired, and tab two's authenticator stays the one.
    late = client.post("/mfa/enrol", data=form(tab_one, pyotp.TOTP(seed(tab_one)).now()))
    assert late.status_code == 400
    assert "form expired" in late.get_data(as_text=True)
    fresh = client.get("/mfa/enrol")
    assert "already" in fresh.get_data(as_text=True)


def test_expired_enrolment_shows_a_new_code(client: Any, flow: Flow) -> None:
    Driver(flow).run()
    text = client.get("/mfa/enrol").get_data(as_text=True)
    page = client.post("/mfa/enrol", data={"csrf_token": csrf_of(text),
                                           "enrolment": "gone", "code": "123456"})
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "This setup has expired" in body and "<svg" in body


def test_pages_in_chinese(client: Any, flow: Flow, enrol: Any) -> None:
    Driver(flow).run()
    page = client.get("/mfa/enrol", headers={"Accept-Language": "zh-CN"})
    assert "两步验证" in page.get_data(as_text=True)


def test_expired_verification_window(flow: Flow, enrol: Any) -> None:
    enrolled = enrol("alice")
    stale = pyotp.TOTP(enrolled.seed).at(time.time() - 180)
    driver = Driver(flow, lambda: stale)
    page = driver.verify(driver.until_verify())
    assert "That code is not correct" in page.get_data(as_text=True)


def test_messages_picked_by_key_are_translated() -> None:
    from sso import i18n
    from sso.mfa.views import ACCOUNT_NOTICES, CODE_ERRORS

    i18n._load()
    catalog = i18n._catalogs["zh-CN"]
    missing = [m for m in [*CODE_ERRORS.values(), *ACCOUNT_NOTICES.values()] if m not in catalog]
    assert not missing


def test_verify_page_sends_a_user_without_authenticator_to_enrolment(client: Any,
                                                                     flow: Flow) -> None:
    Driver(flow).run()
    assert client.get("/mfa/verify?next=/x").headers["Location"] == "/mfa/enrol?next=/x"
    assert client.get("/mfa/verify").headers["Location"] == "/mfa/enrol"
    assert client.get("/mfa/verify?flow=unknown").status_code == 400
