"""Model rules and database constraints: each violation is refused and nothing is written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask_babel import refresh
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError, StatementError

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.models import Source, TaskExecution, TaskStatus, TaskType, Variable
from app.services.task_types import DEFAULT_TASK_TYPES, delete_task_type, seed_task_types
from tests import factories


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def retrieval() -> TaskType:
    return db.session.scalar(select(TaskType).where(TaskType.name == "retrieval"))


def new_execution(**fields) -> TaskExecution:
    return TaskExecution(task_id=str(uuid.uuid4()), task_name="demo.task", **fields)


def test_default_task_types_are_seeded_once(app: Flask) -> None:
    assert set(db.session.scalars(select(TaskType.name))) == set(DEFAULT_TASK_TYPES)
    assert seed_task_types() == []
    assert count(TaskType) == 5


@pytest.mark.parametrize(
    "name", ["Retrieval", "data-retrieval", "1st", "", "with space", "class", "x" * 65, "é"]
)
def test_invalid_task_type_names_are_refused(app: Flask, name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        TaskType(name=name)
    assert "lowercase Python identifier" in caught.value.message
    assert "name" in caught.value.fields
    assert count(TaskType) == 5


def test_valid_task_type_name_is_accepted(app: Flask) -> None:
    db.session.add(TaskType(name="location_matching"))
    db.session.commit()
    assert count(TaskType) == 6


def test_duplicate_task_type_name_is_refused(app: Flask) -> None:
    db.session.add(TaskType(name="retrieval"))
    with pytest.raises(Conflict, match="already exists"):
        db.session.flush()
    db.session.rollback()
    assert count(TaskType) == 5


def test_database_refuses_duplicate_type_name_behind_the_model(app: Flask) -> None:
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):
        db.session.execute(
            insert(TaskType).values(name="retrieval", created_at=now, updated_at=now)
        )
    db.session.rollback()
    assert count(TaskType) == 5


def test_description_follows_the_locale_with_english_fallback(app: Flask) -> None:
    task_type = retrieval()

    def described_in(language: str) -> str:
        with app.test_request_context(headers={"Accept-Language": language}):
            refresh()  # the test shares one app context (and Babel's cache) across requests
            return task_type.description

    assert described_in("fr").startswith("Récupère")
    assert described_in("ar").startswith("جلب")
    task_type.description_es = None
    assert described_in("es").startswith("Fetch raw data")
    assert task_type.descriptions()["es"] is None


def test_task_type_with_executions_cannot_be_deleted(app: Flask) -> None:
    task_type = retrieval()
    db.session.add(new_execution(task_type=task_type))
    db.session.commit()
    with pytest.raises(Conflict, match="has executions"):
        delete_task_type(task_type)
    db.session.rollback()
    with pytest.raises(IntegrityError):
        db.session.execute(delete(TaskType).where(TaskType.id == task_type.id))
    db.session.rollback()
    assert count(TaskType) == 5


def test_unused_task_type_can_be_deleted(app: Flask) -> None:
    delete_task_type(retrieval())
    db.session.commit()
    assert count(TaskType) == 4


def test_failure_without_error_message_is_refused(app: Flask) -> None:
    db.session.add(new_execution(status=TaskStatus.FAILURE))
    with pytest.raises(InvalidInput) as caught:
        db.session.flush()
    assert "error message" in caught.value.fields["error_message"][0]
    db.session.rollback()
    assert count(TaskExecution) == 0


def test_completed_before_started_is_refused(app: Flask) -> None:
    now = datetime.now(UTC)
    db.session.add(new_execution(started_at=now, completed_at=now - timedelta(seconds=1)))
    with pytest.raises(InvalidInput) as caught:
        db.session.flush()
    assert "completed_at" in caught.value.fields
    db.session.rollback()
    assert count(TaskExecution) == 0


def test_duplicate_task_id_is_refused(app: Flask) -> None:
    task_id = str(uuid.uuid4())
    db.session.add(TaskExecution(task_id=task_id))
    db.session.commit()
    db.session.add(TaskExecution(task_id=task_id))
    with pytest.raises(Conflict, match="already exists"):
        db.session.flush()
    db.session.rollback()
    assert count(TaskExecution) == 1


@pytest.mark.parametrize("task_id", ["not-a-uuid", "", "1234"])
def test_task_id_must_be_a_uuid(app: Flask, task_id: str) -> None:
    with pytest.raises(InvalidInput, match="UUID"):
        TaskExecution(task_id=task_id)


@pytest.mark.parametrize(
    "fields",
    [
        {"status": TaskStatus.FAILURE},
        {"status": TaskStatus.FAILURE, "error_message": ""},
        {
            "started_at": datetime(2026, 1, 1, 12, tzinfo=UTC),
            "completed_at": datetime(2026, 1, 1, 11, tzinfo=UTC),
        },
        {"task_type_id": 999_999},
    ],
    ids=["failure-null-error", "failure-empty-error", "completed-before-started", "unknown-type"],
)
def test_database_constraints_hold_behind_the_orm(app: Flask, fields: dict) -> None:
    """Bulk writes (the recorder's path) bypass ORM checks; the database still refuses."""
    with pytest.raises(IntegrityError):
        db.session.execute(insert(TaskExecution).values(**factories.execution_values(**fields)))
    db.session.rollback()
    assert count(TaskExecution) == 0


def test_database_refuses_duplicate_task_id_behind_the_orm(app: Flask) -> None:
    row = factories.execution_values()
    db.session.execute(insert(TaskExecution).values(**row))
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(insert(TaskExecution).values(**{**row, "id": None}))
    db.session.rollback()
    assert count(TaskExecution) == 1


def test_status_outside_the_enum_is_refused_by_the_database(app: Flask) -> None:
    with pytest.raises(IntegrityError):
        db.session.execute(
            insert(TaskExecution.__table__).values(
                **{**factories.execution_values(), "status": "exploded"}
            )
        )
    db.session.rollback()
    assert count(TaskExecution) == 0


def test_properties(app: Flask) -> None:
    start = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    done = new_execution(
        status=TaskStatus.SUCCESS,
        started_at=start,
        completed_at=start + timedelta(seconds=42.5),
        retry_count=1,
        max_retries=3,
    )
    assert done.duration_seconds == 42.5
    assert done.is_completed
    assert done.can_retry
    running = new_execution(status=TaskStatus.STARTED, started_at=start)
    assert running.duration_seconds is None
    assert not running.is_completed
    exhausted = new_execution(status=TaskStatus.FAILURE, retry_count=3, max_retries=3)
    assert not exhausted.can_retry
    assert new_execution(retry_count=10, max_retries=None).can_retry
    for status in (TaskStatus.PENDING, TaskStatus.RETRY):
        assert not new_execution(status=status).is_completed
    assert new_execution(status=TaskStatus.REVOKED).is_completed


def test_success_rate_over_similar_finished_tasks(app: Flask) -> None:
    outcomes = [TaskStatus.SUCCESS] * 3 + [TaskStatus.FAILURE] + [TaskStatus.STARTED]
    for status in outcomes:
        db.session.add(
            new_execution(
                status=status,
                error_message="boom" if status == TaskStatus.FAILURE else None,
            )
        )
    other = TaskExecution(task_id=str(uuid.uuid4()), task_name="other.task")
    db.session.add(other)
    db.session.commit()
    sample = db.session.scalars(select(TaskExecution).where(TaskExecution.task_name == "demo.task"))
    assert next(iter(sample)).success_rate == pytest.approx(0.75)
    assert other.success_rate is None


def test_times_come_back_timezone_aware_utc(app: Flask) -> None:
    local = datetime(2026, 3, 29, 3, 30, tzinfo=UTC).astimezone()
    execution = new_execution(started_at=local)
    db.session.add(execution)
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(TaskExecution, execution.id)
    assert stored.started_at == local
    assert stored.started_at.utcoffset() == timedelta(0)
    assert stored.created_at.tzinfo is not None


def test_naive_datetimes_are_refused(app: Flask) -> None:
    db.session.add(new_execution(started_at=datetime(2026, 1, 1)))
    with pytest.raises(StatementError, match="naive datetime") as caught:
        db.session.flush()
    assert isinstance(caught.value.orig, ValueError)  # our type refused it, not the driver
    db.session.rollback()


def test_source_variables_and_restrict(app: Flask) -> None:
    source = Source(code="idmc", name="IDMC", base_url="https://example.invalid/api")
    variable = Variable(source=source, code="new_displacements", name="New displacements")
    db.session.add_all([source, variable])
    db.session.commit()
    db.session.add(new_execution(source=source, variable=variable))
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(delete(Source).where(Source.id == source.id))
    db.session.rollback()
    db.session.add(Variable(source=source, code="new_displacements", name="Again"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(InvalidInput):
        Source(code="IDMC-API", name="Bad")
