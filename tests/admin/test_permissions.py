"""The permissions matrix: every admin route, as a super admin, an app admin of app A, an
auditor and a plain user. Out-of-remit objects answer 404 (no leak of other apps' users);
read-only admins get 403 on changes; a plain user cannot enter at all."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.admin.conftest import csrf
from tests.conftest import csrf_of

ROLES = ("root", "appadmin", "auditor", "plain")

#: (method, path, {role: status}); {a}/{b} are users in app A/B; absent roles: see DEFAULT.
ROUTES: list[tuple[str, str, dict[str, int]]] = [
    ("GET", "/admin/", {}),
    ("GET", "/admin/users", {}),
    ("GET", "/admin/users?q=a_&status=active", {}),
    ("GET", "/admin/users/export.csv", {}),
    ("GET", "/admin/users/new", {"appadmin": 403, "auditor": 403}),
    ("GET", "/admin/users/import", {"appadmin": 403, "auditor": 403}),
    ("GET", "/admin/users/import/999999", {"root": 404, "appadmin": 403, "auditor": 403}),
    ("GET", "/admin/users/import/999999/progress", {"root": 404, "appadmin": 403,
                                                    "auditor": 403}),
    ("GET", "/admin/users/{a}", {}),
    ("GET", "/admin/users/{b}", {"appadmin": 404}),
    ("GET", "/admin/users/999999", {"root": 404, "appadmin": 404, "auditor": 404}),
    ("GET", "/admin/apps", {}),
    ("GET", "/admin/apps/new", {"appadmin": 403, "auditor": 403}),
    ("GET", "/admin/apps/app-a", {}),
    ("GET", "/admin/apps/app-b", {"appadmin": 404}),
    ("GET", "/admin/apps/no-such-app", {"root": 404, "appadmin": 404, "auditor": 404}),
    ("GET", "/admin/queue", {}),
    ("GET", "/admin/audit", {}),
    ("GET", "/admin/audit/export.csv", {}),
    ("GET", "/admin/keys", {"appadmin": 404}),
    ("POST", "/admin/users/{a}/edit", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/users/{b}/edit", {"root": 302, "appadmin": 404, "auditor": 403}),
    ("POST", "/admin/users/{a}/status", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/users/{b}/status", {"root": 302, "appadmin": 404, "auditor": 403}),
    ("POST", "/admin/users/{a}/reset-password", {"root": 302, "appadmin": 403,
                                                 "auditor": 403}),
    ("POST", "/admin/users/{b}/reset-mfa", {"root": 302, "appadmin": 404, "auditor": 403}),
    ("POST", "/admin/users/{a}/roles", {"root": 302, "appadmin": 302, "auditor": 403}),
    ("POST", "/admin/users/{b}/roles?app=app-b", {"root": 302, "appadmin": 404,
                                                  "auditor": 403}),
    ("POST", "/admin/users/{a}/admin", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/users/{b}/sessions/end", {"root": 302, "appadmin": 404,
                                               "auditor": 403}),
    ("POST", "/admin/users/{b}/freeze", {"root": 302, "appadmin": 404, "auditor": 403}),
    ("POST", "/admin/users/bulk", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/users/import", {"root": 400, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/users/import/nothing", {"root": 400, "appadmin": 403, "auditor": 403}),
    # Groups (before app-a is deleted below): every admin reads the structure; the super
    # admin changes it; an app admin grants its apps' roles on a group only.
    ("GET", "/admin/groups", {}),
    ("GET", "/admin/groups/new", {"appadmin": 403, "auditor": 403}),
    ("GET", "/admin/groups/{g}", {}),
    ("GET", "/admin/groups/999999", {"root": 404, "appadmin": 404, "auditor": 404}),
    ("GET", "/admin/groups/not-a-group", {"root": 404, "appadmin": 404, "auditor": 404}),
    ("POST", "/admin/groups/new", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/groups/{g}/edit", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/groups/{g}/members", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/groups/{g}/roles", {"root": 302, "appadmin": 302, "auditor": 403}),
    ("POST", "/admin/groups/{g}/roles?app=app-b", {"root": 302, "appadmin": 404,
                                                   "auditor": 403}),
    ("POST", "/admin/groups/999999/roles", {"root": 404, "appadmin": 404, "auditor": 404}),
    ("POST", "/admin/groups/{e}/delete", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/users/{a}/groups", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/users/{b}/groups", {"root": 302, "appadmin": 404, "auditor": 403}),
    ("POST", "/admin/apps/new", {"root": 200, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/apps/app-a/settings", {"root": 302, "appadmin": 302, "auditor": 403}),
    ("POST", "/admin/apps/app-b/settings", {"root": 302, "appadmin": 404, "auditor": 403}),
    ("POST", "/admin/apps/app-a/rotate", {"root": 200, "appadmin": 200, "auditor": 403}),
    ("POST", "/admin/apps/app-b/rotate", {"root": 200, "appadmin": 404, "auditor": 403}),
    ("POST", "/admin/apps/app-b/enabled", {"root": 302, "appadmin": 404, "auditor": 403}),
    ("POST", "/admin/apps/app-a/delete", {"root": 302, "appadmin": 403, "auditor": 403}),
    ("POST", "/admin/apps/app-b/delete", {"root": 302, "appadmin": 404, "auditor": 403}),
    ("POST", "/admin/queue", {"root": 302, "appadmin": 302, "auditor": 403}),
    ("POST", "/admin/keys/rotate", {"root": 302, "appadmin": 403, "auditor": 403}),
]

#: What each form posts (the matrix is about who, the other tests about what).
FORMS = {
    "edit": {"name": "Renamed", "phone": "+8613800000000"},
    "status": {"action": "unlock"},
    "roles": {"app": "app-a", "role": "viewer"},
    "admin": {"role": "auditor"},
    "end": {"session": "all"},
    "bulk": {"action": "unlock", "user": "{a}"},
    "new": {"name": "New app", "redirect_uris": "https://new.example.com/cb",
            "grant_type": "authorization_code", "id_token_alg": "RS256",
            "activation": "auto"},
    "settings": {"activation": "approval"},
    "rotate": {"overlap_hours": "1"},
    "enabled": {"enabled": "0"},
    "delete": {"confirm": "app-a"},
    "queue": {"item": "app:app-a:{a}", "decision": "approve"},
    "members": {"username": "a_user"},
    "groups": {"group": "team"},
}

#: The group forms whose last path part a user form shares.
GROUP_FORMS = {
    "new": {"name": "new-group", "display_name": "New group"},
    "edit": {"name": "team", "display_name": "The team"},
    "delete": {},
}


def _form(path: str, ids: dict[str, int]) -> dict[str, str]:
    key = path.split("?")[0].rstrip("/").split("/")[-1]
    form = dict(FORMS.get(key, {}))
    if path.startswith("/admin/groups/") and key in GROUP_FORMS:
        form = dict(GROUP_FORMS[key])
    if path.endswith("app-b/delete"):
        form["confirm"] = "app-b"
    if "app=app-b" in path:
        form["app"] = "app-b"
    return {k: v.format(a=ids["a_user"]) for k, v in form.items()}


def _plain_csrf(http: Any) -> str:
    """A valid CSRF token for a user who has no admin page to read it from: the one on
    their own account page (tokens are bound to the SSO session)."""
    return csrf_of(http.get("/account/profile").get_data(as_text=True))


@pytest.mark.parametrize("role", ROLES)
def test_permissions_matrix(app: Flask, admins: dict[str, Any], as_admin: Any,
                            role: str) -> None:
    from sso.admin import groups
    from sso.apps import service as apps
    from sso.extensions import db
    from sso.oidc.clients import get
    from sso.users.service import find_by_login

    ids = admins["ids"]
    with app.app_context():  # one waiting request in app A for the queue
        apps.revoke(find_by_login("a_user"), get("app-a"), actor="test")
        db.session.commit()
        # A group to look at and change, and an empty one to delete.
        team = groups.create(None, name="team").id
        empty = groups.create(None, name="empty").id
    problems = []
    for method, template, expected in ROUTES:
        http = as_admin(role)  # a fresh session: an earlier change must not leak over
        path = template.format(a=ids["a_user"], b=ids["b_user"], g=team, e=empty)
        want = 403 if role == "plain" else expected.get(role, 200)
        if method == "GET":
            answer = http.get(path)
        else:
            token = csrf(http) if role != "plain" else _plain_csrf(http)
            answer = http.post(path, data={"csrf_token": token, **_form(path, ids)})
        answer.get_data()  # a streamed export ends (and leaves its context) once read
        answer.close()
        if answer.status_code != want:
            problems.append(f"{role} {method} {path}: {answer.status_code}, want {want}")
        if answer.status_code >= 500:
            problems.append(f"{role} {method} {path}: server error")
    assert not problems, "\n".join(problems)


def test_app_admin_never_sees_other_apps_users(admins: dict[str, Any], as_admin: Any) -> None:
    http = as_admin("appadmin")
    page = http.get("/admin/users").get_data(as_text=True)
    assert "a_user" in page and "b_user" not in page and "plain" not in page
    export = http.get("/admin/users/export.csv").get_data(as_text=True)
    assert "a_user" in export and "b_user" not in export
    assert "b_user" not in http.get("/admin/users?q=b").get_data(as_text=True)


def test_forged_form_without_csrf_changes_nothing(app: Flask, admins: dict[str, Any],
                                                   as_admin: Any) -> None:
    from sso.extensions import db
    from sso.users.models import User

    http = as_admin("root")
    answer = http.post(f"/admin/users/{admins['ids']['b_user']}/status",
                       data={"action": "disable"})
    assert answer.status_code == 400
    with app.app_context():
        assert db.session.get(User, admins["ids"]["b_user"]).status == "active"
