"""The catalogue operators manage: sources, their variables, and task type descriptions.

Services add and mutate (with an audit entry); the view that calls them commits. Deleting is
refused while anything refers to the row (executions, fetched payloads, data points, totals):
the database refuses it too, but an operator deserves a sentence rather than an integrity error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.exc import IntegrityError

from app.config import LANGUAGES
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.models import (
    CountryMonthTotal,
    DataPoint,
    RawPayload,
    Source,
    TaskExecution,
    TaskType,
    Variable,
)
from app.services.audit import record_audit
from app.services.task_types import delete_task_type as _delete_unused_type

SOURCE_FIELDS = ("code", "name", "source_type", "base_url", "is_active")
VARIABLE_FIELDS = ("code", "name", "endpoint_path", "is_active")
DESCRIPTION_FIELDS = tuple(f"description_{language}" for language in LANGUAGES)
# Tables whose rows point at a source or a variable (all with ON DELETE RESTRICT).
REFERENCING = (TaskExecution, RawPayload, DataPoint, CountryMonthTotal)


@dataclass(frozen=True)
class RegisteredTask:
    """A task of the Celery app's catalogue: its name, type, queue and retry limit."""

    name: str
    task_type: str
    queue: str
    max_retries: int | None


def registered_tasks() -> dict[str, list[RegisteredTask]]:
    """The Celery app's typed tasks grouped by task type, each with the queue it routes to."""
    celery = current_app.extensions["celery"]
    grouped: dict[str, list[RegisteredTask]] = {}
    for name in sorted(celery.tasks):
        task = celery.tasks[name]
        task_type = getattr(task, "task_type", None)
        if not task_type:
            continue
        route = celery.amqp.router.route({}, name, (), {})
        queue = route.get("queue")
        grouped.setdefault(task_type, []).append(
            RegisteredTask(
                name=name,
                task_type=task_type,
                queue=getattr(queue, "name", None) or celery.conf.task_default_queue,
                max_retries=task.max_retries,
            )
        )
    return grouped


