"""The filters of the runs list, read from the query string so a filtered view is a URL.

Dates are read like the executions list's (the reader's timezone, turned into UTC); a bad value
becomes an error beside its field and a 400, never a 500.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms import Form, HiddenField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from app.extensions import db
from app.models import RunStatus, ScheduledTask
from app.web.execution_filters import LTR_INPUT, PRINTABLE, local_moment
from app.web.formatting import STATUS_LABELS

SCHEDULES_LIMIT = 500  # schedules offered in the select
FILTER_NAMES = ("schedule", "status", "task_name", "created_from", "created_to")


class RunFilterForm(Form):
    schedule = SelectField(_l("Schedule"), default="")
    status = SelectMultipleField(
        _l("Status"), choices=[SelectChoice(s.value, STATUS_LABELS[s.value]) for s in RunStatus]
    )
    task_name = StringField(
        _l("Task name"), [Optional(), Length(max=255), PRINTABLE], render_kw=LTR_INPUT
    )
    created_from = StringField(_l("Created from"), [Optional()])
    created_to = StringField(_l("Created before"), [Optional()])
    cursor = HiddenField(validators=[Optional(), Length(max=200)])

    def __init__(self, formdata: MultiDict) -> None:
        super().__init__(formdata)
        schedules = db.session.execute(
            select(ScheduledTask.id, ScheduledTask.name)
            .order_by(ScheduledTask.name)
            .limit(SCHEDULES_LIMIT)
        )
        self.schedule.choices = [SelectChoice("", _l("Any"))] + [
            SelectChoice(str(i), name) for i, name in schedules
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

    def validate(self, extra_validators: Any = None) -> bool:
        self.moments: dict[str, datetime] = {}
        return super().validate(extra_validators)

    def query(self) -> dict[str, Any]:
        """The validated filters as the runs service reads them."""
        data = self.data
        return {
            "schedule": int(data["schedule"]) if data["schedule"] else None,
            "status": data["status"] or None,
            "task_name": (data["task_name"] or "").strip() or None,
            **self.moments,
        }

    def url_args(self) -> dict[str, Any]:
        """The filters as they were typed, for links that keep them (pager, polling)."""
        args = {name: self[name].data for name in FILTER_NAMES if self[name].data}
        return {k: v.strip() if isinstance(v, str) else v for k, v in args.items()}
