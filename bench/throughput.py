"""Throughput of tracked versus untracked Celery, and of Celery's own database result backend.

Sends N no-op tasks through a real worker (prefork, concurrency 2) on the real Redis broker with
PostgreSQL as the database, three ways in one run, each counted from the first send until the
last execution's final status is stored:

- untracked: tracking switched off; done when every message is acknowledged;
- tracked: our signals -> stream -> recorder; done when N executions are ``success`` in SQL;
- anchor: Celery's database result backend with ``result_extended``; done when N results are
  ``SUCCESS`` in its table.

Usage: .venv/bin/python bench/throughput.py [-n 5000] [--repeat 1] [--database-url URL]
       [--redis-url URL]
It creates (and drops) its own PostgreSQL database and flushes the given Redis database.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from sqlalchemy import Engine, create_engine, make_url, text

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(PROJECT))


def start(argv: list[str], env: dict[str, str], log: Path, ready) -> subprocess.Popen:
    """Start a process; ``ready`` is a text its log prints, or a function that says so."""
    handle = log.open("w")
    process = subprocess.Popen(argv, cwd=PROJECT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    is_ready = ready if callable(ready) else (lambda: ready in log.read_text(errors="replace"))
    while not is_ready():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise SystemExit(f"{argv[:3]} did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return process


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU of a process and, with ``children``, of its children (a worker's pool
    processes). The sender is counted alone: the worker and recorder are its children too."""
    import psutil

    try:
        process = psutil.Process(pid)
        family = [process, *(process.children(recursive=True) if children else ())]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for member in family:
        try:
            times = member.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def service_cpu() -> dict[str, float]:
    """CPU used so far by the local PostgreSQL and Redis servers (their processes on this host)."""
    import psutil

    used = {"postgres": 0.0, "redis": 0.0}
    for process in psutil.process_iter(["name", "cpu_times"]):
        name = process.info["name"] or ""
        label = "postgres" if name.startswith("postgres") else "redis" if "redis" in name else None
        if label and process.info["cpu_times"] is not None:
            used[label] += process.info["cpu_times"].user + process.info["cpu_times"].system
    return used


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    """A worker logging at WARNING (per-task INFO lines would slow every mode); it is ready when
    its heartbeat appears in Redis."""
    from app.tracking.heartbeats import heartbeat_key

    hostname = f"bench-{uuid.uuid4().hex[:6]}@localhost"
    argv = [str(BIN / "celery"), "-A", "wsgi:celery", "worker", "-Q", "default", "-c", "2",
            "--pool", "prefork", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
            "--include", "bench.tasks", "--hostname", hostname]  # fmt: skip
    client = redis.Redis.from_url(env["REDIS_URL"])
    return start(argv, env, log, lambda: client.exists(heartbeat_key(hostname)))


def run_mode(
    name: str, n: int, env: dict[str, str], done, logs: Path, recorder: bool
) -> tuple[float, dict[str, float]]:
    """Send n tasks with the mode's settings; return tasks per second and the CPU seconds each
    process kind used."""
    os.environ.update(env)
    from app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"], "REDIS_URL": env["REDIS_URL"],
                      "TRACKING_ENABLED": env["TRACKING_ENABLED"] == "true"})  # fmt: skip
    client = redis.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    processes = [worker(env, logs / f"{name}-worker.log")]
    if recorder:
        processes.append(
            start([str(BIN / "flask"), "recorder"], env, logs / f"{name}-recorder.log", "started")
        )
    watched = {"worker": processes[0].pid, "sender": os.getpid()}
    if recorder:
        watched["recorder"] = processes[1].pid
    alone = {"sender"}
    cpu_before = {label: cpu_seconds(pid, label not in alone) for label, pid in watched.items()}
    services_before = service_cpu()
    try:
        celery = app.extensions["celery"]
        with app.app_context():
            began = time.perf_counter()
            for number in range(n):
                celery.send_task("bench.noop", args=[number], queue="default")
            app.extensions["tracking"].emitter.flush()
            sent = time.perf_counter() - began
            # Redis is polled until every message is acknowledged, then the store; polling the
            # database all along would load it while the workers run.
            while client.llen("default") or client.hlen("unacked"):
                time.sleep(0.02)
            acked = time.perf_counter() - began
            while not done(client):
                time.sleep(0.02)
            elapsed = time.perf_counter() - began
            used = {
                label: cpu_seconds(pid, label not in alone) - cpu_before[label]
                for label, pid in watched.items()
            }
            services = service_cpu()
            used.update({k: services[k] - services_before[k] for k in services})
    finally:
        for process in processes:
            stop(process)
    rate = n / elapsed
    detail = f"(sent in {sent:.2f} s" + (f", all run in {acked:.2f} s" if acked else "")
    detail += "; cpu " + ", ".join(f"{label} {seconds:.2f} s" for label, seconds in used.items())
    detail += ")"
    print(f"{name:<10} {n} tasks in {elapsed:6.2f} s = {rate:8.1f} tasks/s {detail}", flush=True)
    return rate, used