def _clean(values: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The given ``fields`` of ``values``, strings stripped and empty optional text as None."""
    cleaned: dict[str, Any] = {}
    for name in fields:
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, str):
            value = value.strip() or None
        cleaned[name] = value
    return cleaned


def _refuse_if(condition: bool, field: str, message: str) -> None:
    if condition:
        raise Conflict(message, {field: [message]})


def _require(values: dict[str, Any], field: str) -> None:
    if values.get(field) is None and field in values:
        message = _("This field is required.")
        raise InvalidInput(message, {field: [message]})


def _check_url(url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
        message = _("Enter an http:// or https:// address, e.g. https://api.example.org/v1.")
        raise InvalidInput(message, {"base_url": [message]})


def _check_path(path: str | None) -> None:
    if path is not None and (" " in path or "://" in path):
        message = _("Enter a path relative to the source's address, e.g. /idus/last-180-days/.")
        raise InvalidInput(message, {"endpoint_path": [message]})


def _apply(row: Any, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Set ``values`` on ``row``; return the changed fields as ``{field: [old, new]}``."""
    changes = {}
    for name, value in values.items():
        old = getattr(row, name)
        if old != value:
            setattr(row, name, value)
            changes[name] = [old, value]
    return changes


def _source_values(values: Mapping[str, Any], source: Source | None) -> dict[str, Any]:
    cleaned = _clean(values, SOURCE_FIELDS + DESCRIPTION_FIELDS)
    for field in ("code", "name", "source_type"):
        _require(cleaned, field)
    _check_url(cleaned.get("base_url"))
    others = select(Source.id).where(Source.id != source.id) if source else select(Source.id)
    if cleaned.get("code"):
        taken = db.session.scalar(others.where(Source.code == cleaned["code"]))
        _refuse_if(
            taken is not None,
            "code",
            _("A source with code %(code)s already exists.", code=cleaned["code"]),
        )
    if cleaned.get("name"):
        taken = db.session.scalar(others.where(func.lower(Source.name) == cleaned["name"].lower()))
        _refuse_if(
            taken is not None,
            "name",
            _("A source named %(name)s already exists.", name=cleaned["name"]),
        )
    return cleaned


def create_source(values: Mapping[str, Any]) -> Source:
    """Add a source from form values (code, name, source_type, base_url, descriptions...)."""
    cleaned = _source_values(values, None)
    source = Source(**cleaned)
    db.session.add(source)
    db.session.flush()
    record_audit("source.create", "source", source.id, details={"code": source.code})
    return source


def update_source(source: Source, values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Change a source's fields; returns what changed (audited)."""
    changes = _apply(source, _source_values(values, source))
    if changes:
        db.session.flush()
        record_audit("source.update", "source", source.id, details={"fields": sorted(changes)})
    return changes


def set_source_active(source: Source, active: bool) -> bool:
    """Deactivate or reactivate a source; False when it already was in that state."""
    if source.is_active == active:
        return False
    source.is_active = active
    action = "source.reactivate" if active else "source.deactivate"
    record_audit(action, "source", source.id, details={"code": source.code})
    return True


def _referenced(*conditions: ColumnElement[bool]) -> bool:
    return any(db.session.scalar(select(exists().where(condition))) for condition in conditions)


def delete_source(source: Source) -> None:
    """Delete a source that nothing refers to; otherwise a Conflict saying why."""
    has_variables = db.session.scalar(select(exists().where(Variable.source_id == source.id)))
    _refuse_if(
        bool(has_variables),
        "source",
        _(
            "Source %(code)s still has variables; delete or move them first, or deactivate it.",
            code=source.code,
        ),
    )
    _refuse_if(
        _referenced(*(model.source_id == source.id for model in REFERENCING)),
        "source",
        _(
            "Source %(code)s is referenced by executions or stored data and cannot be deleted; "
            "deactivate it instead.",
            code=source.code,
        ),
    )
    details = {"code": source.code, "name": source.name}
    _delete(source)
    record_audit("source.delete", "source", source.id, details=details)


def _variable_values(
    source: Source, values: Mapping[str, Any], variable: Variable | None
) -> dict[str, Any]:
    cleaned = _clean(values, VARIABLE_FIELDS + DESCRIPTION_FIELDS)
    for field in ("code", "name"):
        _require(cleaned, field)
    _check_path(cleaned.get("endpoint_path"))
    if cleaned.get("code"):
        query = select(Variable.id).where(
            Variable.source_id == source.id, Variable.code == cleaned["code"]
        )
        if variable is not None:
            query = query.where(Variable.id != variable.id)
        _refuse_if(
            db.session.scalar(query) is not None,
            "code",
            _(
                "Source %(source)s already has a variable with code %(code)s.",
                source=source.code,
                code=cleaned["code"],
            ),
        )
    return cleaned


def create_variable(source: Source, values: Mapping[str, Any]) -> Variable:
    """Add a variable to ``source``."""
    variable = Variable(source=source, **_variable_values(source, values, None))
    db.session.add(variable)
    db.session.flush()
    record_audit(
        "variable.create",
        "variable",
        variable.id,
        details={"source": source.code, "code": variable.code},
    )
    return variable


def update_variable(variable: Variable, values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Change a variable's fields; returns what changed (audited)."""
    changes = _apply(variable, _variable_values(variable.source, values, variable))
    if changes:
        db.session.flush()
        record_audit(
            "variable.update", "variable", variable.id, details={"fields": sorted(changes)}
        )
    return changes


def set_variable_active(variable: Variable, active: bool) -> bool:
    """Deactivate or reactivate a variable; False when it already was in that state."""
    if variable.is_active == active:
        return False
    variable.is_active = active
    action = "variable.reactivate" if active else "variable.deactivate"
    record_audit(action, "variable", variable.id, details={"code": variable.code})
    return True


def delete_variable(variable: Variable) -> None:
    """Delete a variable that nothing refers to; otherwise a Conflict saying why."""
    _refuse_if(
        _referenced(*(model.variable_id == variable.id for model in REFERENCING)),
        "variable",
        _(
            "Variable %(code)s is referenced by executions or stored data and cannot be "
            "deleted; deactivate it instead.",
            code=variable.code,
        ),
    )
    details = {"source": variable.source.code, "code": variable.code}
    _delete(variable)
    record_audit("variable.delete", "variable", variable.id, details=details)


def _delete(row: Source | Variable) -> None:
    """Delete ``row``; a reference added since the check still ends as a Conflict (the caller
    rolls back on it)."""
    try:
        db.session.delete(row)
        db.session.flush()
    except IntegrityError:
        message = _("It is still referenced and cannot be deleted; deactivate it instead.")
        raise Conflict(message) from None


def update_task_type(task_type: TaskType, values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Change a task type's descriptions (its name is fixed: tasks declare it in code)."""
    changes = _apply(task_type, _clean(values, DESCRIPTION_FIELDS))
    if changes:
        db.session.flush()
        record_audit(
            "task_type.update", "task_type", task_type.id, details={"fields": sorted(changes)}
        )
    return changes


def delete_task_type(task_type: TaskType) -> None:
    """Delete a task type no task declares and no execution refers to (the latter rule is
    app.services.task_types'). A type still declared in code would come back nameless: tracking
    would store its next executions without a type."""
    declared = registered_tasks().get(task_type.name, [])
    _refuse_if(
        bool(declared),
        "task_type",
        _(
            "Task type %(name)s is declared by tasks in the code (%(task)s...) and cannot be "
            "deleted.",
            name=task_type.name,
            task=declared[0].name if declared else "",
        ),
    )
    details = {"name": task_type.name}
    _delete_unused_type(task_type)
    record_audit("task_type.delete", "task_type", task_type.id, details=details)
