"""Users: search, page, create, edit, status, roles, sessions, import and export."""

from __future__ import annotations

from flask import jsonify, redirect, request, stream_with_context, url_for
from werkzeug.wrappers import Response

from ...i18n import current_locale
from ...i18n import gettext as _
from ...users.service import roles_of_app
from ...web import origin
from .. import AdminError, groups, importer, operations, users_query
from .. import remit as remits
from ..models import ROLES, ImportJob
from ..remit import Remit
from .access import admin_page, message, page
from .blueprint import bp


def _filter() -> users_query.UserFilter:
    return users_query.UserFilter.parse(request.args.get("q"), request.args.get("status"))


@bp.get("/users")
@admin_page
def users(remit: Remit) -> Response:
    where = _filter()
    rows, after = users_query.page(remit, where, request.args.get("after"))
    return page("admin/users.html", rows=rows, after=after, where=where,
                statuses=users_query.STATUSES, notice=request.args.get("notice"),
                refused=request.args.getlist("refused"))


@bp.post("/users/bulk")
@admin_page
def users_bulk(remit: Remit) -> Response:
    ids = [int(v) for v in request.form.getlist("user") if v.isdigit() and len(v) < 12]
    action = request.form.get("action", "")
    if not ids:
        where = _filter()
        rows, after = users_query.page(remit, where)
        return page("admin/users.html", status=400, rows=rows, after=after, where=where,
                    statuses=users_query.STATUSES, error=_("Select at least one user."))
    try:
        done, refused = operations.bulk_status(remit, ids, action, origin())
    except AdminError as error:
        where = _filter()
        rows, after = users_query.page(remit, where)
        return page("admin/users.html", status=400, rows=rows, after=after, where=where,
                    statuses=users_query.STATUSES, error=message(error))
    return redirect(url_for("admin.users",  # type: ignore[return-value]
                            notice=_("%(count)s user(s) changed.", count=done),
                            refused=refused[:20]))


@bp.get("/users/export.csv")
@admin_page
def users_export(remit: Remit) -> Response:
    operations.audit(remit, "users.export", origin=origin(), filter=vars(_filter()))
    from ...extensions import db  # noqa: PLC0415

    db.session.commit()
    body = stream_with_context(users_query.export_csv(remit, _filter()))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=users.csv"})


FIELDS = ("username", "email", "phone", "name")


@bp.route("/users/new", methods=["GET", "POST"])
@admin_page
def user_new(remit: Remit) -> Response:
    if not remit.may_change_users:
        raise operations.ReadOnly()
    values = {name: request.form.get(name, "")[:254] for name in FIELDS}
    invite_by = request.form.get("invite_by", "email")
    if request.method == "GET":
        return page("admin/user_new.html", values=values, invite_by=invite_by)
    try:
        created = operations.create_user(
            remit, username=values["username"], email=values["email"] or None,
            phone=values["phone"] or None, name=values["name"] or None, invite_by=invite_by,
            password=request.form.get("password") or None, origin=origin(),
            locale=current_locale())
    except AdminError as error:
        return page("admin/user_new.html", status=400, values=values, invite_by=invite_by,
                    error=message(error))
    return redirect(url_for("admin.user", user_id=created.id,  # type: ignore[return-value]
                            notice=_("User created.")))


def _user_page(remit: Remit, user_id: str, status: int = 200, **context: object) -> Response:
    found = operations.user(remit, user_id)
    apps = operations.visible_clients(remit)
    changeable = [c for c in apps if remit.may_change_app(c.client_id)]
    live = operations.sessions_of(remit, user_id)
    reached = {sid: [c for c in found_apps if remit.may_read_app(c)]
               for sid, found_apps in operations.apps_reached(live).items()}
    return page("admin/user.html", status=status, user=found, reached=reached,
                device_of=operations.device_of,
                roles=groups.role_sources(remit, found),
                groups=groups.user_groups(remit, found),
                group_names=groups.names() if remit.super_admin else [],
                accounts=operations.app_accounts_visible(remit, found),
                sessions=live,
                grants=remits.grants_of(found.id) if remit.reads_everything else [],
                apps=changeable, app_roles={c.client_id: [r.name for r in roles_of_app(
                    c.client_id)] for c in changeable}, admin_roles=ROLES,
                notice=request.args.get("notice"), **context)


@bp.get("/users/<user_id>")
@admin_page
def user(remit: Remit, user_id: str) -> Response:
    return _user_page(remit, user_id)


def _act(remit: Remit, user_id: str, done: str, action: object) -> Response:
    try:
        action()  # type: ignore[operator]
    except AdminError as error:
        return _user_page(remit, user_id, status=400, error=message(error))
    return redirect(url_for("admin.user", user_id=user_id,  # type: ignore[return-value]
                            notice=done))


@bp.post("/users/<user_id>/edit")
@admin_page
def user_edit(remit: Remit, user_id: str) -> Response:
    return _act(remit, user_id, _("Saved."), lambda: operations.edit_user(
        remit, user_id, name=request.form.get("name"), email=request.form.get("email"),
        phone=request.form.get("phone"), origin=origin()))


