"""The schedule form: fields, their conversion to the scheduler service's values, and back.

The form only parses (numbers, dates); every rule lives in ``app.scheduler.validation``, so a
schedule is judged the same way from this form and from the JSON API. The service's field-keyed
errors are shown beside the matching fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    FloatField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional
from wtforms.widgets import NumberInput

from app.bounds import ASCII_DIGITS, displayable
from app.config import LANGUAGES
from app.errors import DomainError, InvalidInput
from app.i18n import select_timezone
from app.models import ScheduledTask
from app.scheduler.preview import upcoming
from app.scheduler.validation import registered_tasks
from app.watch.states import MAX_SECONDS

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
KIND_CHOICES = [
    SelectChoice("crontab", _l("Crontab")),
    SelectChoice("interval", _l("Interval")),
    SelectChoice("one_time", _l("One time")),
]
UNIT_CHOICES = [
    SelectChoice("seconds", _l("seconds")),
    SelectChoice("minutes", _l("minutes")),
    SelectChoice("hours", _l("hours")),
    SelectChoice("days", _l("days")),
]
MISFIRE_CHOICES = [
    SelectChoice("run_once", _l("Run once late, then resume")),
    SelectChoice("skip", _l("Skip missed runs")),
]
OVERLAP_CHOICES = [
    SelectChoice("allow", _l("Run anyway (overlap)")),
    SelectChoice("skip", _l("Skip it (recorded as skipped)")),
    SelectChoice("queue_one", _l("Run it when the previous run ends (at most one waits)")),
]
LANGUAGE_LABELS = {
    "en": _l("Description (English)"),
    "fr": _l("Description (French)"),
    "es": _l("Description (Spanish)"),
    "ar": _l("Description (Arabic)"),
}
# Timing fields: what the live preview reads.
TIMING_FIELDS = (
    "name", "kind", "crontab", "interval_every", "interval_unit", "run_at", "timezone",
    "start_at", "expires_at",
)  # fmt: skip
# Inputs that hold code (crontab, JSON, a timezone name): typed and shown left to right, also in
# a right-to-left page, where ``*/5 * * * *`` would otherwise read ``* * * * 5/*``.
CODE_INPUT = {"dir": "ltr", "spellcheck": "false"}
# Service field -> form field, where the names differ.
FORM_FIELD_OF = {"descriptions": "description_en"}


def user_zone() -> tzinfo:
    """The reader's timezone (session preference, else the display default)."""
    return ZoneInfo(select_timezone())


def _local_time(label: Any) -> DateTimeLocalField:
    return DateTimeLocalField(label, [Optional()], format=DATETIME_FORMATS, tz=user_zone)


def _number(label: Any, kind: type = IntegerField, **widget: Any) -> Any:
    return kind(label, [Optional()], widget=NumberInput(**widget))


