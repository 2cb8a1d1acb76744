"""Variable pages, under their source: create, edit, deactivate, delete."""

from __future__ import annotations

from flask import render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from app.admin.forms import show_domain_error
from app.auth.access import requires
from app.errors import DomainError
from app.extensions import db
from app.models import Role, Source, Variable
from app.services import catalog
from app.web import bp
from app.web.catalog_forms import VariableForm
from app.web.inputs import Page, get_or_404, not_found, refused, saved


def _variable(source_id: int, variable_id: int) -> Variable:
    """The variable, which must belong to the source in the URL (else 404)."""
    variable = get_or_404(Variable, variable_id)
    if variable.source_id != source_id:
        not_found()
    return variable


def _form_page(form: VariableForm, source: Source, variable: Variable | None) -> Page:
    page = render_template(
        "tasks/sources/variable_form.html", form=form, source=source, variable=variable
    )
    return (page, 422) if form.is_submitted() else page


@bp.route("/sources/<int:source_id>/variables/new/", methods=["GET", "POST"])
@requires(Role.OPERATOR)
def create_variable(source_id: int) -> Page | Response:
    """Add a variable to a source; errors are shown beside the fields."""
    source = get_or_404(Source, source_id)
    form = VariableForm()
    if form.validate_on_submit():
        try:
            variable = catalog.create_variable(source, form.values())
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            message = _("Variable %(code)s created.", code=variable.code)
            return saved(message, url_for("web.source_detail", source_id=source_id))
    return _form_page(form, source, None)


@bp.route("/sources/<int:source_id>/variables/<int:variable_id>/edit/", methods=["GET", "POST"])
@requires(Role.OPERATOR)
def edit_variable(source_id: int, variable_id: int) -> Page | Response:
    """Edit a variable; errors are shown beside the fields."""
    variable = _variable(source_id, variable_id)
    form = VariableForm(obj=variable)
    if form.validate_on_submit():
        try:
            catalog.update_variable(variable, form.values())
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            message = _("Variable %(code)s saved.", code=variable.code)
            return saved(message, url_for("web.source_detail", source_id=source_id))
    return _form_page(form, variable.source, variable)


@bp.post("/sources/<int:source_id>/variables/<int:variable_id>/deactivate/")
@requires(Role.OPERATOR)
def deactivate_variable(source_id: int, variable_id: int) -> Response:
    """Deactivate a variable: pipelines skip it; its data stays."""
    variable = _variable(source_id, variable_id)
    catalog.set_variable_active(variable, False)
    message = _("Variable %(code)s deactivated.", code=variable.code)
    return saved(message, url_for("web.source_detail", source_id=source_id))


@bp.post("/sources/<int:source_id>/variables/<int:variable_id>/reactivate/")
@requires(Role.OPERATOR)
def reactivate_variable(source_id: int, variable_id: int) -> Response:
    """Reactivate a variable."""
    variable = _variable(source_id, variable_id)
    catalog.set_variable_active(variable, True)
    message = _("Variable %(code)s reactivated.", code=variable.code)
    return saved(message, url_for("web.source_detail", source_id=source_id))


@bp.post("/sources/<int:source_id>/variables/<int:variable_id>/delete/")
@requires(Role.OPERATOR)
def delete_variable(source_id: int, variable_id: int) -> Response:
    """Delete a variable nothing refers to; otherwise say why and keep it."""
    variable = _variable(source_id, variable_id)
    code = variable.code
    target = url_for("web.source_detail", source_id=source_id)
    try:
        catalog.delete_variable(variable)
    except DomainError as error:
        return refused(error, target)
    return saved(_("Variable %(code)s deleted.", code=code), target)
