"""Validation of schedule input: every problem is reported on its field, nothing is saved."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import gettext as _

from app import bounds
from app.bounds import (
    MAX_DELAY_SECONDS,
    MAX_INT,
    MAX_INTERVAL,
    MAX_JSON_CHARS,
    MAX_RETRIES,
    OUT_OF_RANGE,
    OutOfRange,
    seconds,
    utc_moment,
    whole_number,
)
from app.config import LANGUAGES
from app.errors import InvalidInput
from app.models import IntervalUnit, MisfirePolicy, OverlapPolicy, ScheduleKind
from app.models.schedule import MAX_PAUSE_AFTER_FAILURES
from app.models.types import utcnow
from app.scheduler import timing
from app.watch.states import MAX_SECONDS

FIELDS = (
    "name", "task", "kind", "crontab", "interval_every", "interval_unit", "run_at", "timezone",
    "args", "kwargs", "queue", "priority", "max_retries", "retry_backoff_seconds", "chain",
    "misfire_policy", "enabled", "start_at", "expires_at", "descriptions", "grace_seconds",
    "max_duration_seconds", "overlap_policy", "pause_after_failures",
)  # fmt: skip
MAX_INTERVAL_SECONDS = MAX_INTERVAL.total_seconds()
TIMING_FIELDS = frozenset(
    {"kind", "crontab", "interval_every", "interval_unit", "run_at", "timezone", "start_at",
     "expires_at"}
)  # fmt: skip


class Errors:
    """Collects field errors; ``raise_if_any`` raises one InvalidInput naming them all."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)

    def check(self, field: str, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except InvalidInput as exc:
            for messages in exc.fields.values():
                for message in messages:
                    self.add(field, message)
            return None

    def raise_if_any(self) -> None:
        if self.fields:
            raise InvalidInput(_("The schedule is not valid."), self.fields)


def registered_tasks() -> set[str]:
    """The tasks a schedule may target: registered ones, Celery's internal ``celery.*`` excluded
    (form, API and CLI all check against this set)."""
    return {t for t in current_app.extensions["celery"].tasks if not t.startswith("celery.")}


def json_value(value: Any, field: str, kind: type) -> Any:
    """Accept a JSON string or an already-decoded value of type ``kind`` (list or dict)."""
    if isinstance(value, str):
        try:
            value = bounds.loads(value, MAX_JSON_CHARS) if value.strip() else kind()
        except ValueError as exc:
            message = _("%(field)s is not valid JSON: %(error)s", field=field, error=exc)
            raise InvalidInput(message, {field: [message]}) from None
    if value is None:
        value = kind()
    if not isinstance(value, kind):
        expected = _("a JSON list") if kind is list else _("a JSON object")
        message = _("%(field)s must be %(expected)s.", field=field, expected=expected)
        raise InvalidInput(message, {field: [message]})
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        message = _("%(field)s must only hold JSON values.", field=field)
        raise InvalidInput(message, {field: [message]}) from None
    return value


def aware(value: Any, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            message = _("%(field)s must be an ISO 8601 date and time.", field=field)
            raise InvalidInput(message, {field: [message]}) from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        message = _("%(field)s needs a timezone offset (for example +00:00).", field=field)
        raise InvalidInput(message, {field: [message]})
    try:
        utc_moment(value)
    except OutOfRange:
        message = f"{field}: {OUT_OF_RANGE}"
        raise InvalidInput(message, {field: [message]}) from None
    # Occurrences are kept to the millisecond (Redis scores); store times the same way.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def choice(value: Any, enum_cls: type[enum.Enum], field: str) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        message = _("%(field)s must be one of: %(allowed)s.", field=field, allowed=allowed)
        raise InvalidInput(message, {field: [message]}) from None


def clean(values: dict[str, Any]) -> dict[str, Any]:
    """Validate a complete set of schedule fields; return them normalized."""
    from celeryconfig import TASK_QUEUES

    errors = Errors()
    unknown = set(values) - set(FIELDS)
    for field in sorted(unknown):
        errors.add(field, _("Unknown field."))
    out = dict(values)
    name = (values.get("name") or "").strip()
    if not name or len(name) > 200:
        errors.add("name", _("A name of 1 to 200 characters is required."))
    out["name"] = name
    tasks = registered_tasks()
    if values.get("task") not in tasks:
        errors.add("task", _("Unknown task %(task)r.", task=values.get("task")))
    out.update(clean_timing(values, errors, name))
    out["args"] = errors.check("args", json_value, values.get("args"), "args", list)
    out["kwargs"] = errors.check("kwargs", json_value, values.get("kwargs"), "kwargs", dict)
    if out["args"] is not None and out["kwargs"] is not None and values.get("task") in tasks:
        errors.check("kwargs", check_signature, values["task"], out["args"], out["kwargs"])
    out["chain"] = errors.check("chain", clean_chain, values.get("chain"), tasks)
    queue = values.get("queue") or None
    if queue is not None and queue not in TASK_QUEUES:
        errors.add("queue", _("Unknown queue %(queue)r.", queue=queue))
    out["queue"] = queue
    for field, low, high in (("priority", 0, 9), ("max_retries", 0, MAX_RETRIES)):
        value = values.get(field)
        if value is not None and not whole_number(value, low, high):
            errors.add(
                field, _("Must be a whole number from %(low)d to %(high)d.", low=low, high=high)
            )
    for field in ("grace_seconds", "max_duration_seconds"):
        value = values.get(field)
        if value is not None and not whole_number(value, 1, MAX_SECONDS):
            errors.add(
                field,
                _(
                    "Must be a whole number of seconds from 1 to %(high)d (7 days), or empty.",
                    high=MAX_SECONDS,
                ),
            )
    backoff = values.get("retry_backoff_seconds")
    if backoff is not None and not seconds(backoff, 0, MAX_DELAY_SECONDS):
        errors.add(
            "retry_backoff_seconds",
            _(
                "The backoff must be a number of seconds from 0 to %(high)d (7 days).",
                high=MAX_DELAY_SECONDS,
            ),
        )
    out["misfire_policy"] = errors.check(
        "misfire_policy", choice, values.get("misfire_policy") or "run_once", MisfirePolicy,
        "misfire_policy",
    )  # fmt: skip
    out["overlap_policy"] = errors.check(
        "overlap_policy", choice, values.get("overlap_policy") or "allow", OverlapPolicy,
        "overlap_policy",
    )  # fmt: skip
    pause = values.get("pause_after_failures")
    if pause is not None and not whole_number(pause, 1, MAX_PAUSE_AFTER_FAILURES):
        errors.add(
            "pause_after_failures",
            _(
                "Must be a whole number of failed runs from 1 to %(high)d, or empty.",
                high=MAX_PAUSE_AFTER_FAILURES,
            ),
        )
    descriptions = values.get("descriptions") or {}
    if not isinstance(descriptions, dict) or set(descriptions) - set(LANGUAGES):
        errors.add("descriptions", _("Descriptions are keyed by language: en, fr, es, ar."))
    out["enabled"] = bool(values.get("enabled", True))
    errors.raise_if_any()
    return out


def clean_timing(values: dict[str, Any], errors: Errors, name: str) -> dict[str, Any]:
    """The timing fields of ``values`` normalized; problems are added to ``errors``.

    Shared by ``clean`` and the form's live preview, so both judge timing the same way.
    """
    out: dict[str, Any] = {}
    kind = errors.check("kind", choice, values.get("kind"), ScheduleKind, "kind")
    out["kind"] = kind
    tz = values.get("timezone") or "UTC"
    errors.check("timezone", timing.zone, tz)
    out["timezone"] = tz
    for field in ("run_at", "start_at", "expires_at"):
        out[field] = errors.check(field, aware, values.get(field), field)
    if kind == ScheduleKind.CRONTAB:
        out["crontab"] = errors.check(
            "crontab", timing.validate_crontab, values.get("crontab"), name
        )
    else:
        out["crontab"] = None
    if kind == ScheduleKind.INTERVAL:
        every = values.get("interval_every")
        out["interval_unit"] = unit = errors.check(
            "interval_unit", choice, values.get("interval_unit"), IntervalUnit, "interval_unit"
        )
        if not whole_number(every, 1, MAX_INT):
            errors.add(
                "interval_every",
                _("The interval must be a whole number from 1 to %(high)d.", high=MAX_INT),
            )
        elif unit is not None and every * timing.UNIT_SECONDS[unit.value] > MAX_INTERVAL_SECONDS:
            errors.add(
                "interval_every",
                _("The interval must be at most %(days)d days.", days=MAX_INTERVAL.days),
            )
        out["interval_every"] = every
    else:
        out["interval_every"] = out["interval_unit"] = None
    if kind == ScheduleKind.ONE_TIME and out["run_at"] is None and "run_at" not in errors.fields:
        errors.add("run_at", _("A one-time schedule needs run_at."))
    if kind != ScheduleKind.ONE_TIME:
        out["run_at"] = None
    elif out["run_at"] and values.get("enabled", True) and out["run_at"] < utcnow():
        errors.add("run_at", _("run_at is in the past: the schedule would never run."))
    if out["start_at"] and out["expires_at"] and out["expires_at"] <= out["start_at"]:
        errors.add("expires_at", _("expires_at must come after start_at."))
    return out


def check_signature(task: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Refuse arguments the task cannot take (Celery would refuse them at every send)."""
    header = getattr(current_app.extensions["celery"].tasks[task], "__header__", None)
    if header is None:
        return
    try:
        header(*args, **kwargs)
    except TypeError as exc:
        message = _("The task does not take these arguments: %(error)s", error=exc)
        raise InvalidInput(message, {"kwargs": [message]}) from None


def clean_chain(value: Any, tasks: set[str]) -> list[dict[str, Any]]:
    steps = json_value(value, "chain", list)
    cleaned = []
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or step.get("task") not in tasks:
            message = _("Step %(n)d of the chain must name a known task.", n=number)
            raise InvalidInput(message, {"chain": [message]})
        step_args = json_value(step.get("args"), "chain", list)
        step_kwargs = json_value(step.get("kwargs"), "chain", dict)
        check_signature(step["task"], step_args, step_kwargs)
        cleaned.append({"task": step["task"], "args": step_args, "kwargs": step_kwargs})
    return cleaned
