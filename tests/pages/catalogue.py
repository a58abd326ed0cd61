"""Every page a person can see, in every state the demo reaches: one table.

The accessibility test (``test_pages.py``) and ``make screenshots`` (``screenshots.py``) both
walk :data:`PAGES`. A new page is one more :class:`PageState` row whose ``reach`` drives a real
browser to it the way a person would (docs/pages-checklist.md says what the row must pass).

``reach`` gets a :class:`Visit`: a fresh browser profile in one language, the live provider and
a :class:`World` of users and apps made through the services for this visit. It returns the
page to check (usually ``visit.page``; the phone's page for the QR phone states).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pyotp

from tests.conftest import PASSWORD, free_port, pkce_pair, serve_in_thread

_APPS: list[str] = []
DESKTOP = {"width": 1280, "height": 800}
#: A Pixel 7's viewport.
PHONE = {"width": 412, "height": 915}
LANGUAGES = ("zh-CN", "en")


def _app_page(environ: Any, start_response: Any) -> list[bytes]:
    body = b"<!doctype html><html lang=en><title>App</title><main><h1>App</h1></main></html>"
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]


def apps_origin() -> str:
    """The apps' own web server (one per test process), where their redirect URIs point."""
    if not _APPS:
        port = free_port()
        serve_in_thread(_app_page, port)
        _APPS.append(f"http://127.0.0.1:{port}")
    return _APPS[0]


@dataclass
class World:
    """The people and apps a visit meets, made through the services (not through pages)."""

    clients: dict[str, Any] = field(default_factory=dict)
    #: username -> TOTP seed of the users enrolled in two-step verification.
    seeds: dict[str, str] = field(default_factory=dict)


def build_world(app: Any) -> World:
    """alice (password only), bob (authenticator enrolled), trainee (must change the initial
    password), newhire (invited), and one app per sign-in policy."""
    from sso.accounts.service import create_user
    from sso.apps import service as app_accounts
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.mfa import service as mfa
    from sso.oidc.clients import create_client
    from sso.users.models import UserStatus

    world = World()
    with app.app_context():
        for username in ("alice", "bob"):
            create_user(username, password=PASSWORD, email=f"{username}@example.com",
                        name=username.title(), phone="+8613800000002" if username == "bob"
                        else None)
        create_user("trainee", password=PASSWORD, email="trainee@example.com",
                    name="Trainee", must_change=True)
        create_user("newhire", email="newhire@example.com", name="New Hire",
                    status=UserStatus.INVITED)
        policies = {
            "erp": ("ERP", True, {}),
            "crm": ("CRM", False, {}),
            "payroll": ("Payroll", True, {"mfa_required": True}),
            "inventory": ("Inventory", True, {"activation": "approval"}),
            "lab": ("Lab", True, {"activation": "invite"}),
        }
        for client_id, (name, first_party, policy) in policies.items():
            client, secret = create_client(
                name, [f"{apps_origin()}/{client_id}/callback"], client_id=client_id,
                first_party=first_party, policy=policy,
                post_logout_redirect_uris=[f"{apps_origin()}/{client_id}/"],
            )
            world.clients[client_id] = {"client_id": client.client_id, "secret": secret}
        db.session.flush()
        from sso.users.service import find_by_login

        bob = find_by_login("bob")
        enrolment = mfa.begin_enrolment(bob)
        past = utcnow() - timedelta(seconds=90)
        mfa.confirm_enrolment(bob, enrolment.id, pyotp.TOTP(enrolment.seed).at(past),
                              origin=None, now=past)
        world.seeds["bob"] = enrolment.seed
        del app_accounts  # the activation policies act on first sign-in
        db.session.commit()
    return world


