"""Forms of the catalogue pages: task type descriptions, sources, variables.

The forms check shape (required, length, URL); the service (app.services.catalog) checks the
rules that need the database (duplicates, references), and its errors land beside the fields too.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, StringField, TextAreaField
from wtforms.validators import URL, DataRequired, Length, Optional, Regexp, ValidationError

from app.config import LANGUAGES
from app.web.preferences import LANGUAGE_NAMES

DESCRIPTION_MAX = 4000


def no_nul(_form: FlaskForm, field: Field) -> None:
    """PostgreSQL cannot store NUL characters: refuse them beside the field."""
    if isinstance(field.data, str) and "\x00" in field.data:
        raise ValidationError(_l("This text contains a NUL character."))


def _description(language: str) -> TextAreaField:
    return TextAreaField(
        _l("Description (%(language)s)", language=LANGUAGE_NAMES[language]),
        validators=[Optional(), Length(max=DESCRIPTION_MAX), no_nul],
        render_kw={"lang": language, "dir": "rtl" if language == "ar" else "ltr", "rows": 3},
    )


class DescriptionsForm(FlaskForm):
    """A description in each language (edits a task type's, and is the base of the others)."""

    description_en = _description("en")
    description_fr = _description("fr")
    description_es = _description("es")
    description_ar = _description("ar")

    def description_fields(self) -> list[Field]:
        return [getattr(self, f"description_{language}") for language in LANGUAGES]

    def values(self) -> dict[str, Any]:
        """The submitted values by model field name (csrf token left out)."""
        return {name: field.data for name, field in self._fields.items() if name != "csrf_token"}


CODE_HINT = _l("Lowercase letters, digits and underscores, starting with a letter.")
CODE_RULE = Regexp(
    r"^[a-z_][a-z0-9_]*$",
    message=_l("Use lowercase letters, digits and underscores, starting with a letter."),
)


class SourceForm(DescriptionsForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(), Length(max=64), no_nul, CODE_RULE],
        description=CODE_HINT,
        render_kw={"dir": "ltr", "spellcheck": "false"},
    )
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200), no_nul])
    source_type = StringField(
        _l("Type"),
        default="api",
        validators=[DataRequired(), Length(max=50), no_nul],
        description=_l("How the data is fetched: api, file, feed..."),
    )
    base_url = StringField(
        _l("Base URL"),
        validators=[
            Optional(),
            Length(max=500),
            no_nul,
            URL(require_tld=False, message=_l("Enter a valid http:// or https:// address.")),
        ],
        render_kw={"type": "url", "inputmode": "url", "dir": "ltr"},
    )
    is_active = BooleanField(_l("Active"), default=True)


class VariableForm(DescriptionsForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(), Length(max=64), no_nul, CODE_RULE],
        description=CODE_HINT,
        render_kw={"dir": "ltr", "spellcheck": "false"},
    )
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200), no_nul])
    endpoint_path = StringField(
        _l("Endpoint path"),
        validators=[Optional(), Length(max=500), no_nul],
        description=_l("Appended to the source's base URL, e.g. /idus/last-180-days/."),
        render_kw={"dir": "ltr", "spellcheck": "false"},
    )
    is_active = BooleanField(_l("Active"), default=True)
