"""Scale benchmark of the scheduled-task pages: 1,000,000 executions (``bench/scale.py``'s
load), a few hundred schedules, one of them with 200,000 runs, then p50/p95 of each page.

    .venv/bin/python bench/web_scheduled.py [--rows 1000000] [--schedules 300] [--requests 50]

Same servers as ``bench/scale.py`` (BENCH_DATABASE_URL: a scratch database is created and
dropped; BENCH_REDIS_URL is flushed). ``prepare`` and ``calls`` are what ``bench/scale.py``'s
table needs to include these pages.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, make_url, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scale import REDIS, SERVER, load, timed

TASK = "task_monitoring.tasks.health_check"
BUSY_EVERY = 5  # the busy schedule ran every 5th execution: 200,000 runs of 1,000,000


def prepare(schedules: int) -> int:
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


def calls(busy: int, client, headers: dict) -> dict[str, str]:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--schedules", type=int, default=300)
    parser.add_argument("--requests", type=int, default=50)
    options = parser.parse_args()
    server = make_url(SERVER)
    name = f"ewas_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run(server.set(database=name).render_as_string(hide_password=False), options)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run(url: str, options: argparse.Namespace) -> None:
    import redis
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.models import Role
    from app.services.task_types import seed_task_types
    from app.services.tokens import create_token
    from app.services.users import create_user

    redis.Redis.from_url(REDIS).flushdb()
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": REDIS, "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
        seed_task_types()
        user = create_user("bench", Role.OPERATOR, "bench-password-1")
        token = create_token(user, name="bench").plaintext
        db.session.commit()
        started = time.perf_counter()
        load(app, options.rows)
        busy = prepare(options.schedules)
        print(f"loaded in {time.perf_counter() - started:.0f} s")
        headers = {"Authorization": f"Bearer {token}"}
        client = app.test_client()
        print(f"{'page':40} {'p50 ms':>8} {'p95 ms':>8}")
        for label, call in calls(busy, client, headers).items():
            extra = {"HX-Request": "true"} if "HTMX" in label else {}
            p50, p95 = timed(client, call, {**headers, **extra}, options.requests)
            print(f"{label:40} {p50:8.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