@dataclass
class Visit:
    """One language's walk to one page state."""

    browser: Any
    live: Any
    world: World
    locale: str
    page: Any = None
    contexts: list[Any] = field(default_factory=list)
    #: Requests for parts of a page (not the page itself) that failed: none may.
    failed_parts: list[str] = field(default_factory=list)
    #: Provider pages served with a CSP that allows inline script or style: none may.
    loose_policies: list[str] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page = self.new_page()

    @property
    def url(self) -> str:
        return str(self.live.url)

    def new_page(self, **context_options: Any) -> Any:
        context = self.browser.new_context(**{"locale": self.locale, "viewport": DESKTOP,
                                              **context_options})
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        def note(response: Any) -> None:
            request = response.request
            if response.status >= 400 and request.resource_type != "document":
                self.failed_parts.append(f"{response.status} {request.url}")
            if request.resource_type == "document" and request.url.startswith(self.url + "/"):
                policy = response.headers.get("content-security-policy", "")
                if ("script-src 'self';" not in policy or "style-src 'self';" not in policy
                        or "unsafe" in policy):
                    self.loose_policies.append(f"{request.url}: {policy!r}")

        page.on("response", note)
        return page

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()
        for context in self.contexts:
            context.close()

    # What a person does.

    def open(self, path: str, page: Any = None) -> None:
        (page or self.page).goto(self.url + path)

    def authorize(self, client_id: str, page: Any = None, **extra: str) -> None:
        """The app sends the browser to the provider; it lands on the sign-in page."""
        _verifier, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": client_id,
                  "redirect_uri": f"{apps_origin()}/{client_id}/callback",
                  "scope": "openid profile email", "state": secrets.token_urlsafe(8),
                  "code_challenge": challenge, "code_challenge_method": "S256", **extra}
        (page or self.page).goto(f"{self.url}/authorize?{urlencode(params)}")

    def sign_in(self, username: str, password: str = PASSWORD, page: Any = None) -> None:
        page = page or self.page
        page.fill("#username", username)
        page.fill("#password-field", password)
        page.click("form#password button[type=submit]")
        page.wait_for_load_state()

    def signed_in_page(self, username: str, **context_options: Any) -> Any:
        """Another browser (a phone, say) where ``username`` signed in."""
        page = self.new_page(**context_options)
        self.open("/login", page)
        self.sign_in(username, page=page)
        page.wait_for_url(f"{self.url}/")
        return page

    def code(self, username: str) -> str:
        """What the authenticator app shows now (a step later than any code used before)."""
        return str(pyotp.TOTP(self.world.seeds[username]).now())

    def with_config(self, **values: Any) -> None:
        """Change the live provider's settings for this visit only."""
        config = self.live.app.config
        before = {key: config.get(key) for key in values}
        config.update(values)
        self.cleanups.append(lambda: config.update(before))

    def in_app(self, function: Callable[[], Any]) -> Any:
        from sso.extensions import db

        with self.live.app.app_context():
            result = function()
            db.session.commit()
            return result


@dataclass(frozen=True)
class PageState:
    name: str
    reach: Callable[[Visit], Any]
    #: What a person would check on it besides the automatic checks (seen in screenshots).
    about: str = ""


# Sign-in.


def _sign_in(visit: Visit) -> Any:
    visit.authorize("erp")
    visit.page.wait_for_selector("form#password")
    return visit.page


def _sign_in_error(visit: Visit) -> Any:
    _sign_in(visit)
    visit.sign_in("alice", "not-the-password")
    visit.page.wait_for_selector("#login-error")
    return visit.page


def _sign_in_captcha(visit: Visit) -> Any:
    _sign_in(visit)
    for _attempt in range(3):
        visit.sign_in("alice", "not-the-password")
    visit.page.wait_for_selector("#captcha-image")
    return visit.page


def _captcha_alternative(visit: Visit) -> Any:
    _sign_in_captcha(visit)
    visit.page.click("#captcha-alternative")
    visit.page.wait_for_selector("#captcha-code-form")
    return visit.page


def _qr_desktop(visit: Visit) -> Any:
    _sign_in(visit)
    visit.page.click("#method-qrlogin-desktop")
    visit.page.wait_for_selector("#qr-image:not([hidden])")
    visit.page.wait_for_selector("#qr-status.message")
    return visit.page