def log_dir() -> Path:
    """Where the processes a benchmark starts write their output (``BENCH_LOG_DIR``)."""
    logs = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/ewas-bench"))
    logs.mkdir(parents=True, exist_ok=True)
    return logs


@contextmanager
def scratch_database(server_url: str, redis_url: str) -> Iterator[tuple[dict[str, str], Engine]]:
    """A new PostgreSQL database on the server of ``server_url``, migrated and seeded, dropped on
    exit; yields the environment the engine's processes run in (its DATABASE_URL, REDIS_URL) and
    an SQLAlchemy engine on it."""
    server = make_url(server_url)
    name = f"ewas_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url,
           "PYTHONPATH": str(PROJECT), "FLASK_APP": "wsgi"}  # fmt: skip
    try:
        for command in (["db", "upgrade"], ["seed"]):
            subprocess.run([str(BIN / "flask"), *command], cwd=PROJECT, env=env, check=True,
                           capture_output=True)  # fmt: skip
        engine = create_engine(url)
        try:
            yield env, engine
        finally:
            engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="rounds of untracked then tracked; the ratio printed is the median of the rounds' "
        "ratios (other load on a shared machine varies from one run to the next)",
    )  # fmt: skip
    options = parser.parse_args()

    with scratch_database(options.database_url, options.redis_url) as (base, engine):
        compare(options, base, engine, log_dir())


def compare(options: argparse.Namespace, base: dict[str, str], engine, logs: Path) -> None:
    """Rounds of untracked and tracked, then Celery's database backend; the ratios printed."""
    url = base["DATABASE_URL"]

    def all_acked(client: redis.Redis) -> bool:
        return client.llen("default") == 0 and client.hlen("unacked") == 0

    def all_recorded(_client: redis.Redis) -> bool:
        with engine.connect() as connection:
            return (
                connection.scalar(
                    text("SELECT count(*) FROM task_executions WHERE status = 'success'")
                )
                >= options.n
            )

    def all_stored(_client: redis.Redis) -> bool:
        with engine.connect() as connection:
            try:
                return (
                    connection.scalar(
                        text("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
                    )
                    >= options.n
                )
            except Exception:
                return False

    ratios, untracked_rates = [], []
    added_cpu: dict[str, list[float]] = {"worker": [], "sender": []}
    for _round in range(options.repeat):
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM task_executions"))
        # Rounds alternate the order (untracked first, then tracked first) so a drift in
        # the machine's other load during the run does not favour one mode.
        modes = {
            "untracked": lambda: run_mode("untracked", options.n,
                                          {**base, "TRACKING_ENABLED": "false"},
                                          all_acked, logs, recorder=False),
            "tracked": lambda: run_mode("tracked", options.n,
                                        {**base, "TRACKING_ENABLED": "true"},
                                        all_recorded, logs, recorder=True),
        }  # fmt: skip
        order = ["untracked", "tracked"] if _round % 2 == 0 else ["tracked", "untracked"]
        results = {name: modes[name]() for name in order}
        untracked, tracked = results["untracked"][0], results["tracked"][0]
        for kind in ("worker", "sender"):
            added = results["tracked"][1][kind] - results["untracked"][1][kind]
            added_cpu[kind].append(added / options.n * 1e6)
        with engine.connect() as connection:
            count = connection.scalar(text("SELECT count(*) FROM task_executions"))
        if count != options.n:
            raise SystemExit(f"FAIL: {options.n - count} executions missing")
        ratios.append(tracked / untracked)
        untracked_rates.append(untracked)
    anchor, _used = run_mode(
        "celery-db", options.n,
        {**base, "TRACKING_ENABLED": "false", "CELERY_RESULT_BACKEND": f"db+{url}"},
        all_stored, logs, recorder=False,
    )  # fmt: skip
    untracked = statistics.median(untracked_rates)
    print(f"celery database backend/untracked throughput ratio: {anchor / untracked:.2f}")
    if len(ratios) > 1:
        each = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        print(f"tracked/untracked ratio of each round: {each} (median below)")
    for kind, added in added_cpu.items():
        each = ", ".join(f"{value:.0f}" for value in added)
        print(f"{kind} CPU added per task by tracking: {statistics.median(added):.0f} µs "
              f"(rounds: {each})")  # fmt: skip
    print(f"tracked/untracked throughput ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
