"""The console's main paths in Debian's chromium, as an admin uses them: enter with a second
factor, register an app and sign a user into it with the secret shown once, import a CSV with
errors then fixed and watch the import job's progress page, approve from the queue while the
user waits, freeze a signed-in user, filter and export the audit log."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest

from tests.accounts.helpers import in_app
from tests.browser import Authenticator, RelyingApp, sign_in_with_password
from tests.conftest import PASSWORD, LiveProvider, free_port, serve_in_thread

pytestmark = pytest.mark.browser


def _enrol(live: LiveProvider, username: str) -> Authenticator:
    """An authenticator app enrolled through the service (its code for a past step)."""
    from datetime import timedelta

    import pyotp

    from sso.dbtypes import utcnow
    from sso.mfa import service
    from sso.users.service import find_by_login

    def enrol() -> str:
        user = find_by_login(username)
        enrolment = service.begin_enrolment(user)
        past = utcnow() - timedelta(seconds=90)
        service.confirm_enrolment(user, enrolment.id, pyotp.TOTP(enrolment.seed).at(past),
                                  origin=None, now=past)
        return str(enrolment.seed)

    return Authenticator(in_app(live.app, enrol))


@pytest.fixture
def console(live_provider: LiveProvider, browser_page: Any, make_user: Any) -> Any:
    """The demo's way in: the admin signs in with password and authenticator code at /admin."""
    make_user("admin", is_admin=True)
    phone = _enrol(live_provider, "admin")
    page = browser_page
    page.goto(f"{live_provider.url}/admin/")
    sign_in_with_password(page, "admin", PASSWORD)
    page.wait_for_url("**/mfa/verify?**")
    page.fill("#mfa-verify input[name=code]", phone.code())
    page.click("#mfa-verify button[type=submit]")
    page.wait_for_url(f"{live_provider.url}/admin/")
    assert page.locator("#admin-who").inner_text().startswith("admin")
    return page


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    running: list[Any] = []
    yield running
    for server in running:
        server.shutdown()


@pytest.fixture
def user_page(chromium: Any) -> Iterator[Any]:
    """A second browser, for the user the admin acts on."""
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


class _Registered:
    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id, self.secret = client_id, secret


def test_register_an_app_and_sign_a_user_in_with_its_secret(
        live_provider: LiveProvider, console: Any, user_page: Any, alice: Any,
        servers: list[Any]) -> None:
    origin = f"http://127.0.0.1:{free_port()}"
    page = console
    page.click("nav.admin-nav >> text=Apps")
    page.click("#app-new")
    page.fill("#name", "Console App")
    page.fill("#redirect_uris", f"{origin}/cb")
    page.check("input[name=first_party]")
    page.click("#app-register")
    client_id = page.locator("#client-id").inner_text()
    secret = page.locator("#client-secret").inner_text()
    assert secret.startswith("ssos_")

    rp = RelyingApp(live_provider.url, _Registered(client_id, secret), f"{origin}/cb")
    servers.append(serve_in_thread(rp, int(origin.rsplit(":", 1)[1])))
    user_page.goto(rp.authorize_url())
    sign_in_with_password(user_page, "alice", PASSWORD)
    assert rp.id_token_claims(rp.landed(user_page))["aud"] == client_id

    # A new secret with no overlap: the old one stops working, the new one works.
    page.click("#app-open")
    page.fill("#overlap_hours", "0")
    page.click("#app-rotate button[type=submit]")
    rp.client = _Registered(client_id, page.locator("#client-secret").inner_text())
    user_page.goto(rp.authorize_url())
    assert "id_token" in rp.tokens(rp.landed(user_page))


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["username", "email", "phone", "name"], *rows])
    return buffer.getvalue().encode()


def test_import_a_csv_with_errors_fix_it_and_import(live_provider: LiveProvider,
                                                     console: Any,
                                                     delivery_loop: Any) -> None:
    page = console
    page.click("nav.admin-nav >> text=Users")
    page.click("#user-import")
    bad = _csv([["carol", "carol@example.com", "", "Carol"],
                ["dave", "not-an-email", "", "Dave"],
                ["carol", "carol2@example.com", "", "Carol again"]])
    page.set_input_files("#file", files=[{"name": "people.csv", "mimeType": "text/csv",
                                          "buffer": bad}])
    page.click("#import-check")
    errors = page.locator("#import-errors").inner_text()
    assert "email: not a valid address" in errors and "duplicate of line 2" in errors
    assert "1 valid row(s), 2 row(s) with errors." in page.locator("#import-summary").inner_text()
    # Nothing was written by the dry run.
    page.goto(f"{live_provider.url}/admin/users?q=carol")
    assert page.locator("#users-none").is_visible()

    page.goto(f"{live_provider.url}/admin/users/import")
    fixed = _csv([["carol", "carol@example.com", "", "Carol"],
                  ["dave", "dave@example.com", "", "Dave"],
                  ["erin", "", "+8613800138000", "Erin"]])
    page.set_input_files("#file", files=[{"name": "people.csv", "mimeType": "text/csv",
                                          "buffer": fixed}])
    page.click("#import-check")
    assert "3 valid row(s), 0 row(s) with errors." in page.locator(
        "#import-summary").inner_text()
    page.click("#import-commit button")
    # The request only queued the job: the progress page shows it waiting for a worker.
    page.wait_for_url("**/admin/users/import/*")
    assert page.locator("#import-status").inner_text() == "Queued"
    assert "0 of 3 row(s) done" in page.locator("#import-progress").inner_text()
    # The process's background loop starts (in production, with the first request) and
    # writes the job; the page follows by itself and shows the outcome.
    delivery_loop()
    page.wait_for_selector("#import-users")
    assert page.locator("#import-status").inner_text() == "Done"
    assert "3 of 3 row(s) done: 3 imported, 0 failed." in page.locator(
        "#import-progress").inner_text()
    page.click("#import-users")
    table = page.locator("#users-table").inner_text()
    assert all(name in table for name in ("carol", "dave", "erin"))


