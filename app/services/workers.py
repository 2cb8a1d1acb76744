"""Worker control (pool size, consumed queues, shutdown), shared by the API and the pages.

Commands go to one named worker through Celery's broadcast mailbox and wait at most
``CONTROL_TIMEOUT`` for its reply: a worker that does not answer is reported, never waited on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from flask import current_app
from flask_babel import gettext as _
from kombu.exceptions import OperationalError

from app.errors import DomainError, InvalidInput, NotFound
from app.monitoring.queues import queue_names
from app.services.audit import record_audit
from app.tracking.heartbeats import known_workers, live_workers

CONTROL_TIMEOUT = 1.0
ACTIONS = ("shutdown", "pool_grow", "pool_shrink", "add_consumer", "cancel_consumer")
POOL_STEP_MAX = 64
CURRENT_STATES = ("live", "stale")


class ControlFailed(DomainError):
    """The command could not be sent (the broker did not answer)."""

    code = "unavailable"
    http_status = 503


@dataclass
class ControlResult:
    """What a control command got back: each reply is ``{hostname: {"ok"|"error": text}}``."""

    worker: str
    action: str
    replies: list[dict[str, Any]] = field(default_factory=list)
    expects_reply: bool = True

    @property
    def answered(self) -> bool:
        return bool(self.replies) or not self.expects_reply

    def messages(self) -> list[tuple[str, str, str]]:
        """(hostname, "ok" or "error", text) for each reply."""
        found = []
        for reply in self.replies:
            for hostname, body in reply.items():
                if isinstance(body, dict) and "error" in body:
                    found.append((hostname, "error", str(body["error"])))
                elif isinstance(body, dict):
                    found.append((hostname, "ok", str(body.get("ok", body))))
                else:
                    found.append((hostname, "ok", str(body)))
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"worker": self.worker, "action": self.action, "replies": self.replies}


def require_live_worker(client: redis.Redis, name: str) -> dict[str, Any]:
    """The heartbeat of the live worker ``name``; NotFound when no live worker has that name."""
    for worker in live_workers(client):
        if worker["hostname"] == name:
            return worker
    raise NotFound(_("No live worker named %(name)s.", name=name[:255]))


def known_queue(queue: str) -> str:
    """``queue`` when it is one of the configured queues; InvalidInput otherwise."""
    if queue not in queue_names():
        message = _("Unknown queue.")
        raise InvalidInput(message, fields={"queue": [message]})
    return queue


def control(client: redis.Redis, name: str, action: str, **arguments: Any) -> ControlResult:
    """Send ``action`` to the live worker ``name`` and record it in the audit log.

    The caller commits (the audit entry carries the outcome: ok, no_reply or error).
    """
    if action not in ACTIONS:
        raise InvalidInput(_("Unknown worker command."))
    require_live_worker(client, name)
    if "queue" in arguments:
        known_queue(arguments["queue"])
    result = ControlResult(name, action, expects_reply=action != "shutdown")
    command = getattr(current_app.extensions["celery"].control, action)
    try:
        replies = command(
            **arguments,
            destination=[name],
            reply=result.expects_reply,
            timeout=CONTROL_TIMEOUT,
        )
    except (OperationalError, redis.RedisError, OSError) as error:
        record_audit(f"worker.{action}", "worker", name, "error", _details(arguments, error))
        raise ControlFailed(_("The command could not be sent: %(error)s", error=error)) from error
    result.replies = list(replies or [])
    outcome = "ok" if result.answered else "no_reply"
    if any(kind == "error" for _, kind, _ in result.messages()):
        outcome = "error"
    record_audit(f"worker.{action}", "worker", name, outcome, _details(arguments))
    return result


def _details(arguments: dict[str, Any], error: Exception | None = None) -> dict[str, Any] | None:
    details = dict(arguments)
    if error is not None:
        details["error"] = str(error)[:500]
    return details or None


def roster(client: redis.Redis) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(current, gone): live and stale workers, then those stopped or lost in the last day,
    each sorted by hostname (gone ones most recent first)."""
    workers = known_workers(client)
    current = sorted(
        (w for w in workers if w["state"] in CURRENT_STATES), key=lambda w: w["hostname"]
    )
    gone = sorted(
        (w for w in workers if w["state"] not in CURRENT_STATES),
        key=lambda w: -float(w.get("stopped_at") or w["last_seen"]),
    )
    return current, gone
