"""The filters of the executions list, read from the query string so a filtered view is a URL.

Dates are typed in the reader's timezone and turned into UTC here; a bad value becomes an error
beside its field (and a 400), never a 500.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import get_timezone
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms import Form, HiddenField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, Regexp, ValidationError

from app.bounds import OUT_OF_RANGE, OutOfRange, parse_moment
from app.extensions import db
from app.models import Source, TaskStatus, TaskType, Variable
from app.services import argument_search
from app.web.formatting import STATUS_LABELS

CHOICES_LIMIT = 500  # sources and variables offered in the selects
FILTER_NAMES = (
    "status",
    "task_type",
    "task_name",
    "queue",
    "source",
    "variable",
    "created_from",
    "created_to",
    "q",
    "arg",
)
# A date, or a date and a time to the minute or the second (ISO 8601, ``T`` or a space).
DATE_OR_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?")
# Task and queue names are code: typed left to right, also on a right-to-left page.
LTR_INPUT = {"dir": "ltr", "spellcheck": "false"}
PRINTABLE = Regexp(r"^[^\x00-\x1f\x7f]*$", message=_l("Control characters are not allowed."))


def local_moment(text: str, end_of_day: bool) -> datetime:
    """``text`` (a date, or a date and time) in the reader's timezone, as a UTC datetime.

    A bare date means the start of that day; as the end of a range, the whole day is included.
    """
    text = text.strip()
    if not DATE_OR_MOMENT.fullmatch(text):
        raise ValidationError(_l("Use a date like 2026-01-31 or 2026-01-31T14:30."))
    try:
        moment = parse_moment(text, ZoneInfo(str(get_timezone())))
    except OutOfRange:
        raise ValidationError(OUT_OF_RANGE) from None
    except ValueError:  # February 30th
        raise ValidationError(_l("Use a date like 2026-01-31 or 2026-01-31T14:30.")) from None
    if end_of_day and len(text) == len("2026-01-31"):
        moment += timedelta(days=1)
    return moment


class ExecutionFilterForm(Form):
    status = SelectMultipleField(
        _l("Status"), choices=[SelectChoice(s.value, STATUS_LABELS[s.value]) for s in TaskStatus]
    )
    task_type = SelectField(_l("Task type"), default="")
    task_name = StringField(
        _l("Task name"), [Optional(), Length(max=255), PRINTABLE], render_kw=LTR_INPUT
    )
    queue = StringField(_l("Queue"), [Optional(), Length(max=100), PRINTABLE], render_kw=LTR_INPUT)
    source = SelectField(_l("Source"), default="")
    variable = SelectField(_l("Variable"), default="")
    created_from = StringField(_l("Created from"), [Optional()])
    created_to = StringField(_l("Created before"), [Optional()])
    q = StringField(
        _l("Task id"),
        [
            Optional(),
            Length(max=36),
            Regexp(r"^[0-9a-fA-F-]+$", message=_l("A task id has only hex digits and dashes.")),
        ],
    )
    arg = StringField(
        _l("Arguments"), [Optional()], description=argument_search.HELP, render_kw=LTR_INPUT
    )
    cursor = HiddenField(validators=[Optional(), Length(max=200)])

    def __init__(self, formdata: MultiDict) -> None:
        super().__init__(formdata)
        any_choice = SelectChoice("", _l("Any"))
        self.task_type.choices = [any_choice] + [
            SelectChoice(name)
            for name in db.session.scalars(select(TaskType.name).order_by(TaskType.name))
        ]
        sources = db.session.execute(
            select(Source.id, Source.name).order_by(Source.name).limit(CHOICES_LIMIT)
        )
        self.source.choices = [any_choice] + [SelectChoice(str(i), name) for i, name in sources]
        variables = db.session.execute(
            select(Variable.id, Source.code, Variable.name)
            .join(Source)
            .order_by(Source.code, Variable.name)
            .limit(CHOICES_LIMIT)
        )
        self.variable.choices = [any_choice] + [
            SelectChoice(str(i), f"{code} · {name}") for i, code, name in variables
        ]

    def validate_created_from(self, field: StringField) -> None:
        if field.data:
            self.moments["created_from"] = local_moment(field.data, end_of_day=False)

    def validate_created_to(self, field: StringField) -> None:
        if field.data:
            self.moments["created_to"] = local_moment(field.data, end_of_day=True)
            start = self.moments.get("created_from")
            if start is not None and self.moments["created_to"] <= start:
                raise ValidationError(_l("The end must come after the start."))

    def validate_arg(self, field: StringField) -> None:
        try:
            self.terms = argument_search.parse(field.data or "")
        except argument_search.BadArgumentSearch as error:
            raise ValidationError(error.message) from None

    def validate(self, extra_validators: Any = None) -> bool:
        self.moments: dict[str, datetime] = {}
        self.terms = []
        return super().validate(extra_validators)

    def query(self) -> dict[str, Any]:
        """The validated filters as the executions service reads them."""
        data = self.data
        args: dict[str, Any] = {
            "status": data["status"] or None,
            "task_type": data["task_type"] or None,
            "task_name": (data["task_name"] or "").strip() or None,
            "queue": (data["queue"] or "").strip() or None,
            "source": int(data["source"]) if data["source"] else None,
            "variable": int(data["variable"]) if data["variable"] else None,
            "arg": self.terms or None,
            **self.moments,
        }
        search = (data["q"] or "").strip().lower()
        if len(search) == 36 and _is_uuid(search):
            args["task_id"] = search  # exact: the unique index answers at once
        elif search:
            args["task_id_prefix"] = search
        return args

    def url_args(self) -> dict[str, Any]:
        """The filters as they were typed, for links that keep them (pager, export, polling)."""
        args = {name: self[name].data for name in FILTER_NAMES if self[name].data}
        return {k: v.strip() if isinstance(v, str) else v for k, v in args.items()}


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
