"""The recorder: drains the tracking stream into the database in batches.

Events are read through a Redis consumer group and acknowledged only after the batch that applied
them is committed. A recorder that dies leaves its unacknowledged events pending; another (or the
same one restarted) claims them once they have been idle for ``claim_idle`` seconds. A database
outage only delays rows: the batch is retried until it commits.
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
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.extensions import db
from app.tracking.apply import apply_batch
from app.tracking.emitter import STREAM
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
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    stats: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def ensure_group(self) -> None:
        try:
            self.redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def run(self, stop: Any = None, idle_exit: float | None = None) -> None:
        """Record until ``stop`` (a threading.Event) is set, or after ``idle_exit`` idle seconds."""
        self.ensure_group()
        last_claim = last_upkeep = last_batch = 0.0
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            if time.monotonic() - last_upkeep > self.upkeep_interval:
                self.upkeep()
                last_upkeep = time.monotonic()
            entries = self.read_own_pending()
            if not entries and time.monotonic() - last_claim > min(self.claim_idle, 5.0):
                entries = self.claim_abandoned()
                last_claim = time.monotonic()
            if not entries:
                wait = self.min_interval - (time.monotonic() - last_batch)
                if wait > 0:
                    (stop.wait if stop is not None else time.sleep)(wait)
                entries = self.read_new()
            if entries:
                self.record(entries)
                idle_since = time.monotonic()
                # a full batch means more is waiting: take it at once
                last_batch = 0.0 if len(entries) >= self.batch_size else idle_since
            elif idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                return

    def upkeep(self) -> None:
        """Periodic chores: flag orphaned executions, prune the dead-letter store."""
        from app.tracking.deadletters import prune
        from app.tracking.orphans import flag_orphans

        try:
            with self.app.app_context():
                self.stats["orphans"] += flag_orphans(self.redis_client)
                prune()
                db.session.commit()
        except DBAPIError:
            log.warning("recorder: upkeep skipped, database unavailable")

    def read_own_pending(self) -> list[tuple[bytes, dict]]:
        """Events this consumer read but did not acknowledge (it crashed, or a commit failed)."""
        return self._entries(
            self.redis_client.xreadgroup(GROUP, self.consumer, {STREAM: "0"}, count=self.batch_size)
        )

    def read_new(self) -> list[tuple[bytes, dict]]:
        return self._entries(
            self.redis_client.xreadgroup(
                GROUP, self.consumer, {STREAM: ">"}, count=self.batch_size, block=self.block_ms
            )
        )

    def claim_abandoned(self) -> list[tuple[bytes, dict]]:
        """Take over events that a dead recorder read and never acknowledged."""
        _next, claimed, *_ = self.redis_client.xautoclaim(
            STREAM, GROUP, self.consumer, int(self.claim_idle * 1000), "0-0", count=self.batch_size
        )
        return [(entry_id, fields) for entry_id, fields in claimed if fields]

    @staticmethod
    def _entries(response: Any) -> list[tuple[bytes, dict]]:
        if not response:
            return []
        return [(entry_id, fields) for entry_id, fields in response[0][1] if fields]

    def record(self, entries: list[tuple[bytes, dict]]) -> None:
        """Apply one batch, commit, then acknowledge; retry while the database is down."""
        decoded = []
        for entry_id, fields in entries:
            try:
                payload = json.loads(fields[b"e"])
            except (KeyError, ValueError):
                log.error("recorder: dropping malformed event %r", entry_id)
                continue
            # an entry holds one event, or an array of the events one process flushed together
            for event in payload if isinstance(payload, list) else (payload,):
                if not isinstance(event, dict):
                    log.error("recorder: dropping malformed event in %r", entry_id)
                    continue
                before = event.pop("before", None)
                if before:
                    decoded.append(before)
                decoded.append(event)
        delay = 0.5
        while True:
            try:
                with self.app.app_context():
                    alerts = apply_batch(decoded)
                    db.session.commit()
                break
            except IntegrityError:
                log.exception("recorder: batch refused; applying its events one task at a time")
                self._apply_one_by_one(decoded)
                alerts = []
                break
            except DBAPIError:
                log.warning("recorder: database unavailable, retrying in %.1fs", delay)
                with self.app.app_context():
                    db.session.rollback()
                    db.session.remove()
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
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

    def _apply_one_by_one(self, decoded: list[dict[str, Any]]) -> None:
        by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in decoded:
            by_task[event.get("task_id", "")].append(event)
        with self.app.app_context():
            db.session.rollback()
            for task_id, task_events in by_task.items():
                try:
                    apply_batch(task_events)
                    db.session.commit()
                except IntegrityError:
                    db.session.rollback()
                    self.stats["poison"] += len(task_events)
                    log.exception("recorder: events of task %s refused; skipped", task_id)
