"""The README's run command installs, migrates, starts every process and stops them on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests
from sqlalchemy import select

from app.extensions import db
from app.local_run import ensure_predefined_schedules
from app.models import ScheduledTask
from app.scheduler.predefined import PREDEFINED
from tests.support import PROJECT_DIR, free_ports, wait_for


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_local_run_creates_the_predefined_schedules_once(app, capsys) -> None:
    ensure_predefined_schedules()
    assert "Created the predefined schedules: idmc-daily-pipeline" in capsys.readouterr().out
    first = {s.name: s.updated_at for s in db.session.scalars(select(ScheduledTask))}
    assert set(first) == {values["name"] for values in PREDEFINED}
    edited = db.session.scalar(select(ScheduledTask).filter_by(name="hourly-health-check"))
    edited.enabled = False
    db.session.commit()

    ensure_predefined_schedules()
    assert f"The {len(PREDEFINED)} predefined schedules exist" in capsys.readouterr().out
    db.session.expire_all()
    again = {s.name: s for s in db.session.scalars(select(ScheduledTask))}
    assert set(again) == set(first) and not again["hourly-health-check"].enabled


def test_run_command_serves_the_engine_and_stops_on_ctrl_c(
    app, process_env: dict[str, str], tmp_path: Path
) -> None:
    web_port, redis_port = free_ports(2)
    env = {
        **process_env,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "EWAS_ADMIN_PASSWORD": "first-run-admin-password",
    }
    base = f"http://127.0.0.1:{web_port}"
    browser = requests.Session()
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [str(PROJECT_DIR / "scripts" / "run"), "--port", str(web_port)],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def login_page() -> requests.Response | None:
            assert run.poll() is None, log_path.read_text()
            try:
                response = browser.get(f"{base}/tasks/", timeout=2)
            except requests.ConnectionError:
                return None
            return response

        # Anonymous visitors land on the login page; the first-run admin signs in through it.
        response = wait_for(login_page, timeout=180, interval=0.5)
        assert response.status_code == 200 and response.url.startswith(f"{base}/tasks/login/")
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.text)
        assert csrf, response.text
        response = browser.post(
            f"{base}/tasks/login/",
            data={
                "username": "admin",
                "password": "first-run-admin-password",
                "csrf_token": csrf.group(1),
                "next": "/tasks/",
            },
            timeout=10,
        )
        assert response.status_code == 200 and response.url == f"{base}/tasks/", response.text
        assert "retrieval" in response.text and "maintenance" in response.text
        assert "Sign out" in response.text
        # The local run installed the predefined schedules, so the Scheduled page has work.
        scheduled = browser.get(f"{base}/tasks/scheduled/", timeout=10).text
        assert "idmc-daily-pipeline" in scheduled and "No schedules yet" not in scheduled
        # No Redis answered at REDIS_URL, so the bundled one was started and the worker uses it.
        wait_for(lambda: "ready." in log_path.read_text(), timeout=60)
        assert redis.Redis(port=redis_port).ping()
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(60)
    output = log_path.read_text()
    assert run.returncode == 0, output
    assert "starting the bundled redis-server" in output
    assert "Created admin user 'admin'" in output
    assert "Created the predefined schedules: idmc-daily-pipeline" in output
    assert not port_open(web_port)
    assert not port_open(redis_port)


def test_ctrl_c_stops_every_process_cleanly_and_beat_releases_its_lock(
    app, process_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Beat used to be killed after 10 s: closing its wake-up connection from the signal
    handler turned the stop into "Bad file descriptor", it led again and left its lock."""
    [web_port] = free_ports(1)
    prefix = "ewas:sched:ctrl-c"
    lock_key = f"{prefix}:lock"
    env = {**process_env, "SCHEDULER_REDIS_PREFIX": prefix}
    log_path = tmp_path / "run-local.log"
    flask = str(Path(sys.executable).parent / "flask")
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [flask, "run-local", "--port", str(web_port), "--concurrency", "2"],
            cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def everything_up() -> bool:
            assert run.poll() is None, log_path.read_text()
            output = log_path.read_text()
            return " ready." in output and "recorder" in output and port_open(web_port)

        wait_for(everything_up, timeout=120, interval=0.3)
        wait_for(lambda: redis_client.get(lock_key), timeout=30)
        time.sleep(1.5)  # beat is waiting on its wake-up channel, as it does between ticks
    finally:
        started = time.monotonic()
        run.send_signal(signal.SIGINT)
        try:
            run.wait(30)
        finally:
            if run.poll() is None:
                run.kill()
    took = time.monotonic() - started
    output = log_path.read_text()
    assert run.returncode == 0, output
    # Before the fix beat was killed at the 10 s grace. The 3 s target is for a quiet machine;
    # CI runs two suites side by side on two cores, where Celery's own pool teardown alone
    # takes 2-4 s, so the bound here only proves nothing waits for the kill.
    assert took < 8.0, f"stopped in {took:.1f} s\n{output}"
    assert redis_client.get(lock_key) is None, output
    assert "Bad file descriptor" not in output and "schedule store unavailable" not in output
    assert output.count("took the scheduler lock") == 1, output
    assert not port_open(web_port)