class ScheduleForm(FlaskForm):
    name = StringField(_l("Name"), render_kw={"maxlength": 200})
    # Each description in its own language and direction (an English one reads left to right
    # inside an Arabic page).
    description_en = TextAreaField(LANGUAGE_LABELS["en"], render_kw={"lang": "en", "dir": "ltr"})
    task = SelectField(_l("Task"), validate_choice=False, render_kw={"dir": "ltr"})
    kind = SelectField(_l("Timing"), choices=KIND_CHOICES, validate_choice=False)
    crontab = StringField(_l("Crontab expression"), render_kw=CODE_INPUT)
    interval_every = _number(_l("Every"), min=1)
    interval_unit = SelectField(
        _l("Unit"), choices=UNIT_CHOICES, default="minutes", validate_choice=False
    )
    run_at = _local_time(_l("Run at (your time)"))
    timezone = StringField(_l("Timezone of the schedule"), default="UTC", render_kw=CODE_INPUT)
    start_at = _local_time(_l("Not before (your time)"))
    expires_at = _local_time(_l("Not after (your time)"))
    args = TextAreaField(_l("Arguments (JSON list)"), default="[]", render_kw=CODE_INPUT)
    kwargs = TextAreaField(
        _l("Keyword arguments (JSON object)"), default="{}", render_kw=CODE_INPUT
    )
    queue = SelectField(_l("Queue"), validate_choice=False)
    priority = _number(_l("Priority (0-9)"), min=0, max=9)
    max_retries = _number(_l("Maximum retries"), min=0, max=100)
    retry_backoff_seconds = _number(_l("Retry backoff (seconds)"), FloatField, min=0, step="any")
    chain = TextAreaField(_l("Then run (JSON list of steps)"), default="[]", render_kw=CODE_INPUT)
    misfire_policy = SelectField(
        _l("Missed runs"), choices=MISFIRE_CHOICES, default="run_once", validate_choice=False
    )
    grace_seconds = _number(_l("Grace (seconds)"), min=1, max=MAX_SECONDS)
    max_duration_seconds = _number(_l("Maximum duration (seconds)"), min=1, max=MAX_SECONDS)
    overlap_policy = SelectField(
        _l("While the previous run still runs"),
        choices=OVERLAP_CHOICES,
        default="allow",
        validate_choice=False,
    )
    # Text, not IntegerField: int() would take "١٢" or "²"; the service judges the number.
    pause_after_failures = StringField(
        _l("Pause after this many failed runs in a row"),
        render_kw={"inputmode": "numeric", "dir": "ltr", "maxlength": 4},
    )
    enabled = BooleanField(_l("Enabled"), default=True)
    description_fr = TextAreaField(LANGUAGE_LABELS["fr"], render_kw={"lang": "fr", "dir": "ltr"})
    description_es = TextAreaField(LANGUAGE_LABELS["es"], render_kw={"lang": "es", "dir": "ltr"})
    description_ar = TextAreaField(LANGUAGE_LABELS["ar"], render_kw={"lang": "ar", "dir": "rtl"})

    def set_choices(self, current_task: str | None = None) -> None:
        """Registered tasks (Celery's own excluded) and the configured queues."""
        from celeryconfig import TASK_QUEUES

        tasks = sorted(registered_tasks())
        if current_task and current_task not in tasks:
            tasks.insert(0, current_task)  # no longer registered: keep it visible
        self.task.choices = [SelectChoice(t, t) for t in tasks]
        self.queue.choices = [SelectChoice("", _l("The task's own queue"))] + [
            SelectChoice(q, q) for q in TASK_QUEUES
        ]

    def enable_live_preview(self, url: str) -> None:
        """HTMX attributes on the timing inputs: each change asks ``url`` for the next runs."""
        include = ", ".join(f"#{name}" for name in TIMING_FIELDS)
        for name in TIMING_FIELDS[1:]:  # the name only matters for H fields: sent, not watched
            typed = isinstance(self[name], StringField | IntegerField)
            self[name].render_kw = {
                **(self[name].render_kw or {}),
                "data-hx-get": url,
                "data-hx-trigger": "input changed delay:400ms" if typed else "change",
                "data-hx-target": "#schedule-preview",
                "data-hx-include": include,
                "data-hx-sync": "closest form:replace",
            }

    def description_fields(self) -> list[Any]:
        return [self[f"description_{language}"] for language in LANGUAGES]

    def timing_values(self) -> dict[str, Any]:
        """The timing fields as the scheduler service takes them (times in UTC)."""
        return {name: _service_value(self[name]) for name in TIMING_FIELDS}

    def values(self) -> dict[str, Any]:
        """Every field as the scheduler service takes them; the service validates them."""
        values = self.timing_values()
        for name in ("task", "args", "kwargs", "queue", "priority", "max_retries",
                     "retry_backoff_seconds", "chain", "misfire_policy", "enabled",
                     "grace_seconds", "max_duration_seconds", "overlap_policy"):  # fmt: skip
            values[name] = _service_value(self[name])
        values["pause_after_failures"] = _whole_or_text(self.pause_after_failures.data)
        values["descriptions"] = {
            language: (self[f"description_{language}"].data or "").strip() or None
            for language in LANGUAGES
        }
        return values

    def show_errors(self, error: DomainError) -> None:
        """The service's messages beside their fields; others (unknown keys) above the form."""
        for key, messages in error.fields.items():
            target = self._fields.get(FORM_FIELD_OF.get(key, key))
            if target is None:
                self.form_errors.extend(f"{key}: {m}" for m in messages)
            else:
                target.errors = [*target.errors, *messages]
        if not error.fields:
            self.form_errors.append(error.message)


