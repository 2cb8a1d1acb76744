"""Scale benchmark of the JSON API and of every operator page: N executions over 90 days in
PostgreSQL (plus schedules, runs, alerts, dead letters and queue snapshots), then p50/p95 of each
call, page and fragment rendered on the server, and the deep page fetched by cursor versus OFFSET.

    .venv/bin/python bench/scale.py [--rows 1000000] [--requests 50]

Needs BENCH_DATABASE_URL (a PostgreSQL server; a scratch database is created and dropped) and a
Redis at BENCH_REDIS_URL (database 12 by default; flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, make_url, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
NAMES = [f"data_pipeline.tasks.retrieve_{i}" for i in range(10)] + [
    f"data_pipeline.tasks.process_{i}" for i in range(10)
]
COUNTRIES = [f"C{i:03d}" for i in range(200)]  # 200 country codes: each in 0.5% of executions


def arguments(i: int) -> tuple[str, str]:
    """Positional and keyword arguments of execution ``i`` as JSON: a source (one of 50), a
    country (one of 200) and a nested list of years (one of 5), like the retrieval tasks'."""
    source = i % 50
    args = json.dumps([source, i % 7])
    kwargs = json.dumps(
        {"source_id": source, "country": COUNTRIES[i % 200], "options": {"years": [2020 + i % 5]},
         "request": f"r{i}"}
    )  # fmt: skip
    return args, kwargs


def load(app, rows: int) -> None:
    """COPY ``rows`` executions spread over 90 days, then roll them up by hour in SQL."""
    from app.extensions import db
    from app.models import TaskType

    types = dict(db.session.execute(select(TaskType.name, TaskType.id)).all())
    end = datetime.now(UTC)
    span = 90 * 86400
    raw = db.engine.raw_connection()
    cursor = raw.cursor()
    with cursor.copy(
        "COPY task_executions (task_id, task_name, task_type_id, status, queue, created_at, "
        "updated_at, started_at, completed_at, error_message, retry_count, is_dead_letter, "
        "lost_suspect, replayable, state_rank, state_at, args, kwargs) FROM STDIN"
    ) as copy:
        for i in range(rows):
            created = end - timedelta(seconds=span * (rows - i) / rows)
            name = NAMES[i % len(NAMES)]
            kind = "retrieval" if "retrieve" in name else "processing"
            status = "failure" if i % 20 == 0 else "success"
            started = created + timedelta(seconds=1)
            done = started + timedelta(seconds=0.2 + (i % 50) / 10)
            copy.write_row(
                (
                    str(uuid.UUID(int=i + 1)),
                    name,
                    types[kind],
                    status,
                    "data_retrieval",
                    created,
                    done,
                    started,
                    done,
                    "boom" if status == "failure" else None,
                    0,
                    False,
                    False,
                    True,
                    0,
                    0,
                    *arguments(i),
                )
            )
    raw.commit()
    from app.models.statistics import DURATION_BOUNDS, HISTOGRAM_COLUMNS

    bounds = [0.0, *DURATION_BOUNDS]
    buckets = []
    for index, _column in enumerate(HISTOGRAM_COLUMNS):
        low = bounds[index]
        cond = f"d > {low}" if index else "d >= 0"
        if index < len(DURATION_BOUNDS):
            cond += f" and d <= {DURATION_BOUNDS[index]}"
        buckets.append(f"sum(case when {cond} then 1 else 0 end)")
    cursor.execute(f"""
        insert into execution_stats_hourly (hour, task_type, task_name, success, failure, revoked,
            duration_count, duration_sum, {", ".join(HISTOGRAM_COLUMNS)})
        select date_trunc('hour', completed_at), t.name, task_name,
            sum(case when status = 'success' then 1 else 0 end),
            sum(case when status = 'failure' then 1 else 0 end),
            sum(case when status = 'revoked' then 1 else 0 end),
            count(d), coalesce(sum(d), 0), {", ".join(buckets)}
        from (select *, extract(epoch from completed_at - started_at) as d
              from task_executions) e join task_types t on t.id = e.task_type_id
        group by 1, 2, 3""")
    cursor.execute("analyze")
    raw.commit()
    raw.close()


def load_queue_history(app) -> None:
    """Eight days of five-minute snapshots of every queue, a heartbeat and queued messages."""
    import time as clock

    import redis

    from app.extensions import db
    from app.models import QueueSnapshot
    from app.monitoring.queues import queue_names
    from app.tracking.heartbeats import beat_once

    end = datetime.now(UTC)
    rows = [
        {
            "queue": q,
            "taken_at": end - timedelta(minutes=5 * i),
            "depth": i % 97,
            "latency_seconds": i % 300,
        }
        for q in queue_names()
        for i in range(8 * 288)
    ]
    db.session.execute(QueueSnapshot.__table__.insert(), rows)
    db.session.commit()
    client = redis.Redis.from_url(REDIS)
    beat_once(
        client,
        {"hostname": "bench@host", "host": "host", "pid": 1, "queues": queue_names(),
         "concurrency": 4, "active": 0, "active_tasks": [], "last_seen": clock.time()},
    )  # fmt: skip
    celery = app.extensions["celery"]
    for _ in range(100):
        celery.send_task("data_pipeline.tasks.retrieve_source", args=[1, 1])


