"""Celery settings (lowercase, new-style names). The broker URL comes from the Flask config.

Queues follow spec 7.1: each task family has its own queue, so each can be scaled on its own
(`celery -A wsgi:celery worker -Q data_retrieval`, ...).
"""

import os

from kombu import Queue

TASK_QUEUES = (
    "default",
    "data_retrieval",
    "data_processing",
    "aggregation",
    "monitoring",
    "maintenance",
    "location_processing",
    "dead_letter",
)

# Longest task the engine runs; the Redis visibility timeout must exceed it, or Redis hands an
# unacknowledged (still running) message to a second worker.
TASK_TIME_LIMIT = int(os.environ.get("TASK_TIME_LIMIT", 2 * 3600))
VISIBILITY_TIMEOUT = int(os.environ.get("BROKER_VISIBILITY_TIMEOUT", TASK_TIME_LIMIT + 3600))

accept_content = ["json"]
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
timezone = "UTC"
enable_utc = True

task_queues = [Queue(name) for name in TASK_QUEUES]
task_default_queue = "default"
task_create_missing_queues = False

# Globs are matched in order; exact names win over patterns.
task_routes = {
    "data_pipeline.tasks.retrieve_*": {"queue": "data_retrieval"},
    "data_pipeline.tasks.process_*": {"queue": "data_processing"},
    "data_pipeline.tasks.validate_*": {"queue": "data_processing"},
    "data_pipeline.tasks.aggregate_*": {"queue": "aggregation"},
    "task_monitoring.tasks.*": {"queue": "monitoring"},
    "location.tasks.*": {"queue": "location_processing"},
    "maintenance.tasks.*": {"queue": "maintenance"},
}

# A message is acknowledged only once its task has finished, and handed back to the queue when
# the worker running it dies, so a crash never loses a run.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_time_limit = TASK_TIME_LIMIT
task_soft_time_limit = max(TASK_TIME_LIMIT - 60, int(TASK_TIME_LIMIT * 0.9))
broker_transport_options = {
    "visibility_timeout": VISIBILITY_TIMEOUT,
    # Look for messages of dead workers (unacknowledged past the visibility timeout) this often.
    "unacked_restore_interval": int(os.environ.get("BROKER_RESTORE_INTERVAL", 10)),
    "unacked_restore_throttle": 1,
}
broker_connection_retry_on_startup = True
# A worker waits out a Redis outage of any length (Celery's default gives up after 100 tries and
# exits), with the broker's own backoff between attempts.
broker_connection_max_retries = None

# Results live in the engine's database (through the tracking recorder), not in Celery's backend.
task_ignore_result = True
worker_send_task_events = False
