"""The operator pages in ``bench/scale.py``'s table: the data they show beyond the 1,000,000
executions (a few hundred schedules, one with 200,000 runs; alerts; dead letters; sources) and
the pages and fragments to time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

TASK = "task_monitoring.tasks.health_check"
BUSY_EVERY = 5  # the busy schedule ran every 5th execution: 200,000 runs of 1,000,000


def prepare_schedules(schedules: int) -> int:
    """Add ``schedules`` schedules and link executions to them as their runs; returns the busy one.

    The busy schedule owns every ``BUSY_EVERY``-th execution; 100,000 more are spread over the
    others. Run rows and execution links are written in SQL (the tracking layer writes the same).
    """
    from app.extensions import db
    from app.models import ScheduledTask
    from app.scheduler import service

    for n in range(schedules):
        spec = (
            {"kind": "crontab", "crontab": f"{n % 60} * * * *", "timezone": "Africa/Nairobi"}
            if n % 2
            else {"kind": "interval", "interval_every": 5 + n, "interval_unit": "minutes"}
        )
        service.create_schedule(name=f"schedule-{n:04d}", task=TASK, enabled=n % 7 != 0, **spec)
    db.session.commit()
    ids = list(db.session.scalars(select(ScheduledTask.id).order_by(ScheduledTask.id)))
    busy, others = ids[0], ids[1:]
    db.session.execute(
        text(
            "insert into schedule_runs"
            " (schedule_id, occurrence, kind, task_id, sent_at, created_at)"
            " select case when id % :busy_every = 0 then :busy"
            "  else (:others)[1 + (id / :busy_every) % :count] end,"
            "  created_at, 'scheduled', task_id, created_at, created_at"
            " from task_executions where id % :busy_every = 0 or id % 10 = 1"
        ),
        {"busy_every": BUSY_EVERY, "busy": busy, "others": others, "count": len(others)},
    )
    db.session.execute(
        text(
            "update task_executions e set schedule_id = r.schedule_id,"
            " schedule_occurrence = r.occurrence, run_kind = 'scheduled'"
            " from schedule_runs r where r.task_id = e.task_id"
        )
    )
    db.session.execute(text("analyze"))
    db.session.commit()
    return busy


def scheduled_calls(busy: int, client, headers: dict) -> dict[str, str]:
    """The scheduled-task pages to time, by label."""
    detail = f"/tasks/scheduled/{busy}/"
    page = client.get(detail, headers=headers).text
    cursor = None
    for _ in range(200):  # 200 pages of 25 runs: 5,000 deep
        marker = page.find("cursor=")
        if marker < 0:
            break
        cursor = page[marker + 7 : page.index('"', marker)].split("#")[0]
        page = client.get(f"{detail}?cursor={cursor}", headers=headers).text
    return {
        "scheduled: list": "/tasks/scheduled/",
        "scheduled: list, search + disabled": "/tasks/scheduled/?q=schedule-00&enabled=no",
        "scheduled: list fragment (HTMX)": "/tasks/scheduled/?q=01",
        "scheduled: detail (200,000 runs)": detail,
        "scheduled: history 5,000 runs deep": f"{detail}?cursor={cursor}",
        "scheduled: edit form": f"{detail}edit/",
        "scheduled: preview": "/tasks/scheduled/preview/?kind=crontab&crontab=*/5+9-17+*+*+1-5"
        "&timezone=Europe/Berlin",
    }


def prepare_operator_data(alerts: int = 20_000, dead_letters: int = 10_000) -> None:
    """Alerts, dead letters, and sources with variables, as months of operation leave them."""
    from app.extensions import db
    from app.models import Alert, DeadLetter, Source, Variable

    now = datetime.now(UTC)
    db.session.execute(
        Alert.__table__.insert(),
        [
            {
                "created_at": now - timedelta(minutes=7 * i),
                "kind": "task_failure" if i % 3 else "dead_letter",
                "severity": "critical" if i % 10 == 0 else "error",
                "title": f"data_pipeline.tasks.retrieve_{i % 10} failed",
                "message": "ConnectionError: the source did not answer",
                "task_id": f"00000000-0000-4000-8000-{i:012d}",
                "task_name": f"data_pipeline.tasks.retrieve_{i % 10}",
                "acknowledged_at": now if i % 4 else None,
                "acknowledged_by": "operator" if i % 4 else None,
            }
            for i in range(alerts)
        ],
    )
    db.session.execute(
        DeadLetter.__table__.insert(),
        [
            {
                "task_id": f"00000000-0000-4000-9000-{i:012d}",
                "task_name": f"data_pipeline.tasks.retrieve_{i % 10}",
                "queue": "data_retrieval",
                "args": [i % 50, 1],
                "kwargs": {},
                "headers": {},
                "error_message": f"HTTPError: 50{i % 4} from the source",
                "created_at": now - timedelta(minutes=11 * i),
            }
            for i in range(dead_letters)
        ],
    )
    for n in range(20):
        source = Source(code=f"source_{n}", name=f"Source {n}", base_url="https://example.org/api")
        source.variables = [
            Variable(code=f"variable_{v}", name=f"Variable {v}", endpoint_path=f"/v{v}")
            for v in range(10)
        ]
        db.session.add(source)
    db.session.execute(text("analyze"))
    db.session.commit()


def page_calls(client, headers: dict, one: str, cursor: str, frm: str, to: str, busy: int):
    """Every page and fragment, by label: (url, True for an HTMX fragment request)."""
    from app.extensions import db
    from app.models import DeadLetter, Source

    source = db.session.scalar(select(Source.id).limit(1))
    letter = db.session.scalar(select(DeadLetter.id).limit(1))
    pages = {
        "dashboard": "/tasks/",
        "dashboard: metrics fragment": ("/tasks/dashboard/metrics", True),
        "dashboard: trends fragment": ("/tasks/dashboard/trends", True),
        "dashboard: health fragment": ("/tasks/dashboard/health", True),
        "dashboard: recent fragment": ("/tasks/dashboard/recent", True),
        "executions": "/tasks/executions/",
        "executions, filtered": (
            "/tasks/executions/?status=failure&task_type=retrieval"
            f"&created_from={frm[:16]}&created_to={to[:16]}"
        ),
        "executions 10,000 deep (cursor)": f"/tasks/executions/?cursor={cursor}",
        "executions, task id prefix": f"/tasks/executions/?q={one[:8]}",
        "executions, a task name that never ran": "/tasks/executions/?task_name=no.such.task",
        "executions, one queue": "/tasks/executions/?queue=data_retrieval",
        "executions: table fragment": ("/tasks/executions/?status=failure", True),
        "execution detail": f"/tasks/executions/{one}/",
        "execution detail: live fragment": (f"/tasks/executions/{one}/", True),
        **scheduled_calls(busy, client, headers),
        "workers": "/tasks/workers/",
        "queues (7-day trends)": "/tasks/queues/",
        "dead letters": "/tasks/dead-letters/",
        "dead letters, by task": "/tasks/dead-letters/?task=data_pipeline.tasks.retrieve_3",
        "dead letter detail": f"/tasks/dead-letters/{letter}/",
        "alerts": "/tasks/alerts/",
        "alerts, all": "/tasks/alerts/?state=all",
        "task types": "/tasks/types/",
        "sources": "/tasks/sources/",
        "source with variables": f"/tasks/sources/{source}/",
        "users (admin)": "/tasks/users/",
        "API tokens (admin)": "/tasks/tokens/",
        "audit log (admin)": "/tasks/audit/",
    }
    return {
        label: call if isinstance(call, tuple) else (call, "HTMX" in label)
        for label, call in pages.items()
    }
