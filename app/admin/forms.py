"""Forms of the admin pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from app.auth.access import ROLE_LABELS
from app.errors import DomainError
from app.models import Role

ROLE_CHOICES = [SelectChoice(role.value, label) for role, label in ROLE_LABELS.items()]


class UserCreateForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, default=Role.VIEWER.value)
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)


class TokenCreateForm(FlaskForm):
    user_id = SelectField(_l("User"), coerce=int, validate_choice=True)
    name = StringField(_l("Name"), validators=[Length(max=100)])


def show_domain_error(form: FlaskForm, error: DomainError) -> None:
    """Put a service's error messages beside the fields they concern."""
    placed = False
    for name, messages in error.fields.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, *messages]
            placed = True
    if not placed:
        form.form_errors.append(error.message)
