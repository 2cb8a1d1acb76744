"""Scheduler benchmark: 10,000 entries, our RedisScheduler, then celery-redbeat's, same run.

    .venv/bin/python bench/scheduler.py [--entries 10000] [--seconds 60]

Uses Redis database 12 on the local server (``BENCH_REDIS_URL``, default
``redis://127.0.0.1:6379/12``; it is flushed) and a scratch SQLite file. It measures:

- tick cost (p50/p99): wall time of ``tick()`` minus the time spent publishing messages and
  recording runs in the database (what "sending excluded" means here);
- fire drift (p99): publish time minus due time, for runs due after the scheduler started;
- edit pickup: time from the commit of an edit (an entry made due 50 ms later) to its send;
- the same tick cost for RedBeat's scheduler over the same 10,000 entries (in UTC: RedBeat has
  no per-entry time zone), and last the ratio of the p50 tick costs.

Both schedulers send real messages to Redis; the queues are emptied as the run goes.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
TASK = "task_monitoring.tasks.health_check"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def entry_specs(count: int, rng: random.Random) -> list[dict]:
    """3% of entries fire often (every 5-30 s, or every minute); the rest hourly to daily."""
    specs = []
    for n in range(count):
        busy = n % 33 == 0
        if n % 2:
            every = rng.randint(5, 30) if busy else rng.randint(1, 24) * 3600
            specs.append({"kind": "interval", "interval_every": every, "interval_unit": "seconds"})
        else:
            expr = "* * * * *" if busy else f"{rng.randint(0, 59)} {rng.randint(0, 23)} * * *"
            specs.append({"kind": "crontab", "crontab": expr, "timezone": rng.choice(ZONES)})
    return specs


def drain_queues(client) -> None:
    """Empty the queue lists (kombu adds priority-suffixed lists beside each queue)."""
    from celeryconfig import TASK_QUEUES

    client.delete(*TASK_QUEUES, *(f"{q}\x06\x16{p}" for q in TASK_QUEUES for p in (3, 6, 9)))


def bench_ours(app, specs: list[dict], seconds: float) -> dict:
    from app.extensions import db
    from app.models import ScheduledTask
    from app.models.types import utcnow
    from app.scheduler import service
    from app.scheduler.beat import RedisScheduler
    from app.scheduler.store import get_store

    class Measured(RedisScheduler):
        excluded = 0.0
        since = utcnow()  # set again when the run starts
        drifts: list[float] = []
        sent_at: dict[int, float] = {}

        def _publish(self, data, occurrence, kind, task_id):
            started = time.perf_counter()
            super()._publish(data, occurrence, kind, task_id)
            Measured.excluded += time.perf_counter() - started
            if kind == "scheduled" and occurrence >= Measured.since:
                Measured.drifts.append((utcnow() - occurrence).total_seconds())
            Measured.sent_at[data["id"]] = time.time()

        def _drain(self):
            started = time.perf_counter()
            try:
                return super()._drain()
            finally:
                Measured.excluded += time.perf_counter() - started

    with app.app_context():
        started = time.perf_counter()
        for n, spec in enumerate(specs):
            service.create_schedule(name=f"bench-{n}", task=TASK, **spec)
        db.session.commit()
        print(f"ours: created {len(specs)} schedules in {time.perf_counter() - started:.1f}s")
        slow = db.select(ScheduledTask.id).where(
            ScheduledTask.kind == "interval", ScheduledTask.interval_every >= 3600
        )
        slow_ids = list(db.session.scalars(slow.limit(20)))
    store = get_store(app)
    scheduler = Measured(app.extensions["celery"])
    ticks: list[float] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            Measured.excluded = 0.0
            started = time.perf_counter()
            interval = scheduler.run_pending()  # tick() minus its idle wait
            ticks.append(time.perf_counter() - started - Measured.excluded)
            stop.wait(scheduler.idle(interval))

    # Occurrences that fell due while the 10,000 entries were being created are not drift.
    Measured.since = utcnow()
    thread = threading.Thread(target=loop)
    thread.start()
    pickups = []
    deadline = time.monotonic() + seconds
    try:
        for schedule_id in slow_ids:
            if time.monotonic() > deadline - 3:
                break
            time.sleep(rng_sleep := 1.0)
            with app.app_context():
                schedule = db.session.get(ScheduledTask, schedule_id)
                run_at = utcnow() + timedelta(milliseconds=50)
                service.update_schedule(schedule, kind="one_time", run_at=run_at)
                db.session.commit()
                committed = time.time()
                db.session.remove()
            while schedule_id not in Measured.sent_at and time.time() - committed < 10:
                time.sleep(0.005)
            pickups.append(Measured.sent_at.get(schedule_id, float("inf")) - committed)
            drain_queues(store.client)
            del rng_sleep
        while time.monotonic() < deadline:
            time.sleep(1)
            drain_queues(store.client)
    finally:
        stop.set()
        thread.join()
        scheduler.close()
    return {"ticks": ticks, "drifts": Measured.drifts, "pickups": pickups}


def bench_redbeat(redis_url: str, specs: list[dict], seconds: float) -> list[float]:
    import redis
    from celery import Celery
    from celery.schedules import crontab, schedule
    from redbeat import RedBeatScheduler, RedBeatSchedulerEntry
    from redbeat.schedulers import acquire_distributed_beat_lock

    celery = Celery("redbeat-bench", broker=redis_url)
    celery.conf.update(
        redbeat_redis_url=redis_url,
        redbeat_key_prefix="redbeat",
        redbeat_lock_timeout=10,
        beat_max_loop_interval=0.5,
        timezone="UTC",
    )
    started = time.perf_counter()
    for n, spec in enumerate(specs):
        if spec["kind"] == "interval":
            when = schedule(run_every=timedelta(seconds=spec["interval_every"]), app=celery)
        else:
            minute, hour, *_ = spec["crontab"].split()
            when = crontab(minute=minute, hour=hour, app=celery)
        RedBeatSchedulerEntry(f"bench-{n}", TASK, when, app=celery).save()
    print(f"redbeat: created {len(specs)} entries in {time.perf_counter() - started:.1f}s")

    class Measured(RedBeatScheduler):
        excluded = 0.0

        def send_task(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return super().send_task(*args, **kwargs)
            finally:
                Measured.excluded += time.perf_counter() - started

    scheduler = Measured(celery)
    acquire_distributed_beat_lock(sender=type("S", (), {"scheduler": scheduler})())
    client = redis.Redis.from_url(redis_url)
    ticks: list[float] = []
    deadline = time.monotonic() + seconds
    last_drain = time.monotonic()
    while time.monotonic() < deadline:
        Measured.excluded = 0.0
        started = time.perf_counter()
        interval = scheduler.tick()
        ticks.append(time.perf_counter() - started - Measured.excluded)
        if time.monotonic() - last_drain > 1:
            drain_queues(client)
            last_drain = time.monotonic()
        time.sleep(max(0.0, min(interval, 0.5)))
    scheduler.close()
    return ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    options = parser.parse_args()
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    workdir = Path(tempfile.mkdtemp(prefix="ewas-bench-"))
    os.environ.update(REDIS_URL=redis_url, DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}")

    import logging

    import redis
    from flask_migrate import upgrade

    from app import create_app

    logging.disable(logging.INFO)
    redis.Redis.from_url(redis_url).flushdb()
    app = create_app({"SCHEDULER_LOCK_TTL": 10.0})
    with app.app_context():
        upgrade()
    specs = entry_specs(options.entries, random.Random(42))

    ours = bench_ours(app, specs, options.seconds)
    redis.Redis.from_url(redis_url).flushdb()
    theirs = bench_redbeat(redis_url, specs, options.seconds)
    redis.Redis.from_url(redis_url).flushdb()

    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:.2f} ms"

    ticks, drifts, pickups = ours["ticks"], ours["drifts"], ours["pickups"]
    print(f"entries: {options.entries}, run: {options.seconds:g}s per scheduler")
    print(f"ours: {len(ticks)} ticks, tick p50 {ms(ticks, 0.5)}, p99 {ms(ticks, 0.99)}")
    print(
        f"ours: {len(drifts)} scheduled sends, drift p50 {ms(drifts, 0.5)}, p99 {ms(drifts, 0.99)}"
    )
    print(f"ours: {len(pickups)} edits, pickup p50 {ms(pickups, 0.5)}, max {ms(pickups, 1.0)}")
    print(f"redbeat: {len(theirs)} ticks, tick p50 {ms(theirs, 0.5)}, p99 {ms(theirs, 0.99)}")
    our_p50, their_p50 = statistics.median(ticks), statistics.median(theirs)
    print(f"tick cost ratio ours/redbeat: {our_p50 / their_p50:.2f}")


if __name__ == "__main__":
    main()
