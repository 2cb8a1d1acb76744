"""The recorder: drains the tracking stream into the database in batches.

Events are read through a Redis consumer group and acknowledged only after the batch that applied
them is committed. A recorder that dies leaves its unacknowledged events pending; another (or the
same one restarted) claims them once they have been idle for ``claim_idle`` seconds. A database
outage only delays rows: the batch is retried until it commits. A Redis outage only delays the
reading: the recorder waits it out. An event the database refuses for any other reason is
quarantined (app.tracking.quarantine) and the rest of its batch recorded.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from app.database import is_outage
from app.extensions import db
from app.outages import Outage
from app.tracking import quarantine
from app.tracking.apply import apply_batch
from app.tracking.bounds import bound_event
from app.tracking.emitter import STREAM
from app.tracking.quarantine import describe
from app.tracking.stream import trim_acknowledged

log = logging.getLogger(__name__)

GROUP = "ewas:recorders"
LAG_KEY = "ewas:recorder:last_commit"


@dataclass
class Recorder:
    app: Flask
    redis_client: redis.Redis
    batch_size: int = 1000
    block_ms: int = 200
    claim_idle: float = 30.0
    # Batches are taken at most this often: under load, fewer and larger batches cost far less
    # per event than many small ones; at rest it only bounds the latency of a row.
    min_interval: float = 0.25
    upkeep_interval: float = 30.0
    # How often alerts that were committed but never notified are looked for (the outbox).
    outbox_interval: float = 5.0
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    stats: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    redis_outage: Outage = field(default_factory=lambda: Outage("recorder", "Redis", logger=log))
    db_outage: Outage = field(default_factory=lambda: Outage("recorder", "database", logger=log))
    failure: Outage = field(
        default_factory=lambda: Outage("recorder", "recording", "failing", logger=log)
    )
    _stop: Any = None

    def ensure_group(self) -> None:
        try:
            self.redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def run(self, stop: Any = None, idle_exit: float | None = None) -> None:
        """Record until ``stop`` (a threading.Event) is set, or after ``idle_exit`` idle seconds.

        Never ends on its own otherwise: a Redis outage (refused, reset, timeouts, a restart, a
        read-only replica) is waited out with a capped backoff, and a stream or group that
        vanished (FLUSHDB, a restart without persistence) is created again.
        """
        self._stop = stop
        last_claim = last_upkeep = last_batch = last_outbox = 0.0
        idle_since = time.monotonic()
        group_ready = False
        while not self._stopped():
            try:
                if not group_ready:
                    self.ensure_group()
                    group_ready = True
                if time.monotonic() - last_upkeep > self.upkeep_interval:
                    last_upkeep = time.monotonic()
                    self.upkeep()
                if time.monotonic() - last_outbox > self.outbox_interval:
                    last_outbox = time.monotonic()
                    self.send_outbox()
                entries = self.read_own_pending()
                if not entries and time.monotonic() - last_claim > min(self.claim_idle, 5.0):
                    entries = self.claim_abandoned()
                    last_claim = time.monotonic()
                if not entries:
                    wait = self.min_interval - (time.monotonic() - last_batch)
                    if wait > 0:
                        self._wait(wait)
                    entries = self.read_new()
                if entries:
                    self.record(entries)
                self.redis_outage.ok()
                self.failure.ok()
            except redis.ResponseError as error:
                if _stream_gone(error):
                    log.warning("recorder: tracking stream or group gone (%s); recreating", error)
                    group_ready = False
                    continue
                self._wait(self.redis_outage.failed(error))
                continue
            except (redis.RedisError, OSError) as error:
                group_ready = False  # a restarted server may have come back empty
                self._wait(self.redis_outage.failed(error))
                continue
            except Exception as error:  # a bug must not end recording: say it once, retry
                if not self.failure.ongoing:
                    log.exception("recorder: unexpected error")
                self._wait(self.failure.failed(error))
                continue
            if entries:
                idle_since = time.monotonic()
                # a full batch means more is waiting: take it at once
                last_batch = 0.0 if len(entries) >= self.batch_size else idle_since
            elif idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                return

    def _stopped(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _wait(self, seconds: float) -> None:
        (self._stop.wait if self._stop is not None else time.sleep)(seconds)

    def upkeep(self) -> None:
        """Periodic chores: flag orphaned and lost executions, prune the dead-letter store."""
        from app.tracking.alerts import dispatch_notifications
        from app.tracking.deadletters import prune
        from app.tracking.orphans import flag_lost_pending, flag_orphans

        try:
            with self.app.app_context():
                self.stats["orphans"] += flag_orphans(self.redis_client)
                after = self.app.config["LOST_PENDING_AFTER_SECONDS"]
                alerts = flag_lost_pending(self.redis_client, after, GROUP)
                self.stats["lost_pending"] += len(alerts)
                prune()
                db.session.commit()
                dispatch_notifications(alerts)
        except SQLAlchemyError as error:
            with self.app.app_context():
                db.session.rollback()
                db.session.remove()
            if not is_outage(error):
                raise
            log.warning("recorder: upkeep skipped, database unavailable")

    def send_outbox(self) -> None:
        """Queue again the notifications of alerts never notified (see app.tracking.alerts)."""
        from app.tracking.alerts import dispatch_due

        try:
            with self.app.app_context():
                self.stats["renotified"] += dispatch_due()
        except SQLAlchemyError as error:
            with self.app.app_context():
                db.session.rollback()
                db.session.remove()
            if not is_outage(error):
                log.exception("recorder: could not read the alert outbox")

    def read_own_pending(self) -> list[tuple[bytes, dict]]:
        """Events this consumer read but did not acknowledge (it crashed, or a commit failed)."""
        return self._live(
            self._entries(
                self.redis_client.xreadgroup(
                    GROUP, self.consumer, {STREAM: "0"}, count=self.batch_size
                )
            )
        )

    def read_new(self) -> list[tuple[bytes, dict]]:
        return self._live(
            self._entries(
                self.redis_client.xreadgroup(
                    GROUP, self.consumer, {STREAM: ">"}, count=self.batch_size, block=self.block_ms
                )
            )
        )

    def claim_abandoned(self) -> list[tuple[bytes, dict]]:
        """Take over events that a dead recorder read and never acknowledged."""
        _next, claimed, *_ = self.redis_client.xautoclaim(
            STREAM, GROUP, self.consumer, int(self.claim_idle * 1000), "0-0", count=self.batch_size
        )
        return self._live(claimed)

    def _live(self, entries: list[tuple[bytes, dict | None]]) -> list[tuple[bytes, dict]]:
        """The entries that still exist. A pending entry whose data is gone (trimmed or deleted
        while pending, or missing from what a restarted Redis replayed) comes back empty; it is
        acknowledged, or it would stay pending for ever and hold back what the lost scan
        counts as recorded."""
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            self.redis_client.xack(STREAM, GROUP, *gone)
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    @staticmethod
    def _entries(response: Any) -> list[tuple[bytes, dict | None]]:
        return list(response[0][1]) if response else []

    def record(self, entries: list[tuple[bytes, dict]]) -> None:
        """Apply one batch, commit, then acknowledge.

        The batch is retried while the database is down. Anything else it raises is a poison
        event: the batch is applied one task, then one event at a time, and what still fails is
        quarantined; the rest is recorded and the whole batch acknowledged. If Redis fails
        after the commit, the batch stays pending and is applied again later (harmless: applying
        events is idempotent).
        """
        decoded = self._decode(entries)
        alerts = self._apply(decoded)
        if alerts is None:
            return  # stopped during a database outage: the entries stay pending
        ids = [entry_id for entry_id, _ in entries]
        pipe = self.redis_client.pipeline(transaction=False)
        pipe.xack(STREAM, GROUP, *ids)
        pipe.set(LAG_KEY, time.time())
        pipe.execute()
        trim_acknowledged(self.redis_client)  # only what every consumer group acknowledged
        self.stats["events"] += len(decoded)
        self.stats["batches"] += 1
        if alerts:
            from app.tracking.alerts import dispatch_notifications

            with self.app.app_context():
                dispatch_notifications(alerts)

    def _decode(self, entries: list[tuple[bytes, dict]]) -> list[Decoded]:
        """The batch's events, each bounded (an old worker or another writer may not have),
        with the entry it came from and its raw form (what a quarantine keeps)."""
        decoded: list[Decoded] = []
        for entry_id, fields in entries:
            try:
                payload = json.loads(fields[b"e"])
            except (KeyError, ValueError, RecursionError) as error:
                self._quarantine(entry_id, {"entry": _raw_text(fields)}, error)
                continue
            # an entry holds one event, or an array of the events one process flushed together
            for raw in payload if isinstance(payload, list) else (payload,):
                try:
                    event = _checked(bound_event(raw) if isinstance(raw, dict) else raw)
                    before = None
                    if "before" in event:
                        event = dict(event)  # the raw event keeps its own copy
                        before = event.pop("before")
                        before = _checked(before) if before else None
                except (ValueError, TypeError, RecursionError) as error:
                    self._quarantine(entry_id, raw, error)
                    continue
                if before is not None:
                    decoded.append(Decoded(entry_id, raw.get("before"), before))
                decoded.append(Decoded(entry_id, raw, event))
        return decoded

    def _apply(self, decoded: list[Decoded]) -> list[int] | None:
        """Apply and commit; the raised alerts' ids, or None when stopped in an outage."""
        try:
            return self._commit([item.event for item in decoded])
        except _Refused as refused:
            log.warning(
                "recorder: batch of %d events refused (%s: %s); isolating the poison",
                len(decoded), *describe(refused.error),
            )  # fmt: skip
        except _Stopped:
            return None
        by_task: dict[str, list[Decoded]] = defaultdict(list)
        for item in decoded:
            by_task[str(item.event.get("task_id"))].append(item)
        alerts: list[int] = []
        try:
            for items in by_task.values():
                try:
                    alerts += self._commit([item.event for item in items])
                    continue
                except _Refused:
                    pass
                for item in items:
                    try:
                        alerts += self._commit([item.event])
                    except _Refused as refused:
                        self._quarantine(item.entry_id, item.raw, refused.error)
        except _Stopped:
            return None
        return alerts

    def _commit(self, events: list[dict[str, Any]]) -> list[int]:
        """``apply_batch`` and commit, retried while the database is down.

        Raises _Refused when the database or the fold refuses the events, _Stopped when the
        recorder is asked to stop during an outage.
        """
        while True:
            try:
                with self.app.app_context():
                    alerts = apply_batch(events)
                    db.session.commit()
                self.db_outage.ok()
                return alerts
            except Exception as error:
                with self.app.app_context():
                    db.session.rollback()
                    db.session.remove()
                if not is_outage(error):
                    raise _Refused(error) from error
                self._wait(self.db_outage.failed(error))
                if self._stopped():
                    raise _Stopped from error

    def _quarantine(self, entry_id: bytes, raw: Any, error: BaseException) -> None:
        """Keep a poison event with its error (Redis errors propagate: the batch is retried)."""
        event = raw if isinstance(raw, dict) else {"raw": raw}
        quarantine.put(self.redis_client, event, error, entry_id)
        self.stats["quarantined"] += 1
        log.error(
            "recorder: event of entry %s quarantined (%s: %s)",
            entry_id.decode() if isinstance(entry_id, bytes) else entry_id, *describe(error),
        )  # fmt: skip


@dataclass
class Decoded:
    """One event of a batch: the entry it came from, as read, and as it is applied."""

    entry_id: bytes
    raw: Any
    event: dict[str, Any]


class _Refused(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Stopped(Exception):
    pass


def _checked(event: Any) -> dict[str, Any]:
    """``event`` if it has the shape the fold needs; ValueError otherwise."""
    if not isinstance(event, dict):
        raise ValueError("a tracking event must be a JSON object")
    if not isinstance(event.get("task_id", ""), str):
        raise ValueError("a tracking event's task_id must be a string")
    return event


def _raw_text(fields: dict) -> str:
    value = fields.get(b"e", b"")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _stream_gone(error: redis.ResponseError) -> bool:
    """The stream or its group no longer exists (FLUSHDB, a restart without persistence)."""
    text = str(error)
    return "NOGROUP" in text or "no longer exists" in text or "No such key" in text
