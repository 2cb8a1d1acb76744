"""Catalogue pages: task types (descriptions in every language, roll-up counts), sources and
their variables (create, edit, deactivate, delete when nothing refers to them)."""

from __future__ import annotations

from flask import render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from app.admin.forms import show_domain_error
from app.auth.access import requires
from app.config import LANGUAGES
from app.errors import DomainError
from app.extensions import db
from app.models import Role, Source, TaskType, Variable
from app.models.translated import current_language
from app.services import catalog, statistics
from app.web import bp
from app.web.catalog_forms import DescriptionsForm, SourceForm
from app.web.inputs import Page, get_or_404, refused, saved

WEEK_HOURS = 24 * 7


def languages_reader_first() -> list[str]:
    """The supported languages, the reader's own first."""
    own = current_language()
    return [own, *(language for language in LANGUAGES if language != own)]


@bp.get("/types/")
@requires(Role.VIEWER)
def task_types() -> str:
    """Task types with their tasks and queues, descriptions, and finished executions (roll-ups)."""
    types = db.session.scalars(select(TaskType).order_by(TaskType.name)).all()
    return render_template(
        "tasks/task_types/page.html",
        task_types=types,
        tasks_by_type=catalog.registered_tasks(),
        day=statistics.by_type(24),
        week=statistics.by_type(WEEK_HOURS),
        languages=languages_reader_first(),
    )


@bp.route("/types/<int:type_id>/edit/", methods=["GET", "POST"])
@requires(Role.OPERATOR)
def edit_task_type(type_id: int) -> Page | Response:
    """Edit a task type's descriptions in every language."""
    task_type = get_or_404(TaskType, type_id)
    form = DescriptionsForm(obj=task_type)
    if form.validate_on_submit():
        catalog.update_task_type(task_type, form.values())
        return saved(_("Task type %(name)s saved.", name=task_type.name), url_for("web.task_types"))
    page = render_template("tasks/task_types/form.html", form=form, task_type=task_type)
    return (page, 422) if form.is_submitted() else page


@bp.post("/types/<int:type_id>/delete/")
@requires(Role.OPERATOR)
def delete_task_type(type_id: int) -> Response:
    """Delete a task type no execution refers to."""
    task_type = get_or_404(TaskType, type_id)
    name = task_type.name
    try:
        catalog.delete_task_type(task_type)
    except DomainError as error:
        return refused(error, url_for("web.task_types"))
    return saved(_("Task type %(name)s deleted.", name=name), url_for("web.task_types"))


@bp.get("/sources/")
@requires(Role.VIEWER)
def sources() -> str:
    """Sources with their number of variables, active ones first."""
    counts = dict(
        db.session.execute(
            select(Variable.source_id, func.count()).group_by(Variable.source_id)
        ).all()
    )
    rows = db.session.scalars(select(Source).order_by(Source.is_active.desc(), Source.code)).all()
    return render_template("tasks/sources/page.html", sources=rows, variable_counts=counts)


@bp.get("/sources/<int:source_id>/")
@requires(Role.VIEWER)
def source_detail(source_id: int) -> str:
    """A source's settings, descriptions and variables."""
    source = get_or_404(Source, source_id)
    variables = db.session.scalars(
        select(Variable).where(Variable.source_id == source.id).order_by(Variable.code)
    ).all()
    return render_template(
        "tasks/sources/detail.html",
        source=source,
        variables=variables,
        languages=languages_reader_first(),
    )


def _source_form_page(form: SourceForm, source: Source | None) -> Page:
    page = render_template("tasks/sources/form.html", form=form, source=source)
    return (page, 422) if form.is_submitted() else page


@bp.route("/sources/new/", methods=["GET", "POST"])
@requires(Role.OPERATOR)
def create_source() -> Page | Response:
    """Add a source; errors are shown beside the fields."""
    form = SourceForm()
    if form.validate_on_submit():
        try:
            source = catalog.create_source(form.values())
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            target = url_for("web.source_detail", source_id=source.id)
            return saved(_("Source %(code)s created.", code=source.code), target)
    return _source_form_page(form, None)


@bp.route("/sources/<int:source_id>/edit/", methods=["GET", "POST"])
@requires(Role.OPERATOR)
def edit_source(source_id: int) -> Page | Response:
    """Edit a source; errors are shown beside the fields."""
    source = get_or_404(Source, source_id)
    form = SourceForm(obj=source)
    if form.validate_on_submit():
        try:
            catalog.update_source(source, form.values())
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            target = url_for("web.source_detail", source_id=source_id)
            return saved(_("Source %(code)s saved.", code=source.code), target)
    return _source_form_page(form, source)


@bp.post("/sources/<int:source_id>/deactivate/")
@requires(Role.OPERATOR)
def deactivate_source(source_id: int) -> Response:
    """Deactivate a source: pipelines skip it; its history stays."""
    source = get_or_404(Source, source_id)
    catalog.set_source_active(source, False)
    target = url_for("web.source_detail", source_id=source_id)
    return saved(_("Source %(code)s deactivated.", code=source.code), target)


@bp.post("/sources/<int:source_id>/reactivate/")
@requires(Role.OPERATOR)
def reactivate_source(source_id: int) -> Response:
    """Reactivate a source."""
    source = get_or_404(Source, source_id)
    catalog.set_source_active(source, True)
    target = url_for("web.source_detail", source_id=source_id)
    return saved(_("Source %(code)s reactivated.", code=source.code), target)


@bp.post("/sources/<int:source_id>/delete/")
@requires(Role.OPERATOR)
def delete_source(source_id: int) -> Response:
    """Delete a source nothing refers to; otherwise say why and keep it."""
    source = get_or_404(Source, source_id)
    code = source.code
    try:
        catalog.delete_source(source)
    except DomainError as error:
        return refused(error, url_for("web.source_detail", source_id=source_id))
    return saved(_("Source %(code)s deleted.", code=code), url_for("web.sources"))