@pytest.fixture
def delivery_loop(live_provider: LiveProvider) -> Iterator[Any]:
    """Starts the served app's delivery loop (its lanes, the import jobs' among them) when
    called; stops it after the test."""
    from sso import outbox

    loop = live_provider.app.extensions["sso_outbox"]
    yield loop.start
    loop.stopping.set()
    for lane in (*outbox.LANES, *outbox.TASK_LANES):
        outbox.wake(lane)
    for thread in loop.threads.values():
        thread.join(timeout=30)


@pytest.fixture
def quick_refresh(live_provider: Any) -> Iterator[None]:
    config = live_provider.app.config
    before = config["APPS_WAITING_REFRESH"]
    config["APPS_WAITING_REFRESH"] = 1
    yield
    config["APPS_WAITING_REFRESH"] = before


def test_approve_from_the_queue_and_the_waiting_user_gets_in(
        live_provider: LiveProvider, console: Any, user_page: Any, alice: Any,
        make_client: Any, servers: list[Any], quick_refresh: None) -> None:
    origin = f"http://127.0.0.1:{free_port()}"
    client = make_client("Approval App", [f"{origin}/cb"], policy={"activation": "approval"})
    rp = RelyingApp(live_provider.url, client, f"{origin}/cb")
    servers.append(serve_in_thread(rp, int(origin.rsplit(":", 1)[1])))
    user_page.goto(rp.authorize_url())
    sign_in_with_password(user_page, "alice", PASSWORD)
    user_page.wait_for_url("**/apps/waiting?**")

    page = console
    page.click("nav.admin-nav >> text=Activation queue")
    row = page.locator("#queue-apps tr", has_text="alice")
    row.locator("input[type=checkbox]").check()
    page.click("#queue-approve")
    assert "1 request(s) decided." in page.locator("#queue-done").inner_text()
    assert page.locator("#queue-apps-none").is_visible()
    # The user's waiting page reloads by itself and moves on to the app.
    assert "code" in rp.landed(user_page)


def test_freeze_a_user_and_their_session_ends(live_provider: LiveProvider, console: Any,
                                              user_page: Any, alice: Any, make_client: Any,
                                              servers: list[Any]) -> None:
    import requests

    origin = f"http://127.0.0.1:{free_port()}"
    client = make_client("CRM", [f"{origin}/cb"], client_id="crm-app")
    rp = RelyingApp(live_provider.url, client, f"{origin}/cb")
    servers.append(serve_in_thread(rp, int(origin.rsplit(":", 1)[1])))
    user_page.goto(rp.authorize_url())
    sign_in_with_password(user_page, "alice", PASSWORD)
    refresh = rp.tokens(rp.landed(user_page))["refresh_token"]

    page = console
    page.goto(f"{live_provider.url}/admin/users?q=alice")
    page.click("#users-table >> text=alice")
    sessions = page.locator("#user-sessions tbody tr")
    assert sessions.count() == 1 and "crm-app" in sessions.inner_text()
    assert "Chrome" in sessions.inner_text()
    page.click("#user-freeze button")
    assert "Account frozen" in page.locator("#admin-notice").inner_text()
    assert page.locator("#user-status").inner_text() == "disabled"
    assert page.locator("#sessions-none").is_visible()
    # The browser's session is gone, and so is the app's refresh token.
    user_page.goto(f"{live_provider.url}/")
    user_page.wait_for_url("**/login**")
    answer = requests.post(f"{live_provider.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh},
        auth=(client.client_id, client.secret), timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_filter_and_export_the_audit_log(live_provider: LiveProvider, console: Any) -> None:
    page = console
    page.click("nav.admin-nav >> text=Audit log")
    page.fill("#event", "signin")
    page.fill("#user", "admin")
    page.click("#audit-apply")
    rows = page.locator("#audit-table tbody tr")
    assert rows.count() >= 1
    assert all("signin" in text for text in rows.all_inner_texts())
    with page.expect_download() as download:
        page.click("#audit-export")
    body = download.value.path().read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(body)))
    assert exported and {row["event"] for row in exported} == {"signin"}
    # The export itself is in the log, with the admin and the filter.
    page.fill("#event", "admin.audit.export")
    page.fill("#user", "")
    page.click("#audit-apply")
    assert "admin:admin" in page.locator("#audit-table tbody").inner_text()


