"""How fast the recorder drains the tracking stream, with one and with two recorders, and the
latency from a task's end to its row.

Drain: the stream is filled with N task lifecycles while no recorder reads it; then the real
recorder processes (``flask recorder``) are started, and once all are up the stream is handed to
them (their consumer group is moved back to its start) and timed until every execution's final
row is committed: once with 1 recorder, then a fresh fill (empty tables, flushed Redis) with 2.
Latency: one recorder runs while a sender writes 1,000 lifecycles a second for
``--latency-seconds``; each final event's time is compared with when its row is first seen final.

The lifecycles are those of bench/lifecycles.py: events exactly as the signal handlers make
them, with arguments, a result or an error, 3 log lines, 5% retried once, 2% failed.

Usage: .venv/bin/python bench/recorder.py [-n 200000] [--recorders 1,2] [--latency-seconds 20]
       [--repeat 1] [--database-url URL] [--redis-url URL]
It creates (and drops) its own PostgreSQL database and flushes the given Redis database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.tracking import events as ev
from app.tracking import quarantine
from app.tracking.emitter import STREAM, Emitter
from app.tracking.recorder import GROUP
from app.tracking.stream import backlog
from bench.lifecycles import RETRY_DELAY, VARIABLES, attempt_end, begin, shape, write
from bench.throughput import (
    BIN,
    cpu_seconds,
    log_dir,
    scratch_database,
    service_cpu,
    start,
    stop,
)

BLOCK = 256  # lifecycles per fill step: their publishes, then their attempts' ends
LATENCY_RATE = 1000  # lifecycles per second in the latency mode
TICK = 0.02  # seconds between the latency mode's sends, and between its polls of the rows


def fill(n: int, redis_url: str) -> int:
    """Write ``n`` lifecycles while no recorder reads; the group is created past them, so that
    the recorders, once all are up, are handed the stream at one instant. Returns the events."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    sender = Emitter(redis_url)  # the process that publishes (web, beat, a worker's task)
    connection = redis.ConnectionPool.from_url(redis_url).make_connection()
    retries: list[list[dict]] = []
    events = 0
    for first in range(0, n, BLOCK):
        now = time.time()
        entries, retries = retries, []
        for number in range(first, min(n, first + BLOCK)):
            task_id, entry = begin(number, now, sender)
            entries.append(entry)
            if shape(number)[1] == ev.RETRIED:
                retries.append([attempt_end(number, task_id, 1, ev.SUCCEEDED, now + RETRY_DELAY)])
        if not sender.flush():
            raise SystemExit("the sender's publishes were not confirmed by Redis")
        write(connection, entries)
        events += len(entries) + sum(len(entry) for entry in entries)  # each with its start
    write(connection, retries)
    events += 2 * len(retries)
    sender.close()
    connection.disconnect()
    events += n  # the sender's publishes
    client.xgroup_create(STREAM, GROUP, id="$")
    return events