def _qr_desktop_link(visit: Visit) -> Any:
    page = _qr_desktop(visit)
    page.click("#qr-link summary")
    page.wait_for_selector("#qr-link-text")
    return page


def _qr_id(page: Any) -> str:
    found = re.search(r"/qr/sessions/([^/]+)/", page.locator("#qr-image").get_attribute("src"))
    assert found
    return found.group(1)


def _phone(visit: Visit) -> Any:
    return visit.signed_in_page("alice", viewport=PHONE, is_mobile=True, has_touch=True)


def _qr_desktop_scanned(visit: Visit) -> Any:
    desktop = _qr_desktop(visit)
    phone = _phone(visit)
    visit.open(f"/qr/s/{_qr_id(desktop)}", phone)
    desktop.wait_for_selector("#qr-scanned:not([hidden])")
    return desktop


def _qr_phone_confirm(visit: Visit) -> Any:
    desktop = _qr_desktop(visit)
    phone = _phone(visit)
    visit.open(f"/qr/s/{_qr_id(desktop)}", phone)
    phone.wait_for_selector("#qr-approve")
    return phone


def _qr_phone_approved(visit: Visit) -> Any:
    phone = _qr_phone_confirm(visit)
    phone.click("#qr-confirm")
    phone.wait_for_selector("#qr-message")
    return phone


def _qr_phone_cancelled(visit: Visit) -> Any:
    phone = _qr_phone_confirm(visit)
    phone.click("#qr-cancel")
    phone.wait_for_selector("#qr-message")
    return phone


# Two-step verification.


def _mfa_enrol(visit: Visit) -> Any:
    visit.authorize("payroll")
    visit.sign_in("alice")
    visit.page.wait_for_selector("#mfa-enrol")
    return visit.page


def _mfa_enrol_error(visit: Visit) -> Any:
    _mfa_enrol(visit)
    visit.page.fill("#code", "000000")
    visit.page.click("#mfa-enrol button[type=submit]")
    visit.page.wait_for_selector("#mfa-error")
    return visit.page


def _recovery_codes(visit: Visit) -> Any:
    _mfa_enrol(visit)
    seed = visit.page.locator("#mfa-manual-key").inner_text().replace(" ", "")
    visit.page.fill("#code", pyotp.TOTP(seed).now())
    visit.page.click("#mfa-enrol button[type=submit]")
    visit.page.wait_for_selector("#mfa-recovery-codes")
    return visit.page


def _mfa_verify(visit: Visit) -> Any:
    visit.authorize("payroll")
    visit.sign_in("bob")
    visit.page.wait_for_selector("#mfa-verify")
    return visit.page


def _mfa_verify_error(visit: Visit) -> Any:
    _mfa_verify(visit)
    visit.page.fill("#code", "000000")
    visit.page.click("#mfa-verify button[type=submit]")
    visit.page.wait_for_selector("#mfa-error")
    return visit.page


def _mfa_already_on(visit: Visit) -> Any:
    page = visit.signed_in_page("bob")
    visit.open("/mfa/enrol", page)
    page.wait_for_selector("h1")
    return page


# After sign-in: consent, app activation.


def _consent(visit: Visit) -> Any:
    visit.authorize("crm")
    visit.sign_in("alice")
    visit.page.wait_for_selector("form.choices")
    return visit.page


def _waiting(visit: Visit) -> Any:
    visit.authorize("inventory")
    visit.sign_in("alice")
    visit.page.wait_for_selector("#waiting")
    return visit.page


def _refused(visit: Visit) -> Any:
    visit.authorize("lab")
    visit.sign_in("alice")
    visit.page.wait_for_selector("#refused")
    return visit.page


# The account.


def _account(visit: Visit) -> Any:
    page = visit.signed_in_page("alice")
    page.wait_for_selector("#mfa-account")
    return page


def _account_with_mfa(visit: Visit) -> Any:
    page = visit.signed_in_page("bob")
    page.wait_for_selector("#mfa-regenerate", state="attached")
    return page


