"""Admin pages for users and API tokens (the CLI's ``flask users`` and ``flask tokens``)."""

from __future__ import annotations

from flask import redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app.admin import bp
from app.admin.forms import RoleForm, TokenCreateForm, UserCreateForm, show_domain_error
from app.auth.access import requires
from app.auth.security import NO_STORE
from app.errors import DomainError
from app.extensions import db
from app.models import ApiToken, Role, User
from app.services import tokens as token_service
from app.services import users as user_service
from app.web.inputs import Page, get_or_404


def _users_page(form: UserCreateForm | None = None, status: int = 200) -> Page:
    users = db.session.scalars(user_service.users_query()).all()
    role_forms = {user.id: RoleForm(formdata=None, role=user.role.value) for user in users}
    page = render_template(
        "admin/users.html", users=users, form=form or UserCreateForm(), role_forms=role_forms
    )
    return page, status


def _token_form() -> TokenCreateForm:
    form = TokenCreateForm()
    users = db.session.scalars(user_service.users_query().where(User.is_active)).all()
    form.user_id.choices = [SelectChoice(user.id, user.username) for user in users]
    return form


def _tokens_page(form: TokenCreateForm, issued: str | None = None, status: int = 200) -> Page:
    tokens = db.session.scalars(
        select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())
    ).all()
    page = render_template("admin/tokens.html", tokens=tokens, form=form, issued=issued)
    return (page, status, NO_STORE) if issued else (page, status)


@bp.get("/users/")
@requires(Role.ADMIN)
def users() -> Page:
    """Users with their roles, and a form to add one."""
    return _users_page()


@bp.post("/users/")
@requires(Role.ADMIN)
def create_user() -> Page | Response:
    """Add a user; errors are shown beside the fields."""
    form = UserCreateForm()
    if form.validate_on_submit():
        try:
            user_service.create_user(form.username.data, form.role.data, form.password.data)
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            return redirect(url_for("admin.users"), code=303)
    return _users_page(form, 422)


@bp.post("/users/<int:user_id>/role/")
@requires(Role.ADMIN)
def set_role(user_id: int) -> Page | Response:
    """Change a user's role (the last admin cannot be demoted)."""
    user = get_or_404(User, user_id)
    form = RoleForm()
    if form.validate_on_submit():
        try:
            user_service.set_role(user, form.role.data)
        except DomainError as error:
            db.session.rollback()
            form = UserCreateForm()
            form.form_errors.append(error.message)
            return _users_page(form, 409)
        db.session.commit()
        return redirect(url_for("admin.users"), code=303)
    create_form = UserCreateForm()
    create_form.form_errors.append(_("Choose one of the roles."))
    return _users_page(create_form, 422)


@bp.get("/tokens/")
@requires(Role.ADMIN)
def tokens() -> Page:
    """API tokens (prefix, owner, last use), and a form to issue one."""
    return _tokens_page(_token_form())


@bp.post("/tokens/")
@requires(Role.ADMIN)
def create_token() -> Page:
    """Issue a token and show it on this answer only (it is not stored in clear anywhere)."""
    form = _token_form()
    if form.validate_on_submit():
        owner = get_or_404(User, form.user_id.data)
        try:
            issued = token_service.create_token(owner, form.name.data or "")
        except DomainError as error:
            db.session.rollback()
            show_domain_error(form, error)
        else:
            db.session.commit()
            # Not a redirect: the plaintext must not travel through a cookie or a URL.
            return _tokens_page(_token_form(), issued=issued.plaintext, status=201)
    return _tokens_page(form, status=422)


@bp.post("/tokens/<int:token_id>/revoke/")
@requires(Role.ADMIN)
def revoke_token(token_id: int) -> Response:
    """Revoke a token; requests bearing it are refused from now on."""
    token_service.revoke_token(get_or_404(ApiToken, token_id))
    db.session.commit()
    return redirect(url_for("admin.tokens"), code=303)
