"""``RedisScheduler``, the beat scheduler: ``celery beat -S app.scheduler.beat:RedisScheduler``.

Any number of beats may run. Each tick a beat either holds the lock (a Redis key with a TTL and
a fencing token, renewed every tick) or tries to take it. The leader reads only the entries due
now (a sorted-set range) and claims each occurrence with one atomic script that also checks the
lock is still its own; only then does it send. A beat that lost the lock sends nothing. A claim
is noted "in flight" until sent, so a leader killed in between has its sends completed by the
next leader instead of losing them.

The leader also keeps the projection whole (``app.scheduler.healing``): its poll reads the
marker a rebuild writes and the entry count; a missing marker (Redis flushed, or back empty
after an outage), fewer entries than enabled schedules (counted in the database every few
seconds) or a due id without its entry makes it rebuild from the database at once. Run rows
go through a Redis outbox, so a database outage delays them and never drops them. Redis and
database outages are logged once each and retried with a short backoff; beat never crashes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import redis
from celery.beat import Scheduler
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db, own_redis
from app.models import MisfirePolicy, OverlapPolicy, RunKind
from app.models.types import utcnow
from app.outages import Outage
from app.scheduler import history
from app.scheduler.healing import MAX_BACKOFF, OUTBOX_BATCH, Keeper, interrupted
from app.scheduler.history import Outcome
from app.scheduler.overlap import running_run
from app.scheduler.projection import timing_of
from app.scheduler.sending import send
from app.scheduler.store import Store, get_store
from app.scheduler.timing import from_ms, next_run, occurrences_between, to_ms

log = logging.getLogger(__name__)
PRUNE_EVERY = 3600.0
WAITING_CHECK_EVERY = 0.5  # seconds between two looks at the occurrences waiting (queue_one)


class RedisScheduler(Scheduler):
    """Celery beat scheduler over the Redis projection of the ``scheduled_tasks`` table."""

    _closed = False  # set by close(): a stopping beat never takes the lock again

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        self.flask_app = app.flask_app
        config = self.flask_app.config
        self.lock_ttl_ms = int(config["SCHEDULER_LOCK_TTL"] * 1000)
        self.max_sleep = float(config["SCHEDULER_MAX_SLEEP"])
        self.grace = timedelta(seconds=config["SCHEDULER_MISFIRE_GRACE"])
        self.batch = int(config["SCHEDULER_BATCH"])
        self.max_missed = int(config["SCHEDULER_MAX_MISSED_RECORDED"])
        self.retention_days = int(config["SCHEDULER_RUN_RETENTION_DAYS"])
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self.store: Store = get_store(self.flask_app)
        self.token: str | None = None
        self._last_prune = 0.0
        self._last_waiting_check = 0.0
        self._wakeups: Any = None
        self._rebuilt = False
        self._heal_needed = False
        self.last_heal: str | None = None  # why the projection was last rebuilt while leading
        self.keeper = Keeper(self.flask_app, self.store)
        self.redis_outage = Outage(
            "beat", "schedule store (Redis)", logger=log, max_backoff=MAX_BACKOFF
        )
        self.failure = Outage("beat", "tick", "failing", logger=log, max_backoff=MAX_BACKOFF)
        kwargs["max_interval"] = self.max_sleep
        super().__init__(app, *args, **kwargs)

    # -- celery.beat.Scheduler interface ------------------------------------------------------
    def setup_schedule(self) -> None:
        """Rebuild Redis from the database where they differ (a flushed Redis loses nothing).

        If Redis is down now, the rebuild is retried before this beat first leads.
        """
        try:
            changed = self.keeper.rebuild()
        except redis.RedisError as exc:
            self.redis_outage.failed(exc)
            self._rebuilt = False
            return
        except SQLAlchemyError as exc:
            self.keeper.db_outage.failed(exc)
            self._rebuilt = False
            return
        except Exception as exc:  # celery beat dies on an error here: retried before leading
            if interrupted(exc):
                raise SystemExit from exc
            log.exception("beat: could not rebuild the schedule store")
            self._rebuilt = False
            return
        self._rebuilt = True
        log.info("beat: schedule store checked, %d entries rebuilt", changed)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass, then the wait before the next; returns what celery beat should still sleep.

        The leader waits on a Redis wake-up channel instead of sleeping blindly, so an edit made
        through the app is picked up at once; it never waits longer than ``max_sleep``.
        """
        try:
            wait = self.idle(self.run_pending())
        except redis.RedisError as exc:
            if interrupted(exc):
                raise SystemExit from exc
            # Redis unreachable: we cannot know whether we still lead, so we act as a standby
            # (sending nothing until we hold the lock again) instead of letting beat crash.
            self.token = None
            self._close_wakeups()
            return self.redis_outage.failed(exc)
        except SQLAlchemyError as exc:  # a rebuild needs the database: retried after a backoff
            with contextlib.suppress(Exception), self.flask_app.app_context():
                db.session.remove()
            return self.keeper.db_outage.failed(exc)
        except Exception as exc:  # a bug must not stop every schedule: logged, retried
            if interrupted(exc):
                raise SystemExit from exc
            if self.failure.since is None:
                log.exception("beat: tick failed")
            self.token = None
            self._close_wakeups()
            return self.failure.failed(exc)
        self.redis_outage.ok()
        self.failure.ok()
        return wait

    def run_pending(self) -> float:
        """Lead or try to, send what is due; returns seconds until the next due time (capped)."""
        if self.token is None and not self._lead():
            return self.max_sleep
        poll = self.store.poll(self.token or "", self.lock_ttl_ms, to_ms(utcnow()), self.batch)
        if not poll.renewed:
            log.warning("beat: lost the scheduler lock, standing by")
            self.token = None
            return self.max_sleep
        if poll.outbox:
            self._drain()
        reason = self.keeper.incomplete(poll, self._heal_needed)
        if reason is not None and self._heal(reason):
            return 0.0  # poll again at once: what the rebuild made due fires now
        # Waiting occurrences whose previous run ended go before what falls due now.
        if poll.waiting and not self._release_waiting():
            return self.max_sleep
        due, upcoming = poll.due, poll.upcoming
        handled_any = bool(due)
        while due:
            if not self._run_batch(due):
                return self.max_sleep
            full = len(due) >= self.batch and not self._heal_needed
            due = self.store.due_now(to_ms(utcnow()), self.batch) if full else []
        if handled_any:
            upcoming = self.store.next_due_ms()
        self._maybe_prune()
        if upcoming is None:
            return self.max_sleep
        return min(self.max_sleep, max(0.0, (upcoming - to_ms(utcnow())) / 1000))

    def idle(self, seconds: float) -> float:
        """Wait up to ``seconds`` for a wake-up (leader only); returns the sleep left over."""
        if self.token is None or seconds <= 0:
            return seconds
        if self._wakeups is None:
            self._wakeups = self.store.subscribe()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._wakeups.get_message(timeout=left) is not None:
                break
        return 0.0

    def close(self) -> None:
        """Release the lock so a standby takes over on its next tick, and lead no more.

        celery beat calls this from its SIGTERM/SIGINT handler, which may interrupt ``idle()``
        inside a read on the wake-up connection. Closing that socket under the read replaced the
        handler's SystemExit by a "Bad file descriptor" error that beat survived: it took the
        lock again and was killed holding it. So the connection is only dropped here; redis-py
        closes it when the interrupted read has unwound (at once when nothing is reading).
        """
        self._closed = True
        if self.token is not None:
            try:
                self.store.release(self.token)
            except redis.RedisError:
                log.warning("beat: could not release the lock; it expires with its TTL")
            finally:
                self.token = None
        self._wakeups = None
        super().close()

    def _close_wakeups(self) -> None:
        if self._wakeups is not None:
            with contextlib.suppress(redis.RedisError):
                self._wakeups.close()
            self._wakeups = None

    def sync(self) -> None:
        """Nothing to persist: claims and due times live in Redis, runs in the database."""

    @property
    def info(self) -> str:
        return f"    . lock ttl -> {self.lock_ttl_ms / 1000:g}s, owner -> {self.owner}"

    # -- leadership ---------------------------------------------------------------------------
    def _lead(self) -> bool:
        if self._closed:
            return False
        if not self._rebuilt:
            self.setup_schedule()
            if not self._rebuilt:
                return False
        self.token = self.store.acquire(self.owner, self.lock_ttl_ms)
        if self.token is None:
            return False
        log.info("beat: took the scheduler lock (%s)", self.token)
        self._finish_inflight()
        return self.token is not None

    # -- healing ------------------------------------------------------------------------------
    def _heal(self, reason: str) -> bool:
        """Rebuild the projection, then send what a lost note kept in flight; False when the
        database cannot tell yet."""
        changed = self.keeper.heal()
        if changed is None:
            return False
        self._heal_needed = False
        self.last_heal = reason
        log.warning("beat: schedule projection incomplete (%s); rebuilt %d entries from the "
                    "database", reason, changed)  # fmt: skip
        self._finish_inflight(own=True)
        return True

    def _finish_inflight(self, own: bool = False) -> None:
        """Send the claims a previous leader made but did not confirm sent (``own``: this
        leader's too, after a rebuild).

        A leader killed between its send and the confirmation leaves a claim whose message
        already exists: its task id (chosen at claim time) is looked for in the broker and the
        database first, so such a claim is confirmed instead of sent twice.
        """
        orphans = {
            f: i for f, i in self.store.inflight().items() if own or i["token"] != self.token
        }
        published = self._already_published([item["task_id"] for item in orphans.values()])
        for field, item in orphans.items():
            if not self.store.holds(self.token or ""):
                self.token = None  # the next leader sends them
                break
            data = self.store.entries([item["schedule_id"]])[0]
            if data is None:  # deleted, or lost with a partial projection: a rebuild decides
                if own:
                    self.store.sent(field)
                else:
                    self._heal_needed = True
                continue
            finished = data["timing"]["kind"] == "one_time"
            if item["task_id"] in published:
                outcome = Outcome(data["id"], from_ms(item["occurrence"]), RunKind(item["kind"]),
                                  item["task_id"], sent_at=utcnow(), finished=finished)  # fmt: skip
                self._confirm(field, outcome)
            else:
                self._send(field, data, item, finished)
            if finished:
                self.store.remove(data["id"])
        self._drain()

    # -- firing -------------------------------------------------------------------------------
    def _run_batch(self, due: list[tuple[int, int]]) -> bool:
        """Claim and send each due entry; False when the lock was lost on the way."""
        entries = self.store.entries([sid for sid, _ in due])
        try:
            for (schedule_id, due_ms), data in zip(due, entries, strict=True):
                if data is None:  # evicted or flushed, or deleted: the rebuild decides which
                    self._heal_needed = True
                    continue
                if not self._fire(schedule_id, due_ms, data):
                    return False
            return True
        finally:
            self._drain()

    def _fire(self, schedule_id: int, due_ms: int, data: dict) -> bool:
        timing = timing_of(data)
        now = utcnow()
        due = from_ms(due_ms)
        missed: list[datetime] = []
        to_send: tuple[datetime, RunKind] | None = (due, RunKind.SCHEDULED)
        last = due
        if now - due > self.grace:  # late: the misfire policy decides
            late = [due, *occurrences_between(timing, due, now, self.max_missed - 1)]
            last = late[-1]
            if data["misfire"] == MisfirePolicy.SKIP:
                missed, to_send = late, None
            else:
                missed, to_send = late[:-1], (last, RunKind.CATCHUP)
        following = next_run(timing, max(last, now) if missed or to_send is None else last)
        finished = following is None and timing.kind == "one_time"
        action, reason = "send", None
        if to_send is not None and data.get("overlap", OverlapPolicy.ALLOW) != OverlapPolicy.ALLOW:
            action, reason = self._overlap(schedule_id, data["overlap"])
        skipped = []
        if action == "skip" and to_send is not None:
            skipped = [Outcome(schedule_id, to_send[0], RunKind.SKIPPED, finished=finished,
                               reason=reason).to_row()]  # fmt: skip
            to_send = None
        inflight = None
        if to_send is not None:
            occurrence, kind = to_send
            item = {
                "schedule_id": schedule_id,
                "occurrence": to_ms(occurrence),
                "kind": str(kind),
                "task_id": str(uuid4()),
                "token": self.token,
            }
            if action == "wait":  # noted under the schedule's id: at most one waits
                item["finished"] = finished
                inflight = (str(schedule_id), item)
            else:
                inflight = (f"{schedule_id}:{to_ms(occurrence)}", item)
        rows = [
            Outcome(schedule_id, m, RunKind.MISSED, finished=finished and to_send is None).to_row()
            for m in missed
        ] + skipped
        result = self.store.claim(
            self.token or "", self.lock_ttl_ms, schedule_id, due_ms, to_ms(last),
            None if following is None else to_ms(following), inflight, rows, action == "wait",
        )  # fmt: skip
        if result < 0:
            log.warning("beat: lost the scheduler lock before claiming, standing by")
            self.token = None
            return False
        if result == 0:
            return True  # already claimed, or an edit moved it
        self.keeper.queued(rows)
        if skipped:
            log.info("beat: skipped %s (%s): %s", data["name"], skipped[0]["occurrence"], reason)
        if action == "wait":
            log.info("beat: %s waits for its previous run to end", data["name"])
            return True  # sent by _release_waiting; a one-time entry stays until then
        if inflight is not None:
            # Fencing: a beat paused past its lock TTL after claiming must not send; the
            # in-flight note lets the new leader send it instead.
            if not self.store.holds(self.token or ""):
                log.warning("beat: lost the scheduler lock before sending, standing by")
                self.token = None
                return False
            self._send(inflight[0], data, inflight[1], finished)
        if finished:
            self.store.remove(schedule_id)
        return True

    # -- overlap policy -----------------------------------------------------------------------
    def _overlap(self, schedule_id: int, policy: str) -> tuple[str, str | None]:
        """``send``, ``wait`` (queue_one, nothing waiting yet) or ``skip`` with its reason.

        With queue_one, an occurrence already waiting goes first: a later one is skipped even
        if the previous run has just ended (the waiting one is sent on this tick or the next).
        """
        if policy == OverlapPolicy.QUEUE_ONE and self.store.is_waiting(schedule_id):
            return "skip", "one occurrence already waiting for the previous run to end"
        held = self._previous_running(schedule_id)
        if held is None:
            return "send", None
        if policy == OverlapPolicy.QUEUE_ONE:
            return "wait", None
        return "skip", held

    def _previous_running(self, schedule_id: int) -> str | None:
        """Why the previous run may still be running (None: it ended).

        A database that cannot answer holds the occurrence back too (skipped, or waiting): the
        policy promises no overlap, and a send this beat has not recorded yet is invisible to it.
        """
        # Sends not in the database yet: this beat's copies, and the outbox (a previous leader's).
        waiting_rows = [*self.keeper.unrecorded, *self.store.outbox(OUTBOX_BATCH)]
        sends = [
            row
            for row in waiting_rows
            if row["schedule_id"] == schedule_id and row.get("sent_at") and not row.get("error")
        ]
        unrecorded = max(sends, key=lambda row: row["sent_at"])["task_id"] if sends else None
        if self.keeper.db_outage.ready():
            try:
                with self.flask_app.app_context():
                    try:
                        running = running_run(schedule_id, unrecorded)
                    finally:
                        db.session.remove()
                return None if running is None else f"previous run {running} still running"
            except SQLAlchemyError as exc:
                self.keeper.db_outage.failed(exc)
        return "database unavailable: the previous run may still be running"

    def _release_waiting(self) -> bool:
        """Send each waiting occurrence whose previous run ended (queue_one); False when the
        lock was lost. Moving a waiting note to the in-flight notes is fenced and atomic, so
        from there it is sent exactly as a claimed occurrence is, by this leader or the next."""
        if time.monotonic() - self._last_waiting_check < WAITING_CHECK_EVERY:
            return True
        self._last_waiting_check = time.monotonic()
        try:
            for key, (raw, item) in self.store.waiting().items():
                if not self._release(key, raw, item):
                    return False
            return True
        finally:
            self._drain()

    def _release(self, key: str, raw: bytes, item: dict) -> bool:
        schedule_id = int(key)
        data = self.store.entries([schedule_id])[0]
        occurrence = from_ms(item["occurrence"])
        finished = bool(item.get("finished"))  # a one-time entry: removed once sent
        rows, inflight = [], None
        if data is None:  # disabled or deleted while it waited
            reason = "schedule disabled or deleted while waiting"
            rows = [Outcome(schedule_id, occurrence, RunKind.SKIPPED, reason=reason).to_row()]
        elif (
            data.get("overlap", OverlapPolicy.ALLOW) != OverlapPolicy.ALLOW
            and self._previous_running(schedule_id) is not None
        ):
            return True  # still running: it keeps waiting
        else:
            item = {k: v for k, v in item.items() if k != "finished"} | {"token": self.token}
            inflight = (f"{schedule_id}:{item['occurrence']}", item)
        result = self.store.take_waiting(self.token or "", key, raw, inflight, rows)
        if result < 0:
            log.warning("beat: lost the scheduler lock before sending, standing by")
            self.token = None
            return False
        if result == 0:
            return True
        self.keeper.queued(rows)
        if inflight is not None and data is not None:
            if not self.store.holds(self.token or ""):
                log.warning("beat: lost the scheduler lock before sending, standing by")
                self.token = None
                return False
            self._send(inflight[0], data, inflight[1], finished)
        if finished:
            self.store.remove(schedule_id)
        return True

    def _send(self, field: str, data: dict, item: dict, finished: bool = False) -> Outcome:
        """Publish a claimed occurrence, then confirm it and queue its run row in one step."""
        occurrence = from_ms(item["occurrence"])
        outcome = Outcome(
            data["id"], occurrence, RunKind(item["kind"]), item["task_id"], finished=finished
        )
        try:
            self._publish(data, occurrence, item["kind"], item["task_id"])
            outcome.sent_at = utcnow()
            log.info("beat: sent %s (%s, %s)", data["name"], item["kind"], occurrence.isoformat())
        except Exception as exc:  # recorded on the run, never lost silently
            log.exception("beat: sending %s failed", data["name"])
            outcome.error = f"{type(exc).__name__}: {exc}"
        self._confirm(field, outcome)
        return outcome

    def _confirm(self, field: str, outcome: Outcome) -> None:
        row = outcome.to_row()
        self.store.sent(field, row)
        self.keeper.queued([row])

    def _already_published(self, task_ids: list[str]) -> set[str]:
        if not task_ids:
            return set()
        from app.monitoring.queues import already_published

        try:
            with self.flask_app.app_context():
                client = own_redis(self.app.conf.broker_url)
                try:
                    return already_published(client, task_ids)
                finally:
                    client.close()
                    db.session.remove()
        except Exception:  # unknown: sending again is safer than losing the run
            log.exception("beat: could not check which unconfirmed sends were published")
            return set()

    def _publish(self, data: dict, occurrence: datetime, kind: str, task_id: str) -> None:
        send(self.app, data, occurrence, kind, task_id)

    def _drain(self) -> bool:
        """Write the outbox's run rows to the database (leader only); True once it is empty."""
        return self.token is not None and self.keeper.drain()

    def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = time.monotonic()
        try:
            with self.flask_app.app_context():
                pruned = history.prune(self.retention_days)
                db.session.commit()
                db.session.remove()
            if pruned:
                log.info(
                    "beat: pruned %d schedule runs older than %d days", pruned, self.retention_days
                )
        except Exception:
            log.exception("beat: pruning schedule runs failed")