def _change_password(visit: Visit) -> Any:
    page = visit.signed_in_page("alice")
    page.click("#change-password-link")
    page.wait_for_selector("#change-password")
    return page


def _change_password_error(visit: Visit) -> Any:
    page = _change_password(visit)
    page.fill("#current-field", PASSWORD)
    page.fill("#password-field", "short")
    page.fill("#confirm-field", "short")
    page.click("#change-password button[type=submit]")
    page.wait_for_selector("#form-errors")
    return page


def _forced_change(visit: Visit) -> Any:
    visit.authorize("erp")
    visit.sign_in("trainee")
    visit.page.wait_for_selector("#change-password")
    return visit.page


def _account_sessions(visit: Visit) -> Any:
    page = visit.signed_in_page("alice")
    page.click("#nav-sessions")
    page.wait_for_selector("#this-device")
    return page


def _account_apps(visit: Visit) -> Any:
    page = visit.signed_in_page("alice")
    visit.authorize("erp", page)  # signed in: straight back to the app
    page.wait_for_url(re.compile(re.escape(apps_origin()) + "/erp/callback"))
    visit.open("/", page)
    page.click("#nav-apps")
    page.wait_for_selector(".user-app")
    return page


def _account_activity(visit: Visit) -> Any:
    page = visit.signed_in_page("alice")
    page.click("#nav-activity")
    page.wait_for_selector("#activity")
    return page


def _account_profile(visit: Visit) -> Any:
    page = visit.signed_in_page("alice")
    page.click("#edit-profile-link")
    page.wait_for_selector("#profile")
    return page


def _account_profile_phone_code(visit: Visit) -> Any:
    page = _account_profile(visit)
    page.fill("#profile-phone", "+8613900000002")
    page.click("#phone-form button[type=submit]")
    page.wait_for_selector("#phone-sent")
    return page


def _account_profile_phone_error(visit: Visit) -> Any:
    page = _account_profile_phone_code(visit)
    page.fill("#phone-code", "12345")
    page.click("#phone-confirm button:not([name=cancel])")
    page.wait_for_selector("#phone-errors")
    return page


def _logout_confirm(visit: Visit) -> Any:
    page = visit.signed_in_page("alice")
    visit.open("/logout", page)
    page.wait_for_selector("form.choices")
    return page


def _logged_out(visit: Visit) -> Any:
    page = _logout_confirm(visit)
    page.click("form.choices button[type=submit]")
    page.wait_for_load_state()
    return page


# Activation, registration and reset.


def _link(visit: Visit, username: str, purpose: str) -> str:
    from sso.accounts import tokens
    from sso.dbtypes import utcnow
    from sso.users.service import find_by_login

    return str(visit.in_app(lambda: tokens.issue_link(find_by_login(username), purpose,
                                                      3600, utcnow())))


def _activate_link(visit: Visit) -> Any:
    visit.open("/activate/" + _link(visit, "newhire", "invite"))
    visit.page.wait_for_selector("#set-password")
    return visit.page


def _activate_link_error(visit: Visit) -> Any:
    _activate_link(visit)
    visit.page.fill("#password-field", "password")
    visit.page.fill("#confirm-field", "password")
    visit.page.click("#set-password button[type=submit]")
    visit.page.wait_for_selector("#form-errors")
    return visit.page


def _activate_code(visit: Visit) -> Any:
    visit.open("/activate/code")
    visit.page.wait_for_selector("#code-form")
    return visit.page


def _activate_again(visit: Visit) -> Any:
    visit.open("/activate/again")
    visit.page.wait_for_selector("#ask-form")
    return visit.page


def _bad_link(visit: Visit) -> Any:
    visit.open("/activate/not-a-real-link")
    visit.page.wait_for_selector("h1")
    return visit.page


def _reset_request(visit: Visit) -> Any:
    visit.open("/password/reset")
    visit.page.wait_for_selector("#ask-form")
    return visit.page