def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``database`` (named in its title)."""
    import psutil

    used = {}
    for process in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
        title, times = " ".join(process.info["cmdline"] or ()), process.info["cpu_times"]
        if title.startswith("postgres:") and f" {database} " in title and times is not None:
            used[process.info["pid"]] = times.user + times.system
    return used


def reset(engine: Any) -> None:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE task_executions, execution_stats_hourly CASCADE"))


def recorders(count: int, env: dict[str, str], logs: Path) -> list[Any]:
    argv = [str(BIN / "flask"), "recorder"]
    return [start(argv, env, logs / f"recorder-{count}-{i}.log", "started") for i in range(count)]


def drain(count: int, n: int, env: dict[str, str], logs: Path, engine: Any, database: str):
    """Fill, start ``count`` recorders, hand them the stream and time it to the last row."""
    reset(engine)
    began = time.perf_counter()
    events = fill(n, env["REDIS_URL"])
    filled = time.perf_counter() - began
    client = redis.Redis.from_url(env["REDIS_URL"])
    processes = recorders(count, env, logs)
    try:
        time.sleep(1.0)  # past each recorder's first upkeep
        cpu = [cpu_seconds(p.pid) for p in processes]
        backends, host = backend_cpu(database), service_cpu()["postgres"]
        began = time.perf_counter()
        # SETID does not wake a reader blocked on the group; an entry does (this one holds no
        # event: it is acknowledged and writes nothing).
        client.pipeline().xgroup_setid(STREAM, GROUP, "0").xadd(STREAM, {"e": "[]"}).execute()
        # Redis first (the stream is acknowledged after each commit), then the rows: polling the
        # database all along would load it while the recorders write.
        while backlog(client)["unacknowledged"]:
            if any(p.poll() is not None for p in processes):
                raise SystemExit(f"a recorder stopped; see {logs}")
            time.sleep(0.02)
        while final_count(engine) < n:
            time.sleep(0.02)
        elapsed = time.perf_counter() - began
        used = sum(cpu_seconds(p.pid) - before for p, before in zip(processes, cpu, strict=True))
        after = backend_cpu(database)
        postgres = sum(seconds - backends.get(pid, 0.0) for pid, seconds in after.items())
        on_host = service_cpu()["postgres"] - host
    finally:
        for process in processes:
            stop(process)
    check(engine, client, n)
    rate = n / elapsed
    label = recorders_label(count)
    print(f"{label:<11} {n} lifecycles ({events} events) in {elapsed:6.2f} s = {rate:7.0f}/s; "
          f"CPU per lifecycle: recorders {used / n * 1e6:.0f} µs, PostgreSQL "
          f"{postgres / n * 1e6:.0f} µs (this database's backends; every postgres process on "
          f"the host: {on_host / n * 1e6:.0f} µs); filled in {filled:.1f} s",
          flush=True)  # fmt: skip
    return rate


SOURCE = text("INSERT INTO sources (id, code, name, source_type, is_active, created_at, "
              "updated_at) VALUES (1, 'idmc', 'IDMC', 'api', true, now(), now())")  # fmt: skip
SOURCE_VARIABLES = text("INSERT INTO variables (id, source_id, code, name, is_active, created_at, "
                        "updated_at) SELECT v, 1, 'v' || v, 'variable ' || v, true, now(), now() "
                        "FROM generate_series(1, :count) v")  # fmt: skip
FINAL_COUNT = text("SELECT count(*) FROM task_executions WHERE status IN ('success', 'failure')")
OUTCOMES = text("SELECT status || ':' || retry_count, count(*) FROM task_executions GROUP BY 1")


def final_count(engine: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(FINAL_COUNT))


def check(engine: Any, client: redis.Redis, n: int) -> None:
    """Every lifecycle is recorded with the status and retry count it ended with."""
    with engine.connect() as connection:
        found = dict(connection.execute(OUTCOMES).all())
    kinds = [shape(number)[1] for number in range(n)]
    expected = {"failure:0": kinds.count(ev.FAILED), "success:1": kinds.count(ev.RETRIED)}
    expected["success:0"] = n - sum(expected.values())
    expected = {key: value for key, value in expected.items() if value}
    if found != expected or quarantine.count(client):
        raise SystemExit(f"FAIL: recorded {found}, expected {expected}; "
                         f"{quarantine.count(client)} events quarantined")  # fmt: skip


def latency(seconds: float, env: dict[str, str], logs: Path, engine: Any) -> list[float]:
    """Seconds from each final event to its row seen final, one recorder, 1,000 lifecycles/s."""
    reset(engine)
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    processes = recorders(1, env, logs)
    sender = Emitter(env["REDIS_URL"])  # flushed by its own thread every 50 ms, as in a process
    connection = redis.ConnectionPool.from_url(env["REDIS_URL"]).make_connection()
    retries: deque[tuple[float, int, str]] = deque()
    waiting: dict[str, float] = {}  # task id -> time of its final event
    found: list[float] = []
    poll = text("SELECT task_id FROM task_executions WHERE task_id = ANY(:ids) "
                "AND status IN ('success', 'failure')")  # fmt: skip
    sent, began = 0, time.time()
    try:
        with engine.connect() as reader:
            while (sending := time.time() - began < seconds) or retries or waiting:
                now = time.time()
                entries = []
                for number in range(sent, int((now - began) * LATENCY_RATE) if sending else sent):
                    task_id, entry = begin(number, now, sender)
                    entries.append(entry)
                    if shape(number)[1] == ev.RETRIED:
                        retries.append((now + RETRY_DELAY, number, task_id))
                    else:
                        waiting[task_id] = now
                    sent = number + 1
                while retries and retries[0][0] <= now:
                    _due, number, task_id = retries.popleft()
                    entries.append([attempt_end(number, task_id, 1, ev.SUCCEEDED, now)])
                    waiting[task_id] = now
                write(connection, entries)
                if waiting:
                    polled = time.time()  # a row seen now was committed before the query
                    for task_id in reader.execute(poll, {"ids": list(waiting)}).scalars():
                        found.append(polled - waiting.pop(task_id))
                    reader.rollback()
                if time.time() - began > seconds + 60:
                    raise SystemExit(f"FAIL: {len(waiting)} rows not final a minute after the end")
                time.sleep(max(0.0, TICK - (time.time() - now)))
    finally:
        sender.close()
        connection.disconnect()
        for process in processes:
            stop(process)
    print(f"latency mode: {sent} lifecycles in {seconds:.0f} s ({sent / seconds:.0f}/s of the "
          f"{LATENCY_RATE:,}/s asked), rows polled every {TICK * 1000:.0f} ms",
          flush=True)  # fmt: skip
    return found


def recorders_label(count: int) -> str:
    return f"{count} recorder{'s' * (count > 1)}"


def summary(counts: list[int], rates: dict[int, list[float]]) -> str:
    """The line issue #16 names: each count's median rate, and the median of the rounds' ratios
    of the last count to the first."""
    parts = []
    for count in counts:
        unit = " lifecycles/s" if count == counts[0] else ""
        rate = statistics.median(rates[count])
        parts.append(f"{rate:.0f}{unit} ({recorders_label(count)})")
    if len(counts) > 1:
        ratios = [b / a for a, b in zip(rates[counts[0]], rates[counts[-1]], strict=True)]
        parts.append(f"scaling {statistics.median(ratios):.2f}")
    return "recorder drain: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200_000, help="lifecycles per fill")
    parser.add_argument("--recorders", default="1,2", help="recorder counts to drain with")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="0: no latency mode")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the drains")
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    options = parser.parse_args()
    with scratch_database(options.database_url, options.redis_url) as (env, engine):
        measure(options, env, engine, log_dir())


def measure(options: argparse.Namespace, env: dict[str, str], engine: Any, logs: Path) -> None:
    """The drains, then the latency mode, on a database with the source the lifecycles name."""
    counts = [int(count) for count in options.recorders.split(",")]
    with engine.begin() as connection:
        connection.execute(SOURCE)
        connection.execute(SOURCE_VARIABLES, {"count": VARIABLES})
    database = make_url(env["DATABASE_URL"]).database or ""
    rates: dict[int, list[float]] = {count: [] for count in counts}
    for round_ in range(options.repeat):
        # Rounds alternate the order, so a drift in the machine's other load favours none.
        for count in counts if round_ % 2 == 0 else counts[::-1]:
            rates[count].append(drain(count, options.n, env, logs, engine, database))
    if options.repeat > 1:
        for count, each in rates.items():
            print(f"{recorders_label(count)}: median {statistics.median(each):.0f}/s, rounds "
                  f"{', '.join(f'{rate:.0f}' for rate in each)} "
                  f"(spread {min(each):.0f}-{max(each):.0f})")  # fmt: skip
    print(summary(counts, rates))
    print("targets on PostgreSQL: >= 10,000 lifecycles/s with 1 recorder, scaling >= 1.7")
    if options.latency_seconds > 0:
        found = sorted(latency(options.latency_seconds, env, logs, engine))
        p50, p99 = statistics.median(found), found[int(0.99 * (len(found) - 1))]
        print(f"end-to-end latency at {LATENCY_RATE:,} tasks/s (1 recorder, {len(found)} "
              f"tasks): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
