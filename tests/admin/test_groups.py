"""Groups (departments): members inherit the group's roles and its parents', in tokens, MFA
role requirements and the console; the services refuse cycles and careless deletions; every
group form refuses bad input readably; ``sso groups``."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from sso.cli import cli
from tests.admin.conftest import csrf


def _remit(username: str) -> Any:
    from sso.admin import remit
    from sso.users.service import find_by_login

    return remit.of(find_by_login(username))


@pytest.fixture
def org(app: Flask, admins: dict[str, Any]) -> dict[str, Any]:
    """company > sales > sales-east, with a viewer role of app A on company and an editor
    role of app B on sales-east; a_user in sales-east, b_user in sales."""
    from sso.admin import groups
    from sso.extensions import db
    from sso.users.service import define_role

    with app.app_context():
        define_role("app-a", "editor")
        define_role("app-b", "editor")
        db.session.commit()
        groups.create(None, name="company", display_name="The company")
        groups.create(None, name="sales", parent="company")
        groups.create(None, name="sales-east", parent="sales")
        groups.change_role(None, "company", "app-a", "viewer", True)
        groups.change_role(None, "sales-east", "app-b", "editor", True)
        groups.change_member(None, "sales-east", "a_user", True)
        groups.change_member(None, "sales", "b_user", True)
        ids = {g.name: g.id for g, _count in groups.listing(None)}
    return ids


def _user(name: str) -> Any:
    from sso.users.service import find_by_login

    return find_by_login(name)


def test_members_inherit_the_roles_of_their_group_and_every_parent(
        app: Flask, org: dict[str, int]) -> None:
    from sso.extensions import db
    from sso.users import service as users

    with app.app_context():
        a_user, b_user = _user("a_user"), _user("b_user")
        assert a_user.roles_in("app-a") == ["viewer"]  # from company, two levels up
        assert a_user.roles_in("app-b") == ["editor"]  # from sales-east itself
        assert b_user.roles_in("app-a") == ["viewer"]
        assert b_user.roles_in("app-b") == []  # sales-east is below sales, not above
        # The union with direct grants: sorted, each role once.
        users.grant_role(a_user, "app-a", "editor")
        users.grant_role(a_user, "app-a", "viewer")
        db.session.commit()
        assert a_user.roles_in("app-a") == ["editor", "viewer"]
        assert _user("plain").roles_in("app-a") == []


def test_roles_in_is_one_statement(app: Flask, org: dict[str, int]) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if not statement.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(statement)

    with app.app_context():
        user = _user("a_user")
        event.listen(Engine, "before_cursor_execute", note)
        try:
            assert user.roles_in("app-a") == ["viewer"]
        finally:
            event.remove(Engine, "before_cursor_execute", note)
    assert len(seen) == 1, seen


def test_the_console_shows_direct_and_inherited_roles(
        app: Flask, org: dict[str, int], admins: dict[str, Any], as_admin: Any) -> None:
    from sso.admin import groups
    from sso.extensions import db
    from sso.users import service as users

    with app.app_context():
        users.grant_role(_user("a_user"), "app-a", "viewer")
        db.session.commit()
        rows = groups.role_sources(_remit("root"), _user("a_user"))
        assert rows == [("app-a", "viewer", None), ("app-a", "viewer", "company"),
                        ("app-b", "editor", "sales-east")]
        # An app admin of A reads only A's roles.
        assert groups.role_sources(_remit("appadmin"), _user("a_user")) == rows[:2]
    page = as_admin("root").get(f"/admin/users/{admins['ids']['a_user']}").get_data(
        as_text=True)
    assert "inherited from group company" in page and "sales-east" in page


def test_roles_read_once_are_read_again_after_any_change_to_them(
        app: Flask, org: dict[str, int]) -> None:
    """The session remembers a user's roles (a token response asks twice) only until it
    writes a role table: flushed objects, UPDATE/DELETE statements, commit or rollback."""
    from sso.extensions import db
    from sso.users import groups as store
    from sso.users.models import GroupRole

    with app.app_context():
        user = _user("plain")
        assert user.roles_in("app-a") == []
        store.add_member(store.find("sales"), user)  # flushed, not committed
        assert user.roles_in("app-a") == ["viewer"]
        db.session.add(GroupRole(group_id=org["sales"],
                                 role_id=store.find("sales-east").roles[0].id))
        assert user.roles_in("app-b") == ["editor"]  # pending: the query's autoflush writes it
        db.session.execute(db.delete(GroupRole).where(GroupRole.group_id == org["sales"]))
        assert user.roles_in("app-b") == []
        db.session.rollback()
        assert _user("plain").roles_in("app-a") == []


def test_a_cycle_is_refused(app: Flask, org: dict[str, int]) -> None:
    from sso.admin import AdminError, groups

    with app.app_context():
        for group, parent in (("company", "sales-east"), ("company", "sales"),
                              ("sales", "sales"), ("sales", "sales-east")):
            with pytest.raises(AdminError, match="under itself or one of its subgroups"):
                groups.update(None, group, parent=parent)
        assert groups.group(None, "company").parent is None
        assert groups.group(None, "sales").parent.name == "company"
        groups.update(None, "sales-east", parent="company")  # a move that is no cycle
        assert groups.group(None, "sales-east").parent.name == "company"


def test_nesting_depth_is_bounded(app: Flask, admins: dict[str, Any]) -> None:
    from sso.admin import AdminError, groups
    from sso.users.groups import MAX_DEPTH

    with app.app_context():
        groups.create(None, name="level1")
        for level in range(2, MAX_DEPTH + 1):
            groups.create(None, name=f"level{level}", parent=f"level{level - 1}")
        with pytest.raises(AdminError, match="nest at most"):
            groups.create(None, name="too-deep", parent=f"level{MAX_DEPTH}")


def test_even_a_cycle_written_past_the_service_cannot_loop_the_lookup(
        app: Flask, org: dict[str, int]) -> None:
    from sso.extensions import db
    from sso.users.models import Group

    with app.app_context():
        company = db.session.get(Group, org["company"])
        company.parent_id = org["sales-east"]  # what the service refuses
        db.session.flush()
        assert _user("b_user").roles_in("app-b") == ["editor"]  # sales reaches sales-east
        db.session.rollback()


def test_delete_refuses_members_and_subgroups_unless_told(
        app: Flask, org: dict[str, int]) -> None:
    from sso.admin import AdminError, groups
    from sso.audit import AuditEvent
    from sso.extensions import db
    from sso.users.models import GroupMember, GroupRole

    with app.app_context():
        with pytest.raises(AdminError, match="has subgroups"):
            groups.delete(None, "sales", detach_members=True)
        with pytest.raises(AdminError, match="has members"):
            groups.delete(None, "sales-east")
        assert _user("a_user").roles_in("app-b") == ["editor"]
        assert groups.delete(None, "sales-east", detach_members=True) == 1
        assert _user("a_user").roles_in("app-b") == []
        assert db.session.scalars(select(GroupMember).where(
            GroupMember.group_id == org["sales-east"])).all() == []
        assert db.session.scalars(select(GroupRole).where(
            GroupRole.group_id == org["sales-east"])).all() == []
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "admin.group.delete")).one()
        assert event.details["change"] == {"group": "sales-east", "members_detached": 1}
        assert event.details["actor"] == "cli"


def test_deleting_a_role_or_a_member_takes_their_group_rows_along(
        app: Flask, org: dict[str, int]) -> None:
    from sso.admin import service
    from sso.extensions import db
    from sso.users.models import GroupMember, GroupRole, User

    with app.app_context():
        service.delete_role("app-b", "editor")
        assert _user("a_user").roles_in("app-b") == []
        assert db.session.scalars(select(GroupRole).where(
            GroupRole.group_id == org["sales-east"])).all() == []
        db.session.delete(db.session.get(User, _user("b_user").id))
        db.session.commit()
        assert db.session.scalars(select(GroupMember).where(
            GroupMember.group_id == org["sales"])).all() == []


def test_changes_are_audited_with_admin_target_and_change(
        app: Flask, org: dict[str, int]) -> None:
    from sso.admin import groups
    from sso.audit import AuditEvent
    from sso.extensions import db

    with app.app_context():
        groups.change_role(_remit("appadmin"), org["sales"], "app-a", "editor", True)
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "admin.group.role.grant")).all()[-1]
        assert event.client_id == "app-a"
        assert event.details["actor"] == "admin:appadmin"
        assert event.details["change"] == {"group": "sales", "role": "editor"}
        groups.change_member(_remit("root"), org["sales"], "plain", True)
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "admin.group.member.add")).all()[-1]
        assert event.user_id == _user("plain").id
        assert event.details["actor"] == "admin:root"


def test_the_remit_of_each_admin(app: Flask, org: dict[str, int]) -> None:
    from sso.admin import groups
    from sso.admin.operations import OutOfRemit, ReadOnly

    with app.app_context():
        appadmin, auditor = _remit("appadmin"), _remit("auditor")
        # An app admin grants its app's roles only; another app's is not there for it.
        assert groups.change_role(appadmin, org["sales"], "app-a", "editor", True)
        with pytest.raises(OutOfRemit):
            groups.change_role(appadmin, org["sales"], "app-b", "editor", True)
        for action in (lambda: groups.change_member(appadmin, org["sales"], "a_user", True),
                       lambda: groups.create(appadmin, name="mine"),
                       lambda: groups.update(appadmin, org["sales"], display_name="X"),
                       lambda: groups.delete(appadmin, org["sales-east"], detach_members=True),
                       lambda: groups.change_role(auditor, org["sales"], "app-a", "editor",
                                                  False)):
            with pytest.raises(ReadOnly):
                action()
        # It reads the structure, and among the members only its apps' users: b_user holds
        # app A's viewer role through sales (under company), but not through warehouse.
        groups.create(None, name="warehouse")
        groups.change_member(None, "warehouse", "b_user", True)
        members, total = groups.members_visible(appadmin, groups.group(appadmin, "sales"))
        assert total == 1 and [u.username for u in members] == ["b_user"]
        groups.change_member(None, "sales", "b_user", False)
        members, total = groups.members_visible(appadmin, groups.group(appadmin, "warehouse"))
        assert total == 1 and members == []
        members, total = groups.members_visible(auditor, groups.group(auditor, "warehouse"))
        assert [u.username for u in members] == ["b_user"]


def test_an_app_admin_sees_the_users_a_group_gives_its_roles(
        app: Flask, org: dict[str, int], admins: dict[str, Any], as_admin: Any) -> None:
    from sso.admin import groups

    http = as_admin("appadmin")
    assert "plain" not in http.get("/admin/users").get_data(as_text=True)
    with app.app_context():
        groups.change_member(None, "sales", "plain", True)  # sales is under company: viewer
    assert "plain" in http.get("/admin/users").get_data(as_text=True)
    assert http.get(f"/admin/users/{admins['ids']['plain']}").status_code == 200


def test_mfa_role_requirements_count_inherited_roles(app: Flask, org: dict[str, int]) -> None:
    from datetime import UTC, datetime

    from sso import flow
    from sso.mfa import policy
    from sso.users.service import find_role

    at_app_b = flow.Request(flow_id="", started_at=datetime.now(UTC), client_id="app-b",
                            client_name="App B", scopes=("openid",))
    with app.app_context():
        policy.require_for_role(find_role("app-b", "editor"), True)
        assert policy._stored_facts(_user("a_user").id, at_app_b)[2] is True
        assert policy._stored_facts(_user("b_user").id, at_app_b)[2] is False


# The console's forms.

#: (path, form, English message, Chinese message)
BAD_FORMS: list[tuple[str, dict[str, str], str, str]] = [
    ("/admin/groups/new", {"name": "Has Spaces"}, "group name: 1-64 characters",
     "组名：1-64 个字符"),
    ("/admin/groups/new", {"name": "9lives"}, "group name: 1-64 characters",
     "组名：1-64 个字符"),
    ("/admin/groups/new", {"name": "sales"}, "a group with that name already exists",
     "已存在同名的组"),
    ("/admin/groups/new", {"name": "fresh", "parent": "nowhere"}, "no group nowhere",
     "没有组 nowhere"),
    ("/admin/groups/new", {"name": "fresh", "display_name": "x" * 129},
     "display name: at most 128 characters", "显示名称：最多 128 个字符"),
    ("/admin/groups/{company}/edit", {"name": "company", "parent": "sales-east"},
     "a group cannot be placed under itself or one of its subgroups",
     "组不能放在它自己或它的子组之下"),
    ("/admin/groups/{company}/edit", {"name": "sales"}, "a group with that name already exists",
     "已存在同名的组"),
    ("/admin/groups/{company}/edit", {"name": "company", "description": "d" * 256},
     "description: at most 255 characters", "描述：最多 255 个字符"),
    ("/admin/groups/{sales}/members", {"username": "nobody"}, "no user nobody",
     "没有用户 nobody"),
    ("/admin/groups/{sales}/members", {"username": ""}, "username: required",
     "用户名：必填"),
    ("/admin/groups/{sales}/roles", {"app": "app-a", "role": "no-such-role"},
     "app app-a has no role no-such-role", "应用 app-a 没有角色 no-such-role"),
    ("/admin/groups/{sales}/roles", {"app": "no-such-app", "role": "viewer"},
     "no app no-such-app", "没有应用 no-such-app"),
    ("/admin/groups/{sales}/delete", {"detach_members": "1"},
     "the group has subgroups; move or delete them first", "该组有子组；请先移走或删除子组"),
    ("/admin/groups/{sales-east}/delete", {},
     "the group has members; remove them first or confirm", "该组有成员；请先移除成员"),
    ("/admin/users/{a}/groups", {"group": "nowhere"}, "no group nowhere", "没有组 nowhere"),
    ("/admin/users/{a}/groups", {"group": ""}, "group: required", "组：必填"),
]


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_every_group_form_refuses_bad_input_readably(
        app: Flask, org: dict[str, int], admins: dict[str, Any], as_admin: Any,
        language: str) -> None:
    from sso.admin import groups

    ids = {**{name.replace("-", "_"): i for name, i in org.items()},
           "a": admins["ids"]["a_user"]}
    http = as_admin("root")
    token = csrf(http)
    problems = []
    for path, form, english, chinese in BAD_FORMS:
        url = path.replace("{sales-east}", "{sales_east}").format(**ids)
        answer = http.post(url, data={"csrf_token": token, **form},
                           headers={"Accept-Language": language})
        text = answer.get_data(as_text=True).replace("&#39;", "'")
        want = english if language == "en" else chinese
        if answer.status_code != 400 or want not in text:
            problems.append(f"{path} {form}: {answer.status_code}, {want!r} not shown")
    assert not problems, "\n".join(problems)
    with app.app_context():
        assert [g.name for g, _n in groups.listing(None)] == ["company", "sales", "sales-east"]
        assert groups.group(None, "company").parent is None


def test_a_form_without_csrf_changes_nothing(app: Flask, org: dict[str, int],
                                             as_admin: Any) -> None:
    from sso.admin import groups

    http = as_admin("root")
    answer = http.post(f"/admin/groups/{org['sales']}/members", data={"username": "plain"})
    assert answer.status_code == 400
    with app.app_context():
        assert [u.username for u in groups.store.members(groups.group(None, "sales"))] == [
            "b_user"]


def test_the_console_pages(app: Flask, org: dict[str, int], admins: dict[str, Any],
                           as_admin: Any) -> None:
    http = as_admin("root")
    listing = http.get("/admin/groups").get_data(as_text=True)
    assert "The company" in listing and 'href="/admin/groups"' in listing
    token = csrf(http)
    answer = http.post("/admin/groups/new", data={
        "csrf_token": token, "name": "finance", "display_name": "Finance",
        "parent": "company"})
    assert answer.status_code == 302
    finance = answer.headers["Location"].split("?")[0].rsplit("/", 1)[-1]
    assert http.post(f"/admin/groups/{finance}/roles", data={
        "csrf_token": token, "app": "app-b", "role": "viewer"}).status_code == 302
    assert http.post(f"/admin/groups/{finance}/members", data={
        "csrf_token": token, "username": "plain"}).status_code == 302
    page = http.get(f"/admin/groups/{finance}").get_data(as_text=True)
    assert "plain" in page and "app-b: <strong>viewer</strong>" in page
    assert "The company" in page  # its place in the tree
    user_page = http.get(f"/admin/users/{admins['ids']['plain']}").get_data(as_text=True)
    assert "inherited from group finance" in user_page
    # Remove from the user's page, then delete the empty group.
    assert http.post(f"/admin/users/{admins['ids']['plain']}/groups", data={
        "csrf_token": token, "group": "finance", "change": "remove"}).status_code == 302
    with app.app_context():
        assert _user("plain").roles_in("app-b") == []
    assert http.post(f"/admin/groups/{finance}/delete", data={
        "csrf_token": token}).status_code == 302
    assert http.get(f"/admin/groups/{finance}").status_code == 404


def test_sso_groups_commands(app: Flask, admins: dict[str, Any]) -> None:
    from sso.users.service import define_role

    with app.app_context():
        define_role("app-a", "editor")
        from sso.extensions import db

        db.session.commit()
    runner = app.test_cli_runner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["groups", *args])
        assert result.exit_code == 0, result.output
        return result.output

    run("create", "company", "--display-name", "The company")
    run("create", "sales", "--parent", "company", "--description", "Sells")
    assert "a_user" in run("add", "sales", "a_user", "b_user")
    run("grant", "company", "app-a", "editor")
    roles = runner.invoke(cli, ["roles", "list", "app-a"])
    assert "groups: company" in roles.output
    listing = run("list")
    assert "company" in listing and "sales" in listing and "2 member" in listing
    shown = run("show", "sales")
    assert "part of: company" in shown and "a_user" in shown
    with app.app_context():
        assert _user("b_user").roles_in("app-a") == ["editor"]
    run("remove", "sales", "b_user")
    run("revoke", "company", "app-a", "editor")
    with app.app_context():
        assert _user("a_user").roles_in("app-a") == []
    refused = runner.invoke(cli, ["groups", "delete", "sales"])
    assert refused.exit_code == 1 and "has members" in refused.output
    refused = runner.invoke(cli, ["groups", "grant", "nowhere", "app-a", "editor"])
    assert refused.exit_code == 1 and "no group 'nowhere'" in refused.output
    run("delete", "sales", "--detach-members")
    run("delete", "company")
    assert "company" not in run("list")


def test_import_joins_existing_groups_and_refuses_unknown_ones(
        app: Flask, org: dict[str, int], admins: dict[str, Any], as_admin: Any) -> None:
    from sso.admin import groups, importer, remit
    from sso.extensions import db

    data = (b"username,email,groups\n"
            b"newsales,newsales@example.com,sales; company\n"
            b"lost,lost@example.com,sales;nowhere\n"
            b"loner,loner@example.com,\n")
    with app.app_context():
        result = importer.dry_run("people.csv", data, admins["ids"]["root"])
        assert [r.username for r in result.valid] == ["newsales", "loner"]
        assert result.invalid[0].errors == ["no group 'nowhere'"]
        job = importer.enqueue(result.import_id, remit.of(_user("root")), locale="en")
        db.session.commit()
        assert importer.work(job_id=job.id) is True
        progress = importer.progress(importer.job_of(job.id, admins["ids"]["root"]))
        assert (progress["status"], progress["imported"], progress["skipped"]) == ("done", 2, 1)
        assert _user("newsales").roles_in("app-a") == ["viewer"]
        assert [g.name for g in groups.user_groups(None, _user("newsales"))] == [
            "company", "sales"]
        assert groups.user_groups(None, _user("loner")) == []
    # The dry run's page shows the row's error in the admin's language.
    http = as_admin("root")
    page = http.post("/admin/users/import", data={
        "csrf_token": csrf(http), "file": (io.BytesIO(data.replace(b"newsales", b"other")),
                                           "people.csv")},
        content_type="multipart/form-data", headers={"Accept-Language": "zh-CN"})
    assert "没有组 nowhere" in page.get_data(as_text=True)