def _reset_sent(visit: Visit) -> Any:
    _reset_request(visit)
    visit.page.fill("#login-field", "alice")
    visit.page.click("#ask-form button[type=submit]")
    visit.page.wait_for_selector("p.message")
    return visit.page


def _reset_code(visit: Visit) -> Any:
    visit.open("/password/reset/code?sent=1&login=bob")
    visit.page.wait_for_selector("#code-form")
    return visit.page


def _reset_link(visit: Visit) -> Any:
    visit.open("/password/reset/" + _link(visit, "alice", "reset"))
    visit.page.wait_for_selector("#set-password")
    return visit.page


def _reset_done(visit: Visit) -> Any:
    _reset_link(visit)
    visit.page.fill("#password-field", "Another-horse-7-staple")
    visit.page.fill("#confirm-field", "Another-horse-7-staple")
    visit.page.click("#set-password button[type=submit]")
    visit.page.wait_for_selector("p.message")
    return visit.page


def _register(visit: Visit) -> Any:
    visit.with_config(SELF_REGISTRATION=True)
    visit.open("/register")
    visit.page.wait_for_selector("#register-form")
    return visit.page


def _register_confirm(visit: Visit) -> Any:
    visit.open("/register/verify/" + _link(visit, "newhire", "verify"))
    visit.page.wait_for_selector("form button[type=submit]")
    return visit.page


# Errors.


def _not_found(visit: Visit) -> Any:
    visit.open("/no/such/page")
    return visit.page


def _unknown_app(visit: Visit) -> Any:
    visit.open("/authorize?response_type=code&client_id=nobody&redirect_uri="
               "https%3A%2F%2Fevil.example%2Fcb&scope=openid")
    return visit.page


def _wrong_redirect(visit: Visit) -> Any:
    visit.open("/authorize?response_type=code&client_id=erp&redirect_uri="
               "https%3A%2F%2Fevil.example%2Fcb&scope=openid")
    return visit.page


def _bad_logout(visit: Visit) -> Any:
    visit.open("/logout?id_token_hint=not-a-token")
    return visit.page


def _expired_flow(visit: Visit) -> Any:
    visit.open("/login?flow=expired-or-foreign")
    return visit.page


def _outbox(visit: Visit) -> Any:
    from sso.accounts import lifecycle
    from sso.apps import service as app_accounts
    from sso.oidc.clients import get
    from sso.users.service import find_by_login

    def send() -> None:
        lifecycle.send_invitation(find_by_login("newhire"))
        lifecycle.request_reset("bob", "sms")
        inventory = get("inventory")
        inventory.events_endpoint = "https://inventory.example.com/sso/events"
        app_accounts.approve(find_by_login("alice"), inventory, actor="admin")

    visit.in_app(send)
    visit.open("/dev/outbox")
    visit.page.wait_for_selector(".outbox-message")
    return visit.page


# The admin console (docs/admin.md): the demo's way in, a super admin with an authenticator.

def _admin(visit: Visit, path: str = "/admin/") -> Any:
    """Sign in at ``/admin`` as a super admin (password, then the authenticator's code) and
    open ``path``; a pending activation and an app with events give the lists something."""
    def prepare() -> str:
        from sso.accounts.service import create_user
        from sso.apps import service as app_accounts
        from sso.dbtypes import utcnow
        from sso.extensions import db
        from sso.mfa import service as mfa
        from sso.oidc.clients import get
        from sso.users.service import find_by_login

        admin = create_user("admin", password=PASSWORD, email="admin@example.com",
                            name="Admin", is_admin=True)
        db.session.flush()
        enrolment = mfa.begin_enrolment(admin)
        past = utcnow() - timedelta(seconds=90)
        mfa.confirm_enrolment(admin, enrolment.id, pyotp.TOTP(enrolment.seed).at(past),
                              origin=None, now=past)
        app_accounts.on_sign_in(find_by_login("alice"), get("inventory"), interactive=True,
                                origin=None)
        return str(enrolment.seed)

    visit.world.seeds["admin"] = visit.in_app(prepare)
    visit.open("/admin/")
    visit.sign_in("admin")
    visit.page.wait_for_selector("#mfa-verify")
    visit.page.fill("#mfa-verify input[name=code]", visit.code("admin"))
    visit.page.click("#mfa-verify button[type=submit]")
    visit.page.wait_for_url(f"{visit.url}/admin/")
    if path != "/admin/":
        visit.open(path)
    return visit.page