@bp.post("/users/<user_id>/status")
@admin_page
def user_status(remit: Remit, user_id: str) -> Response:
    return _act(remit, user_id, _("Saved."), lambda: operations.set_status(
        remit, user_id, request.form.get("action", ""), origin()))


@bp.post("/users/<user_id>/reset-password")
@admin_page
def user_reset_password(remit: Remit, user_id: str) -> Response:
    return _act(remit, user_id, _("A password reset link was sent."),
                lambda: operations.send_reset_link(remit, user_id, origin()))


@bp.post("/users/<user_id>/reset-mfa")
@admin_page
def user_reset_mfa(remit: Remit, user_id: str) -> Response:
    return _act(remit, user_id, _("Two-step verification was reset; the user's sessions "
                                  "ended."),
                lambda: operations.reset_mfa(remit, user_id, origin()))


@bp.post("/users/<user_id>/roles")
@admin_page
def user_roles(remit: Remit, user_id: str) -> Response:
    client_id = request.form.get("app", "")[:64]
    role = request.form.get("role", "")[:64]
    grant = request.form.get("change") != "revoke"
    return _act(remit, user_id, _("Saved."), lambda: operations.change_role(
        remit, user_id, client_id, role, grant, origin()))


@bp.post("/users/<user_id>/admin")
@admin_page
def user_admin_grant(remit: Remit, user_id: str) -> Response:
    return _act(remit, user_id, _("Saved."), lambda: operations.change_admin_grant(
        remit, user_id, request.form.get("role", "")[:16], request.form.get("app") or None,
        request.form.get("change") != "revoke", origin()))


@bp.post("/users/<user_id>/sessions/end")
@admin_page
def user_session_end(remit: Remit, user_id: str) -> Response:
    session_id = request.form.get("session", "")
    if session_id == "all":
        return _act(remit, user_id, _("Every session ended."),
                    lambda: operations.end_all_sessions(remit, user_id, origin()))
    return _act(remit, user_id, _("The session ended."),
                lambda: operations.end_session(remit, user_id, session_id, origin()))


@bp.post("/users/<user_id>/freeze")
@admin_page
def user_freeze(remit: Remit, user_id: str) -> Response:
    return _act(remit, user_id, _("Account frozen: disabled, sessions ended, app access "
                                  "revoked."),
                lambda: operations.freeze(remit, user_id, origin()))


# Import.


@bp.get("/users/import")
@admin_page
def users_import(remit: Remit) -> Response:
    if not remit.may_change_users:
        raise operations.ReadOnly()
    return page("admin/import.html")


@bp.post("/users/import")
@admin_page
def users_import_check(remit: Remit) -> Response:
    if not remit.may_change_users:
        raise operations.ReadOnly()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return page("admin/import.html", status=400, error=_("Choose a CSV or XLSX file."))
    try:
        result = importer.dry_run(upload.filename, upload.read(importer.MAX_BYTES + 1),
                                  remit.user_id)
    except AdminError as error:
        return page("admin/import.html", status=400, error=message(error))
    return page("admin/import.html", result=result)


@bp.post("/users/import/<import_id>")
@admin_page
def users_import_commit(remit: Remit, import_id: str) -> Response:
    """Queue the valid rows and answer at once: a background worker writes them."""
    from ...extensions import db  # noqa: PLC0415

    if not remit.may_change_users:
        raise operations.ReadOnly()
    try:
        job = importer.enqueue(import_id, remit, locale=current_locale())
        operations.audit(remit, "users.import_queued", origin=origin(), job=job.id,
                         file=job.filename, rows=job.total, skipped=job.skipped)
        db.session.commit()
    except AdminError as error:
        db.session.rollback()
        return page("admin/import.html", status=400, error=message(error))
    importer.wake()
    return redirect(url_for("admin.users_import_job",  # type: ignore[return-value]
                            job_id=job.id))


def _job(remit: Remit, job_id: int) -> ImportJob:
    if not remit.may_change_users:
        raise operations.ReadOnly()
    job = importer.job_of(job_id, remit.user_id)
    if job is None:
        raise operations.OutOfRemit()
    return job


@bp.get("/users/import/<int:job_id>")
@admin_page
def users_import_job(remit: Remit, job_id: int) -> Response:
    job = _job(remit, job_id)
    return page("admin/import_job.html", job=job, state=importer.progress(job))


@bp.get("/users/import/<int:job_id>/progress")
@admin_page
def users_import_progress(remit: Remit, job_id: int) -> Response:
    state = importer.progress(_job(remit, job_id))
    return jsonify({**state, "summary": _("%(done)s of %(total)s row(s) done: %(imported)s "
                                          "imported, %(failed)s failed.", **state),
                    "status_text": _status_text(state["status"])})


def _status_text(status: str) -> str:
    return {importer.QUEUED: _("Queued"), importer.RUNNING: _("Running"),
            importer.DONE: _("Done"), importer.FAILED: _("Failed")}.get(status, status)
