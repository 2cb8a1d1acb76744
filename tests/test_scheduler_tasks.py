"""The tasks the predefined schedules name do real work (run here in-process, in order)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from flask import Flask

from app.extensions import db
from app.models import Source, TaskExecution, TaskStatus
from app.models.types import utcnow
from app.tasks import data_pipeline, task_monitoring


def test_health_check_reports_redis_and_database(app: Flask) -> None:
    result = task_monitoring.health_check()
    assert result["healthy"] is True
    assert result["checks"] == {"redis": {"ok": True}, "database": {"ok": True}}


def test_health_check_reports_an_unreachable_redis(make_app) -> None:
    from tests.support import free_port

    broken = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with broken.app_context():
        result = task_monitoring.health_check.run()
    assert result["healthy"] is False and result["checks"]["redis"]["ok"] is False


def test_daily_statistics_count_yesterday_by_task_and_status(app: Flask) -> None:
    yesterday = utcnow() - timedelta(days=1)
    rows = [("a", TaskStatus.SUCCESS, yesterday)] * 3 + [
        ("a", TaskStatus.FAILURE, yesterday),
        ("b", TaskStatus.SUCCESS, yesterday),
        ("a", TaskStatus.SUCCESS, utcnow()),  # today: not counted
    ]
    for name, status, created in rows:
        db.session.add(TaskExecution(
            task_id=str(uuid4()), task_name=name, status=status, created_at=created,
            error_message="boom" if status == TaskStatus.FAILURE else None,
        ))  # fmt: skip
    db.session.commit()
    result = task_monitoring.aggregate_daily_statistics()
    assert result["day"] == yesterday.date().isoformat()
    assert result["total"] == 5
    assert result["by_task"] == {"a": {"success": 3, "failure": 1}, "b": {"success": 1}}


def test_pipeline_tasks_report_what_they_cover(app: Flask) -> None:
    db.session.add(Source(code="idmc", name="IDMC"))
    db.session.commit()
    assert data_pipeline.run_full_pipeline(source="idmc")["found"] is True
    assert data_pipeline.run_full_pipeline(source="nope")["found"] is False
    checked = data_pipeline.validate_data()
    assert checked["sources"] == 1 and checked["stuck_started"] == 0
