"""What keeps beat going when Redis or the database fail: outages logged once and retried
with a backoff, the projection checked and rebuilt, run rows drained from the Redis outbox.

The active beat owns one ``Keeper``; nothing here sends a message or takes the lock.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.outages import Outage
from app.scheduler import history
from app.scheduler.projection import enabled_count, rebuild
from app.scheduler.store import Poll, Store

log = logging.getLogger("app.scheduler.beat")
DB_CHECK_EVERY = 3.0  # seconds between two counts of the enabled schedules
OUTBOX_BATCH = 500
OUTBOX_KEPT = 10_000  # rows a beat keeps a copy of until it has drained them
# Short enough that a Redis back (empty) after an outage is rebuilt within 5 s.
MAX_BACKOFF = 2.0


def interrupted(error: BaseException | None) -> bool:
    """Whether ``error`` hides a stop request: redis-py turns a SIGTERM (celery beat raises
    SystemExit from its handler) arriving during a socket read into a ConnectionError."""
    while error is not None:
        if isinstance(error, SystemExit | KeyboardInterrupt):
            return True
        error = error.__cause__ or error.__context__
    return False


def _row_key(row: dict[str, Any]) -> tuple[int, int]:
    return row["schedule_id"], row["occurrence"]


class Keeper:
    """The projection's and the run rows' side of the active beat."""

    def __init__(self, flask_app: Flask, store: Store) -> None:
        self.flask_app, self.store = flask_app, store
        self.db_outage = Outage("beat", "database", logger=log, max_backoff=MAX_BACKOFF)
        # Rows this beat queued and has not drained yet: a Redis emptied before the drain loses
        # them, and the rebuild must find them in the database (or it would resend them).
        self.unrecorded: deque[dict[str, Any]] = deque(maxlen=OUTBOX_KEPT)
        self._last_count = 0.0

    def queued(self, rows: list[dict[str, Any]]) -> None:
        """Note rows just written to the outbox."""
        self.unrecorded.extend(rows)

    def rebuild(self) -> int:
        """Rebuild the projection from the database (Redis or database errors propagate)."""
        with self.flask_app.app_context():
            try:
                return rebuild(self.store)
            finally:
                db.session.remove()

    def drain(self) -> bool:
        """Write the outbox's run rows to ``schedule_runs``; True once it is empty.

        Rows leave the outbox only after their commit; a drain repeated after a commit whose
        trim failed adds nothing (``history.record`` skips recorded occurrences). While the
        database is down the rows wait, retried after a backoff. Only the leader drains, so
        two beats never write the same rows at once.
        """
        if not self.db_outage.ready():
            return False
        try:
            with self.flask_app.app_context():
                try:
                    while rows := self.store.outbox(OUTBOX_BATCH):
                        history.record([history.Outcome.from_row(row) for row in rows])
                        db.session.commit()
                        self.store.trim_outbox(len(rows))
                        done = {_row_key(row) for row in rows}
                        kept = (r for r in self.unrecorded if _row_key(r) not in done)
                        self.unrecorded = deque(kept, maxlen=OUTBOX_KEPT)
                        if len(rows) < OUTBOX_BATCH:
                            break
                finally:
                    with contextlib.suppress(SQLAlchemyError):
                        db.session.rollback()
                    db.session.remove()
        except SQLAlchemyError as exc:
            self.db_outage.failed(exc)
            return False
        self.db_outage.ok()
        return True

    def incomplete(self, poll: Poll, entry_missing: bool) -> str | None:
        """Why the projection must be rebuilt now, or None when it looks whole."""
        if not poll.marked:
            return "marker missing (Redis emptied)"
        if entry_missing:
            return "a due entry is missing"
        if time.monotonic() - self._last_count < DB_CHECK_EVERY or not self.db_outage.ready():
            return None
        self._last_count = time.monotonic()
        try:
            with self.flask_app.app_context():
                try:
                    expected = enabled_count()
                finally:
                    db.session.remove()
        except SQLAlchemyError as exc:
            self.db_outage.failed(exc)
            return None
        self.db_outage.ok()
        self.store.set_expected(expected)  # corrects a count two concurrent edits got wrong
        if poll.entries < expected:
            return f"{poll.entries} entries for {expected} enabled schedules"
        return None

    def heal(self) -> int | None:
        """Rebuild from the database; None when it cannot tell yet (what Redis still holds
        keeps firing meanwhile).

        Run rows not in the database yet are written first (this beat's copies too, in case
        Redis lost them): the rebuild resumes each entry after the latest occurrence
        ``schedule_runs`` holds, so they must be there.
        """
        self.store.queue_rows(list(self.unrecorded))
        if not self.drain() or not self.db_outage.ready():
            return None
        try:
            changed = self.rebuild()
        except SQLAlchemyError as exc:
            self.db_outage.failed(exc)
            return None
        self.db_outage.ok()
        return changed

    def count_now(self) -> None:
        """Count the enabled schedules on the next check (tests; an operator's sync)."""
        self._last_count = 0.0
