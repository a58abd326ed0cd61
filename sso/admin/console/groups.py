"""Groups (departments): list, create, a group's members, roles and parent, delete."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from ...i18n import gettext as _
from ...users.service import roles_of_app
from ...web import origin
from .. import AdminError, operations
from .. import groups as service
from ..remit import Remit
from .access import admin_page, message, page
from .blueprint import bp

FIELDS = ("name", "display_name", "description", "parent")


def _values() -> dict[str, str]:
    return {name: request.form.get(name, "")[:300] for name in FIELDS}


@bp.get("/groups")
@admin_page
def groups(remit: Remit) -> Response:
    return page("admin/groups.html", rows=service.listing(remit),
                notice=request.args.get("notice"))


@bp.route("/groups/new", methods=["GET", "POST"])
@admin_page
def group_new(remit: Remit) -> Response:
    if not remit.super_admin:
        raise operations.ReadOnly()
    values = _values()
    if request.method == "GET":
        return page("admin/group_new.html", values=values, parents=service.names())
    try:
        created = service.create(remit, name=values["name"],
                                 display_name=values["display_name"],
                                 description=values["description"], parent=values["parent"],
                                 origin=origin())
    except AdminError as error:
        return page("admin/group_new.html", status=400, values=values,
                    parents=service.names(), error=message(error))
    return redirect(url_for("admin.group", group_id=created.id,  # type: ignore[return-value]
                            notice=_("Group created.")))


def _group_page(remit: Remit, group_id: str, status: int = 200, **context: Any) -> Response:
    found = service.group(remit, group_id)
    shown, total = service.members_visible(remit, found)
    apps = [c for c in operations.visible_clients(remit) if remit.may_change_app(c.client_id)]
    return page("admin/group.html", status=status, group=found, members=shown,
                member_total=total, roles=service.roles_visible(remit, found),
                ancestors=service.store.ancestors(found),
                subgroups=service.store.children(found),
                parents=[n for n in service.names() if n != found.name], apps=apps,
                app_roles={c.client_id: [r.name for r in roles_of_app(c.client_id)]
                           for c in apps},
                notice=request.args.get("notice"), **context)


@bp.get("/groups/<group_id>")
@admin_page
def group(remit: Remit, group_id: str) -> Response:
    return _group_page(remit, group_id)


def _act(remit: Remit, group_id: str, done: str, action: Any) -> Response:
    try:
        action()
    except AdminError as error:
        return _group_page(remit, group_id, status=400, error=message(error))
    return redirect(url_for("admin.group", group_id=group_id,  # type: ignore[return-value]
                            notice=done))


@bp.post("/groups/<group_id>/edit")
@admin_page
def group_edit(remit: Remit, group_id: str) -> Response:
    values = _values()
    return _act(remit, group_id, _("Saved."), lambda: service.update(
        remit, group_id, name=values["name"], display_name=values["display_name"],
        description=values["description"], parent=values["parent"], origin=origin()))


@bp.post("/groups/<group_id>/members")
@admin_page
def group_members(remit: Remit, group_id: str) -> Response:
    login = request.form.get("username", "")[:254]
    add = request.form.get("change") != "remove"
    return _act(remit, group_id, _("Saved."), lambda: service.change_member(
        remit, group_id, login, add, origin()))


@bp.post("/groups/<group_id>/roles")
@admin_page
def group_roles(remit: Remit, group_id: str) -> Response:
    client_id = request.form.get("app", "")[:64]
    role = request.form.get("role", "")[:64]
    grant = request.form.get("change") != "revoke"
    return _act(remit, group_id, _("Saved."), lambda: service.change_role(
        remit, group_id, client_id, role, grant, origin()))


@bp.post("/groups/<group_id>/delete")
@admin_page
def group_delete(remit: Remit, group_id: str) -> Response:
    detach = request.form.get("detach_members") == "1"
    try:
        service.delete(remit, group_id, detach_members=detach, origin=origin())
    except AdminError as error:
        return _group_page(remit, group_id, status=400, error=message(error))
    return redirect(url_for("admin.groups",  # type: ignore[return-value]
                            notice=_("Group deleted.")))


@bp.post("/users/<user_id>/groups")
@admin_page
def user_groups(remit: Remit, user_id: str) -> Response:
    from .users import _act as user_act  # noqa: PLC0415

    ref = request.form.get("group", "")[:64]
    add = request.form.get("change") != "remove"
    return user_act(remit, user_id, _("Saved."), lambda: service.change_user_group(
        remit, user_id, ref, add, origin()))