def test_chinese_console_in_the_browser(live_provider: LiveProvider, console: Any) -> None:
    page = console
    page.click("nav.admin-nav a[lang], header .langs a[lang=zh-CN]")
    assert "管理控制台" in page.locator("h1").inner_text()


def test_bulk_disable_edit_and_roles_on_the_users_pages(live_provider: LiveProvider,
                                                        console: Any, make_user: Any,
                                                        make_client: Any) -> None:
    from sso.users.service import define_role

    for name in ("bob", "carl", "dora"):
        make_user(name)
    make_client("ERP", ["https://erp.example.com/cb"], client_id="erp")
    in_app(live_provider.app, define_role, "erp", "clerk")
    page = console
    page.goto(f"{live_provider.url}/admin/users")
    for name in ("bob", "carl"):
        page.locator("#users-table tr", has_text=name).locator("input[type=checkbox]").check()
    page.select_option("#bulk-action", "disable")
    page.click("#bulk-apply")
    assert "2 user(s) changed." in page.locator("#admin-notice").inner_text()
    page.select_option("#status", "disabled")
    page.click("#user-search button")
    table = page.locator("#users-table").inner_text()
    assert "bob" in table and "carl" in table and "dora" not in table

    page.goto(f"{live_provider.url}/admin/users?q=dora")
    page.click("#users-table >> text=dora")
    page.fill("#user-edit #name", "Dora Explorer")
    page.click("#user-edit button")
    assert page.locator("#admin-notice").inner_text() == "Saved."
    page.select_option("#role-app", "erp")
    page.fill("#role-name", "clerk")
    page.click("#user-role-grant button")
    assert "erp: clerk" in page.locator("#user-roles").inner_text()


def test_keys_page_rotates_and_registration_tokens_are_issued(live_provider: LiveProvider,
                                                              console: Any) -> None:
    page = console
    page.click("nav.admin-nav >> text=Keys")
    before = page.locator("#keys-table tbody tr").count()
    assert page.locator("#keys-table .key-active").count() >= 1
    page.click("#keys-rotate button")
    assert page.locator("#keys-rotated").is_visible()
    assert page.locator("#keys-table tbody tr").count() > before

    page.click("nav.admin-nav >> text=Dynamic registration")
    page.fill("#label", "CI pipeline")
    page.click("#registration-issue button")
    token = page.locator("#initial-token").inner_text()
    assert token.startswith("ssoi_")
    assert "CI pipeline" in page.locator("#registration-tokens").inner_text()


def test_a_group_grants_its_role_to_a_member_in_the_token(
        live_provider: LiveProvider, console: Any, user_page: Any, alice: Any,
        make_client: Any, servers: list[Any]) -> None:
    """The admin creates a department, grants it an app role and adds a user; the user's
    page shows the role as inherited, and the app's next ID token carries it."""
    origin = f"http://127.0.0.1:{free_port()}"
    erp = make_client("ERP", [f"{origin}/cb"], client_id="erp",
                      scope="openid profile roles")

    def define() -> None:
        from sso.extensions import db
        from sso.users.service import define_role

        define_role("erp", "accountant")
        db.session.commit()

    in_app(live_provider.app, define)
    page = console
    page.click("nav.admin-nav >> text=Groups")
    page.click("#group-new")
    page.fill("#name", "finance")
    page.fill("#display_name", "Finance")
    page.click("#group-new-form button[type=submit]")
    assert page.locator("#admin-notice").inner_text() == "Group created."
    page.select_option("#role-app", "erp")
    page.fill("#role-name", "accountant")
    page.click("#group-role-grant button[type=submit]")
    assert "erp: accountant" in page.locator("#group-roles").inner_text()
    page.fill("#member-username", "alice")
    page.click("#group-member-add button[type=submit]")
    assert page.locator("#member-total").inner_text() == "1"
    page.click("#group-members >> text=alice")
    assert "inherited from group finance" in page.locator("#user-roles").inner_text()
    assert "Finance" in page.locator("#user-groups").inner_text()
    page.click("nav.admin-nav >> text=Groups")
    assert page.locator("#groups-table td.count").inner_text() == "1"

    rp = RelyingApp(live_provider.url, erp, f"{origin}/cb")
    servers.append(serve_in_thread(rp, int(origin.rsplit(":", 1)[1])))
    user_page.goto(rp.authorize_url(scope="openid profile roles"))
    sign_in_with_password(user_page, "alice", PASSWORD)
    assert rp.id_token_claims(rp.landed(user_page))["roles"] == ["accountant"]