def _admin_user(visit: Visit) -> Any:
    _admin(visit, "/admin/users")
    visit.page.locator("table a", has_text="alice").first.click()
    visit.page.wait_for_load_state()
    return visit.page


def _admin_user_new_error(visit: Visit) -> Any:
    _admin(visit, "/admin/users/new")
    visit.page.fill("input[name=username]", "alice")
    visit.page.locator("main form button[type=submit]").first.click()
    visit.page.wait_for_load_state()
    return visit.page


def _admin_app(visit: Visit) -> Any:
    return _admin(visit, "/admin/apps/erp")


def _admin_app_new_error(visit: Visit) -> Any:
    _admin(visit, "/admin/apps/new")
    visit.page.fill("input[name=name]", "Warehouse")
    visit.page.fill("textarea[name=redirect_uris]", "http://warehouse.example.com/cb#frag")
    visit.page.locator("main form button[type=submit]").first.click()
    visit.page.wait_for_load_state()
    return visit.page


def _admin_import_check(visit: Visit) -> Any:
    _admin(visit, "/admin/users/import")
    visit.page.set_input_files("input[type=file]", files=[{
        "name": "people.csv", "mimeType": "text/csv",
        "buffer": b"username,email,name\ncarol,carol@example.com,Carol\nalice,not-a-mail,Alice\n"}])
    visit.page.locator("main form button[type=submit]").first.click()
    visit.page.wait_for_load_state()
    return visit.page


def _admin_group(visit: Visit) -> Any:
    """A department with a subgroup, a member and a role in an app."""
    def prepare() -> int:
        from sso.extensions import db
        from sso.users import groups
        from sso.users.models import AppRole
        from sso.users.service import find_by_login

        finance = groups.create("finance", display_name="Finance")
        payables = groups.create("payables", display_name="Payables", parent=finance)
        role = AppRole(client_id="erp", name="accountant", description="Posts journal entries")
        db.session.add(role)
        db.session.flush()
        groups.grant(finance, role)
        groups.add_member(payables, find_by_login("alice"))
        return int(finance.id)

    group_id = visit.in_app(prepare)
    return _admin(visit, f"/admin/groups/{group_id}")


def _admin_group_new_error(visit: Visit) -> Any:
    _admin(visit, "/admin/groups/new")
    visit.page.fill("input[name=name]", "bad name!")
    visit.page.locator("main form button[type=submit]").first.click()
    visit.page.wait_for_load_state()
    return visit.page


def _admin_import_job(visit: Visit) -> Any:
    """The valid rows queued: the job's progress page (queued, as no worker runs here)."""
    _admin_import_check(visit)
    visit.page.click("#import-commit button[type=submit]")
    visit.page.wait_for_url("**/admin/users/import/*")
    return visit.page


