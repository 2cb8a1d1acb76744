"""The watcher: checks every schedule every few seconds, keeps its state, raises its alerts.

It runs in the recorder (``flask recorder``, always up in the documented deployment) or on its
own (``flask watch``), never as a beat-scheduled task: it must notice a dead beat. Several may
run at once: the state row is written with insert-if-absent and each alert is claimed with a
conditional update, so two watchers never raise the same alert twice.

Alerts are raised on the transitions into late, overrunning and failing (once per state, not
per check), and a resolved note when the schedule leaves them. Notifications are sent from the
watcher itself, not through a task: the workers may be what is missing.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

import redis
from flask import Flask
from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from app.database import dialect_insert, rowcount
from app.extensions import db
from app.models import Alert, ScheduledTask, ScheduleWatch
from app.models.types import utcnow
from app.outages import Outage
from app.tracking.alerts import is_critical, notifiers_configured, notify
from app.watch.facts import Watched, watch
from app.watch.states import ALERTING, Assessment, WatchState

log = logging.getLogger(__name__)
HEARTBEAT_KEY = "ewas:watch:heartbeat"
HEARTBEAT_TTL = 24 * 3600  # long enough that health can say how long ago it stopped
KIND_FOR = {
    WatchState.LATE: "schedule_late",
    WatchState.OVERRUNNING: "schedule_overrunning",
    WatchState.FAILING: "schedule_failing",
}


def heartbeat_age(client: redis.Redis, now: float | None = None) -> float | None:
    """Seconds since a watcher last finished a check; None when none ever did."""
    value = client.get(HEARTBEAT_KEY)
    if value is None:
        return None
    return max(0.0, (now or time.time()) - float(value))


def critical(schedule: ScheduledTask) -> bool:
    """A schedule is critical when its task or one of its chain steps is."""
    names = [schedule.task, *((step or {}).get("task") for step in schedule.chain or [])]
    return any(is_critical({"task_name": name}, None) for name in names if name)


def _alert_values(watched: Watched, resolved_from: str | None, now: datetime) -> dict[str, Any]:
    schedule, found = watched.schedule, watched.assessment
    send = found.latest_send
    severity = "critical" if critical(schedule) else "error"
    if resolved_from is not None:
        kind, severity = "schedule_resolved", "info"
        title = f"Schedule {schedule.name} is {found.state.replace('_', ' ')} again"
        if found.state != WatchState.ON_TIME:
            title = f"Schedule {schedule.name} is now {found.state.replace('_', ' ')}"
        message = f"It was {resolved_from.replace('_', ' ')}."
    elif found.state == WatchState.LATE:
        kind = KIND_FOR[found.state]
        minutes = round(found.overdue_seconds / 60)
        due = found.occurrence.isoformat() if found.occurrence else "?"
        if found.cause == "not_started":
            title = f"Schedule {schedule.name} is late: its run has not started"
            message = f"Due {due}, sent but not started for {minutes} min (are workers running?)."
        else:
            title = f"Schedule {schedule.name} is late: nothing was sent"
            message = f"Due {due}, nothing sent for {minutes} min (is a beat running?)."
    elif found.state == WatchState.OVERRUNNING:
        kind = KIND_FOR[found.state]
        severity = "critical" if severity == "critical" else "warning"
        title = f"Schedule {schedule.name} is overrunning"
        message = (
            f"Its run is still running {round(found.overdue_seconds / 60)} min past its "
            f"maximum duration of {schedule.max_duration_seconds} s."
        )
    else:
        kind = KIND_FOR[WatchState.FAILING]
        title = f"Schedule {schedule.name} is failing"
        step = f" at {send.failed_step}" if send and send.failed_step else ""
        error = (send.send_error or send.error_message) if send else None
        message = f"Its latest run failed{step}: {error or 'no error message'}"
    return {
        "created_at": now,
        "kind": kind,
        "severity": severity,
        "title": title[:255],
        "message": message,
        "task_id": send.task_id if send else None,
        "task_name": schedule.task[:255],
    }


def _run_failure_alerted(found: Assessment) -> bool:
    """The recorder already alerted about this failed run (a critical or dead-lettered step)."""
    send = found.latest_send
    if send is None or send.pipeline_run_id is None:
        return False
    from app.models import RunStep

    steps = select(RunStep.task_id).where(RunStep.run_id == send.pipeline_run_id)
    query = select(Alert.id).where(Alert.kind == "run_failure", Alert.task_id.in_(steps))
    return db.session.scalar(query.limit(1)) is not None


def _claim(schedule_id: int, old: str | None, new: str | None) -> bool:
    """Move the alert marker from ``old`` to ``new``; False when another watcher did first."""
    result = rowcount(
        db.session.execute(
            update(ScheduleWatch)
            .where(
                ScheduleWatch.schedule_id == schedule_id,
                ScheduleWatch.alerted.is_not_distinct_from(old),
            )
            .values(alerted=new)
        )
    )
    return result == 1


def check(now: datetime | None = None) -> list[int]:
    """Assess every schedule, store the states, raise the alerts due; returns the new alert ids.

    The caller commits (then notifies).
    """
    now = now or utcnow()
    schedules = list(db.session.scalars(select(ScheduledTask).order_by(ScheduledTask.id)))
    watched = watch(schedules, now)
    rows = {row.schedule_id: row for row in db.session.scalars(select(ScheduleWatch))}
    missing = [
        {"schedule_id": w.schedule.id, "state": str(w.assessment.state), "since": now,
         "occurrence": w.assessment.occurrence, "checked_at": now}
        for w in watched if w.schedule.id not in rows
    ]  # fmt: skip
    if missing:
        upsert = dialect_insert(ScheduleWatch.__table__)
        db.session.execute(upsert.values(missing).on_conflict_do_nothing())
        rows = {row.schedule_id: row for row in db.session.scalars(select(ScheduleWatch))}
    alerts: list[dict[str, Any]] = []
    for item in watched:
        row = rows.get(item.schedule.id)
        if row is None:  # deleted meanwhile
            continue
        state = item.assessment.state
        if row.state != state:
            row.state, row.since = str(state), now
        row.occurrence, row.checked_at = item.assessment.occurrence, now
        alerted_state = row.alerted.split(":", 1)[0] if row.alerted else None
        if state in ALERTING and alerted_state != state:
            key = item.assessment.alert_key
            if not _claim(row.schedule_id, row.alerted, key):
                continue
            if state == WatchState.FAILING and _run_failure_alerted(item.assessment):
                continue
            alerts.append(_alert_values(item, None, now))
        elif (
            state not in ALERTING
            and alerted_state is not None
            and _claim(row.schedule_id, row.alerted, None)
        ):
            alerts.append(_alert_values(item, alerted_state, now))
    db.session.flush()
    if not alerts:
        return []
    return list(db.session.scalars(insert(Alert).returning(Alert.id), alerts))


class ScheduleWatcher:
    """Runs :func:`check` every ``interval`` seconds until stopped, in its own thread."""

    def __init__(self, app: Flask, redis_client: redis.Redis, interval: float | None = None):
        self.app = app
        self.redis = redis_client
        self.interval = interval if interval is not None else app.config["WATCH_INTERVAL"]
        self.checks = 0
        self.db_outage = Outage("watch", "database", logger=log)
        self.redis_outage = Outage("watch", "Redis", logger=log)
        self._thread: threading.Thread | None = None

    def tick(self) -> list[int]:
        with self.app.app_context():
            try:
                alert_ids = check()
                db.session.commit()
            except SQLAlchemyError as error:
                db.session.rollback()
                self.db_outage.failed(error)
                return []
            finally:
                db.session.remove()
            self.db_outage.ok()
            self.checks += 1
            self._notify(alert_ids)
        try:
            self.redis.set(HEARTBEAT_KEY, time.time(), ex=HEARTBEAT_TTL)
            self.redis_outage.ok()
        except redis.RedisError as error:
            self.redis_outage.failed(error)
        return alert_ids

    def _notify(self, alert_ids: list[int]) -> None:
        """Notify the committed alerts now, through the outbox's claim (``notify``): one this
        process could not send, or did not live to send, is sent again by the recorder's
        outbox pass (``dispatch_due``)."""
        if not alert_ids or not notifiers_configured():
            return
        for alert_id in alert_ids:
            try:
                notify(alert_id)
            except Exception:
                log.exception("watch: could not notify alert %s", alert_id)
            finally:
                db.session.remove()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # a bug in one check must not end the watch
                log.exception("watch: check failed")
            stop.wait(max(0.1, self.interval - (time.monotonic() - started)))

    def start(self, stop: threading.Event) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, args=(stop,), name="watch", daemon=True)
        self._thread.start()
        return self._thread