def _service_value(form_field: Any) -> Any:
    if isinstance(form_field, StringField):  # TextAreaField too; SelectField is not one
        return (form_field.data or "").strip()
    return form_field.data  # local times are aware (reader's zone); the service keeps UTC


def _whole_or_text(text: str | None) -> int | str | None:
    """ASCII digits as a number, empty as None; anything else as typed (refused by the service
    with its message)."""
    text = (text or "").strip()
    if not text:
        return None
    return int(text) if ASCII_DIGITS.fullmatch(text) else text


def in_zone(moment: datetime, zone: str) -> str:
    """``moment`` as local time in ``zone`` (the schedule's), in the reader's language."""
    return format_datetime(
        displayable(moment), "medium", tzinfo=ZoneInfo(zone), locale=get_locale()
    )


def initial_data(schedule: ScheduledTask) -> dict[str, Any]:
    """A saved schedule as form data (JSON fields pretty-printed)."""
    data: dict[str, Any] = {
        "name": schedule.name,
        "task": schedule.task,
        "kind": str(schedule.kind),
        "crontab": schedule.crontab or "",
        "interval_every": schedule.interval_every,
        "interval_unit": str(schedule.interval_unit or "minutes"),
        "run_at": schedule.run_at and displayable(schedule.run_at),
        "timezone": schedule.timezone,
        "start_at": schedule.start_at and displayable(schedule.start_at),
        "expires_at": schedule.expires_at and displayable(schedule.expires_at),
        "args": json.dumps(schedule.args or [], indent=1),
        "kwargs": json.dumps(schedule.kwargs or {}, indent=1),
        "queue": schedule.queue or "",
        "priority": schedule.priority,
        "max_retries": schedule.max_retries,
        "retry_backoff_seconds": schedule.retry_backoff_seconds,
        "chain": json.dumps(schedule.chain or [], indent=1),
        "misfire_policy": str(schedule.misfire_policy),
        "enabled": schedule.enabled,
        "grace_seconds": schedule.grace_seconds,
        "max_duration_seconds": schedule.max_duration_seconds,
        "overlap_policy": str(schedule.overlap_policy or "allow"),
        "pause_after_failures": (
            "" if schedule.pause_after_failures is None else str(schedule.pause_after_failures)
        ),
    }
    for language, text in schedule.descriptions().items():
        data[f"description_{language}"] = text or ""
    return data


@dataclass
class Preview:
    """The next runs of the timing in a form, or why there are none."""

    times: list[datetime] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timezone: str = "UTC"  # the schedule's zone, valid when there are times


def build_preview(form: ScheduleForm, on_fields: bool = False) -> Preview:
    """Validate the form's timing fields and compute their next runs.

    ``on_fields`` also puts the problems beside the fields (the no-JavaScript Preview button).
    """
    problems: list[str] = []
    for name in TIMING_FIELDS:
        if not form[name].validate(form):
            problems.extend(form[name].errors)
    if problems:
        return Preview(errors=problems)
    try:
        times = upcoming(form.timing_values())
    except InvalidInput as error:
        if on_fields:
            form.show_errors(error)
        return Preview(errors=[m for messages in error.fields.values() for m in messages])
    return Preview(times=times, timezone=form.timezone.data.strip() or "UTC")