PAGES: list[PageState] = [
    PageState("sign-in", _sign_in, "the app's name and logo, both tabs, the links below"),
    PageState("sign-in-error", _sign_in_error, "the error is read out and tied to the fields"),
    PageState("sign-in-captcha", _sign_in_captcha, "the picture and its alternative"),
    PageState("captcha-alternative", _captcha_alternative, "a code by mail or SMS instead"),
    PageState("qr-desktop", _qr_desktop, "the code, its status line, the link to type"),
    PageState("qr-desktop-link", _qr_desktop_link, "the code's address to open on the phone"),
    PageState("qr-desktop-scanned", _qr_desktop_scanned, "the code is gone once scanned"),
    PageState("qr-phone-confirm", _qr_phone_confirm, "the desktop's context, Confirm/Cancel"),
    PageState("qr-phone-approved", _qr_phone_approved),
    PageState("qr-phone-cancelled", _qr_phone_cancelled),
    PageState("mfa-enrol", _mfa_enrol, "says who asks for the second step"),
    PageState("mfa-enrol-error", _mfa_enrol_error),
    PageState("recovery-codes", _recovery_codes, "codes on one line each; copy, download, print"),
    PageState("mfa-verify", _mfa_verify, "the remember-this-device box beside its label"),
    PageState("mfa-verify-error", _mfa_verify_error),
    PageState("mfa-already-on", _mfa_already_on),
    PageState("consent", _consent, "the app's name and logo, the scopes"),
    PageState("waiting", _waiting, "checks again by itself without reloading the page"),
    PageState("refused", _refused),
    PageState("account", _account),
    PageState("account-with-mfa", _account_with_mfa),
    PageState("change-password", _change_password, "the password rules before typing"),
    PageState("change-password-error", _change_password_error),
    PageState("forced-change", _forced_change),
    PageState("logout-confirm", _logout_confirm),
    PageState("logged-out", _logged_out),
    PageState("account-sessions", _account_sessions, "this device marked; end one or all others"),
    PageState("account-apps", _account_apps, "roles, consents, offline grants"),
    PageState("account-activity", _account_activity),
    PageState("account-profile", _account_profile),
    PageState("account-profile-phone-code", _account_profile_phone_code,
              "the number the code went to; the code field, Change number and Cancel"),
    PageState("account-profile-phone-error", _account_profile_phone_error, "tries left"),
    PageState("activate-link", _activate_link),
    PageState("activate-link-error", _activate_link_error),
    PageState("activate-code", _activate_code),
    PageState("activate-again", _activate_again),
    PageState("bad-link", _bad_link),
    PageState("reset-request", _reset_request),
    PageState("reset-sent", _reset_sent),
    PageState("reset-code", _reset_code),
    PageState("reset-link", _reset_link),
    PageState("reset-done", _reset_done),
    PageState("register", _register),
    PageState("register-confirm", _register_confirm),
    PageState("error-not-found", _not_found),
    PageState("error-unknown-app", _unknown_app, "the library's description, translated"),
    PageState("error-wrong-redirect", _wrong_redirect),
    PageState("error-expired-flow", _expired_flow),
    PageState("error-bad-logout", _bad_logout, "the page's own message, translated"),
    PageState("outbox", _outbox, "mail, SMS and signed events, inside the card"),
    PageState("admin-home", _admin, "who is signed in, the console's parts"),
    PageState("admin-users", lambda visit: _admin(visit, "/admin/users"),
              "search, filters, a selection's bulk actions, paging"),
    PageState("admin-user", _admin_user, "status, roles per app, sessions, actions"),
    PageState("admin-user-new-error", _admin_user_new_error, "the form says what is wrong"),
    PageState("admin-import", lambda visit: _admin(visit, "/admin/users/import")),
    PageState("admin-import-check", _admin_import_check, "each row's error before writing"),
    PageState("admin-import-job", _admin_import_job, "rows done of all, refused rows, status"),
    PageState("admin-groups", lambda visit: _admin(visit, "/admin/groups")),
    PageState("admin-group", _admin_group, "its place in the tree, roles per app, members"),
    PageState("admin-group-new-error", _admin_group_new_error),
    PageState("admin-apps", lambda visit: _admin(visit, "/admin/apps")),
    PageState("admin-app", _admin_app, "every setting, rotate, disable, delete"),
    PageState("admin-app-new-error", _admin_app_new_error),
    PageState("admin-queue", lambda visit: _admin(visit, "/admin/queue"),
              "pending activations, approve or deny one or many"),
    PageState("admin-audit", lambda visit: _admin(visit, "/admin/audit"), "filters, paging"),
    PageState("admin-keys", lambda visit: _admin(visit, "/admin/keys")),
    PageState("admin-registration", lambda visit: _admin(visit, "/admin/registration")),
]