def timed(client, url: str, headers: dict, n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 503), (url, response.status_code, response.text[:200])
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
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
    from app.models import Role, TaskExecution
    from app.services.task_types import seed_task_types
    from app.services.tokens import create_token
    from app.services.users import create_user
    from bench.pages import page_calls, prepare_operator_data, prepare_schedules
    from bench.runs import CHAIN, prepare_runs, run_calls

    redis.Redis.from_url(REDIS).flushdb()
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": REDIS, "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
        seed_task_types()
        user = create_user("bench", Role.ADMIN, "bench-password-1")
        token = create_token(user, name="bench").plaintext
        db.session.commit()
        started = time.perf_counter()
        load(app, options.rows)
        print(f"loaded {options.rows} executions in {time.perf_counter() - started:.0f} s")
        load_queue_history(app)
        busy = prepare_schedules(300)
        runs = prepare_runs()
        print(f"made {runs} runs of {CHAIN} steps")
        prepare_operator_data()
        elapsed = time.perf_counter() - started
        print(f"added schedules, runs, alerts and dead letters: {elapsed:.0f} s in all")
        headers = {"Authorization": f"Bearer {token}"}
        client = app.test_client()
        base = "/tasks/api/executions/?page_size=50"
        cursor = None
        for _ in range(200):  # 200 pages of 50: 10,000 rows deep
            page = client.get(base + (f"&cursor={cursor}" if cursor else ""), headers=headers).json
            cursor = page["next_cursor"]
        one = db.session.scalar(select(TaskExecution.task_id).limit(1))
        end = datetime.now(UTC)
        frm = (end - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        to = (end - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        calls = {
            "first page": base,
            "page 10,000 deep (cursor)": f"{base}&cursor={cursor}",
            "failures of one type, date range": (
                f"{base}&status=failure&task_type=retrieval&created_from={frm}&created_to={to}"
            ),
            "one execution": f"/tasks/api/executions/{one}/",
            "types with statistics": "/tasks/api/types/?window_hours=720",
            "statistics": "/tasks/api/statistics/?window_hours=720",
            "one task's duration distribution": f"/tasks/api/tasks/{NAMES[0]}/durations/",
            "health": "/tasks/api/health/",
        }
        print(f"{'JSON API call':44} {'p50 ms':>8} {'p95 ms':>8}")
        for label, call in calls.items():
            p50, p95 = timed(client, call, headers, options.requests)
            print(f"{label:44} {p50:8.1f} {p95:8.1f}")
        pages = page_calls(client, headers, one, cursor, frm, to, busy)
        print(f"{'page or fragment (server side)':44} {'p50 ms':>8} {'p95 ms':>8}")
        slowest = ("", 0.0)
        for label, (call, fragment) in pages.items():
            extra = {"HX-Request": "true"} if fragment else {}
            p50, p95 = timed(client, call, {**headers, **extra}, options.requests)
            print(f"{label:44} {p50:8.1f} {p95:8.1f}")
            slowest = max(slowest, (label, p95), key=lambda item: item[1])
        print(f"slowest page p95: {slowest[1]:.1f} ms ({slowest[0]}); target <= 100 ms")
        print(f"{'runs: page, panel or API call':44} {'p50 ms':>8} {'p95 ms':>8}")
        slowest = ("", 0.0)
        for label, (call, fragment) in run_calls(busy).items():
            extra = {"HX-Request": "true"} if fragment else {}
            p50, p95 = timed(client, call, {**headers, **extra}, options.requests)
            print(f"{label:44} {p50:8.1f} {p95:8.1f}")
            slowest = max(slowest, (label, p95), key=lambda item: item[1])
        print(f"slowest runs call p95: {slowest[1]:.1f} ms ({slowest[0]}); target <= 50 ms")
        from app.paging import decode, seek
        from app.services.executions import KEY, NEWEST_FIRST

        deep = seek(select(TaskExecution), KEY, decode(cursor, KEY))
        queries = {
            "cursor": deep.limit(50),
            "OFFSET": select(TaskExecution).order_by(*NEWEST_FIRST).offset(10_000).limit(50),
        }
        p50s = {}
        for label, query in queries.items():
            samples = []
            for _ in range(options.requests):
                t0 = time.perf_counter()
                list(db.session.scalars(query))
                db.session.expunge_all()
                samples.append((time.perf_counter() - t0) * 1000)
            samples.sort()
            p50s[label] = statistics.median(samples)
            p95 = samples[int(0.95 * (len(samples) - 1))]
            print(
                f"{'page 10,000 deep, query only (' + label + ')':40} {p50s[label]:8.1f} {p95:8.1f}"
            )
        ratio = p50s["OFFSET"] / p50s["cursor"]
        print(f"deep page OFFSET/cursor latency ratio: {ratio:.1f}")
        argument_search(client, headers, options.requests)


def argument_search(client, headers: dict, requests: int) -> None:
    """p50/p95 of the executions API searching by argument values (the GIN indexes)."""
    base = "/tasks/api/executions/?page_size=50&arg="
    calls = {
        "one country (0.5% of rows)": "country%3DC007",
        "a value anywhere (0.5%)": "C042",
        "a nested list item (20%)": "years%3D2021",
        "source and country (0.5%)": "source_id%3D7+country%3DC007",
        "one request (a single row)": "request%3Dr4242",
        "one country, failures only": "country%3DC007&status=failure",
    }
    print(f"{'argument search (JSON API)':44} {'p50 ms':>8} {'p95 ms':>8}")
    slowest = ("", 0.0)
    for label, search in calls.items():
        p50, p95 = timed(client, base + search, headers, requests)
        print(f"{label:44} {p50:8.1f} {p95:8.1f}")
        slowest = max(slowest, (label, p95), key=lambda item: item[1])
    print(f"argument search p95: {slowest[1]:.1f} ms ({slowest[0]}); target <= 100 ms")


if __name__ == "__main__":
    main()
