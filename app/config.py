"""Settings read from environment variables, with safe local defaults.

Every setting is listed in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"
DEV_SECRET_KEY = "dev-only-insecure-secret-key"
LANGUAGES = ("en", "fr", "es", "ar")
RTL_LANGUAGES = frozenset({"ar"})


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _number(name: str, default: float, cast: type) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise RuntimeError(f"setting {name} must be a {cast.__name__}, got {raw!r}") from exc


def _int(name: str, default: int) -> int:
    return _number(name, default, int)


def _float(name: str, default: float) -> float:
    return _number(name, default, float)


def default_database_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'ewas.sqlite3'}"


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the usual way (postgres:// or postgresql://)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def settings_from_env() -> dict[str, Any]:
    """Build the Flask config mapping from the environment."""
    env = os.environ
    return {
        "ENV_NAME": env.get("EWAS_ENV", "local"),
        "SECRET_KEY": env.get("SECRET_KEY", DEV_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(
            env.get("DATABASE_URL") or default_database_url()
        ),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env.get("REDIS_URL", "redis://localhost:6379/0"),
        "DISPLAY_TIMEZONE": env.get("DISPLAY_TIMEZONE", "UTC"),
        # Seconds between two refreshes of the pages' live fragments (a running execution's
        # detail page keeps its own 1 s: its log lines show as the task writes them).
        "LIVE_POLL_SECONDS": _int("LIVE_POLL_SECONDS", 30),
        # The largest request body, form or JSON (413 beyond it): 1 MB by default.
        "MAX_CONTENT_LENGTH": _int("MAX_REQUEST_BYTES", 1024 * 1024),
        # werkzeug's method for new password hashes; the test suite picks a cheap one.
        "PASSWORD_HASH_METHOD": env.get("PASSWORD_HASH_METHOD", "scrypt"),
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_DEFAULT_TIMEZONE": env.get("DISPLAY_TIMEZONE", "UTC"),
        "LANGUAGES": LANGUAGES,
        "TRACKING_ENABLED": _bool(env.get("TRACKING_ENABLED"), True),
        # Seconds a task's final event waits for Redis to confirm it during an outage before the
        # task returns anyway (the event stays buffered and is sent when Redis is back).
        "TRACKING_CONFIRM_TIMEOUT": _float("TRACKING_CONFIRM_TIMEOUT", 5.0),
        # Past either, the recorder is not healthy: stream entries not yet acknowledged by every
        # consumer group (an entry holds up to 32 events), and the age of the oldest of them.
        "TRACKING_BACKLOG_ALERT_ENTRIES": _int("TRACKING_BACKLOG_ALERT_ENTRIES", 100_000),
        "TRACKING_BACKLOG_ALERT_SECONDS": _float("TRACKING_BACKLOG_ALERT_SECONDS", 600.0),
        "CELERY_RESULT_BACKEND": env.get("CELERY_RESULT_BACKEND", ""),
        "CRITICAL_TASK_NAMES": env.get(
            "CRITICAL_TASK_NAMES",
            "data_pipeline.tasks.retrieve_source,data_pipeline.tasks.run_full_pipeline",
        ),
        "CRITICAL_TASK_TYPES": env.get("CRITICAL_TASK_TYPES", ""),
        "DEAD_LETTER_MAX": _int("DEAD_LETTER_MAX", 10_000),
        "DEAD_LETTER_MAX_AGE_DAYS": _int("DEAD_LETTER_MAX_AGE_DAYS", 180),
        "ALERT_WEBHOOK_URL": env.get("ALERT_WEBHOOK_URL", ""),
        "ALERT_EMAIL_TO": env.get("ALERT_EMAIL_TO", ""),
        "ALERT_EMAIL_FROM": env.get("ALERT_EMAIL_FROM", ""),
        # The notification outbox: an alert not notified this many seconds after it was raised
        # (its sender crashed, the notifier was down) is sent again, then after a delay that
        # doubles from ALERT_NOTIFY_RETRY_SECONDS up to an hour, for at most a day.
        "ALERT_NOTIFY_GRACE_SECONDS": _float("ALERT_NOTIFY_GRACE_SECONDS", 30.0),
        "ALERT_NOTIFY_RETRY_SECONDS": _float("ALERT_NOTIFY_RETRY_SECONDS", 15.0),
        "SMTP_HOST": env.get("SMTP_HOST", "localhost"),
        "SMTP_PORT": _int("SMTP_PORT", 25),
        # Scheduler (app/scheduler): lock TTL = failover time after a beat dies, in seconds.
        "SCHEDULER_LOCK_TTL": _float("SCHEDULER_LOCK_TTL", 10.0),
        "SCHEDULER_MAX_SLEEP": _float("SCHEDULER_MAX_SLEEP", 0.5),
        "SCHEDULER_MISFIRE_GRACE": _float("SCHEDULER_MISFIRE_GRACE", 60.0),
        "SCHEDULER_BATCH": _int("SCHEDULER_BATCH", 200),
        "SCHEDULER_MAX_MISSED_RECORDED": _int("SCHEDULER_MAX_MISSED_RECORDED", 100),
        "SCHEDULER_RUN_RETENTION_DAYS": _int("SCHEDULER_RUN_RETENTION_DAYS", 90),
        "BACKFILL_PER_SECOND": _float("BACKFILL_PER_SECOND", 5.0),
        "SCHEDULER_REDIS_PREFIX": env.get("SCHEDULER_REDIS_PREFIX", "ewas:sched"),
        # The schedule store's Redis when it is not REDIS_URL's (empty: REDIS_URL).
        "SCHEDULER_REDIS_URL": env.get("SCHEDULER_REDIS_URL", ""),
        # Task catalogue (app/tasks, app/pipeline, app/monitoring, app/maintenance).
        "IDMC_API_URL": env.get("IDMC_API_URL", "https://helix-tools-api.idmcdb.org/external-api"),
        "IDMC_CLIENT_ID": env.get("IDMC_CLIENT_ID", ""),
        "RETRIEVAL_TIMEOUT": _float("RETRIEVAL_TIMEOUT", 60.0),
        "RETRIEVAL_MAX_BYTES": _int("RETRIEVAL_MAX_BYTES", 100 * 1024 * 1024),
        "OUTLIER_THRESHOLD": _float("OUTLIER_THRESHOLD", 10.0),
        "FAILURE_RATE_THRESHOLD": _float("FAILURE_RATE_THRESHOLD", 0.25),
        "FAILURE_RATE_WINDOW_HOURS": _int("FAILURE_RATE_WINDOW_HOURS", 24),
        "FAILURE_RATE_MIN_EXECUTIONS": _int("FAILURE_RATE_MIN_EXECUTIONS", 10),
        # Up to this many durations in a window, percentiles are exact (read from the rows);
        # beyond, they are estimated from the roll-ups' histogram and flagged as estimates.
        "STATS_EXACT_PERCENTILE_MAX": _int("STATS_EXACT_PERCENTILE_MAX", 5000),
        "QUEUE_DEPTH_THRESHOLD": _int("QUEUE_DEPTH_THRESHOLD", 1000),
        "RECORDER_MAX_LAG": _float("RECORDER_MAX_LAG", 300.0),
        # A pending execution whose message no queue or worker holds for this long is lost.
        "LOST_PENDING_AFTER_SECONDS": _float("LOST_PENDING_AFTER_SECONDS", 300.0),
        # Seconds between two rounds of the recorder's chores (orphans, lost messages, pruning).
        "RECORDER_UPKEEP_SECONDS": _float("RECORDER_UPKEEP_SECONDS", 30.0),
        # The schedule watch (app/watch): seconds between two checks of every schedule.
        "WATCH_INTERVAL": _float("WATCH_INTERVAL", 15.0),
        "WATCH_IN_RECORDER": _bool(env.get("WATCH_IN_RECORDER"), True),
        "WORKER_HEARTBEAT_INTERVAL": _float("WORKER_HEARTBEAT_INTERVAL", 10.0),
        "QUEUE_SNAPSHOT_RETENTION_DAYS": _int("QUEUE_SNAPSHOT_RETENTION_DAYS", 8),
        "EXECUTION_RETENTION_DAYS": _int("EXECUTION_RETENTION_DAYS", 90),
        "ALERT_RETENTION_DAYS": _int("ALERT_RETENTION_DAYS", 180),
        "LOG_DIR": env.get("LOG_DIR", str(INSTANCE_DIR / "logs")),
        "LOG_MAX_BYTES": _int("LOG_MAX_BYTES", 10 * 1024 * 1024),
        "LOG_BACKUPS": _int("LOG_BACKUPS", 5),
    }
