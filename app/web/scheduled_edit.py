"""Creating and editing schedules through the form, and the form's live preview of next runs."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from app.auth.access import requires
from app.errors import DomainError
from app.extensions import db
from app.i18n import select_timezone
from app.models import Role, ScheduledTask
from app.services import schedules
from app.web import bp
from app.web.fragments import conditional
from app.web.inputs import Page
from app.web.schedule_form import (
    TIMING_FIELDS,
    Preview,
    ScheduleForm,
    build_preview,
    in_zone,
    initial_data,
)
from app.web.scheduled import get_schedule_or_404


def _form_page(
    form: ScheduleForm,
    schedule: ScheduledTask | None,
    preview: Preview | None = None,
    status: int = 200,
) -> Page:
    form.enable_live_preview(url_for("web.scheduled_preview"))
    page = render_template(
        "tasks/scheduled/form.html",
        form=form,
        schedule=schedule,
        preview=preview,
        user_timezone=select_timezone(),
        in_zone=in_zone,
    )
    return page, status


def _submit(form: ScheduleForm, schedule: ScheduledTask | None) -> Page | Response:
    """Preview, or save and go to the schedule's page; problems are shown beside the fields."""
    if not form.validate_on_submit():
        return _form_page(form, schedule, status=422)
    if "preview" in request.form:
        return _form_page(form, schedule, build_preview(form, on_fields=True))
    values = form.values()
    try:
        saved = schedules.create(values) if schedule is None else schedules.edit(schedule, values)
    except DomainError as error:
        db.session.rollback()
        form.show_errors(error)
        return _form_page(form, schedule, status=error.http_status)
    db.session.commit()
    flash(_("%(name)s is saved.", name=saved.name), "success")
    return redirect(url_for("web.scheduled_detail", schedule_id=saved.id), 303)


@bp.route("/scheduled/new/", methods=["GET", "POST"])
@requires(Role.OPERATOR)
def scheduled_new() -> Page | Response:
    """The form for a new schedule; a valid one is saved and beat picks it up at once."""
    form = ScheduleForm()
    form.set_choices()
    if request.method == "POST":
        return _submit(form, None)
    return _form_page(form, None)


@bp.route("/scheduled/<int:schedule_id>/edit/", methods=["GET", "POST"])
@requires(Role.OPERATOR)
def scheduled_edit(schedule_id: int) -> Page | Response:
    """The form filled with a schedule; timing changes restart its timing from now."""
    schedule = get_schedule_or_404(schedule_id)
    # On POST only the posted fields count (an unchecked box is absent, i.e. False).
    form = ScheduleForm() if request.method == "POST" else ScheduleForm(data=initial_data(schedule))
    form.set_choices(schedule.task)
    if request.method == "POST":
        return _submit(form, schedule)
    return _form_page(form, schedule, build_preview(form))


@bp.get("/scheduled/preview/")
@requires(Role.OPERATOR)
def scheduled_preview() -> Response:
    """The next runs of the timing fields given in the query (a fragment; 200 with any error)."""
    form = ScheduleForm(formdata=request.args, meta={"csrf": False})
    body = render_template(
        "tasks/scheduled/_preview.html",
        preview=build_preview(form, on_fields=True),
        form=form,
        timing_fields=TIMING_FIELDS[1:],
        user_timezone=select_timezone(),
        in_zone=in_zone,
    )
    return conditional(body)
