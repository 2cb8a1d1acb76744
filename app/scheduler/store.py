"""The scheduler's live state in Redis: a rebuildable projection of the ``scheduled_tasks`` rows.

Keys (``<p>`` is ``SCHEDULER_REDIS_PREFIX``, default ``ewas:sched``):

- ``<p>:entry:<id>`` hash: ``data`` (JSON: task, args, options, timing...) and ``fp`` (fingerprint
  of ``data``, compared on beat start to decide whether to rebuild);
- ``<p>:due`` sorted set: schedule id -> next due time (epoch ms); only enabled entries;
- ``<p>:claimed`` hash: schedule id -> last claimed occurrence (epoch ms); an occurrence at or
  before it is never claimed again, whatever an edit or a rebuild writes to ``due``;
- ``<p>:lock`` string with a TTL: the active beat's fencing token; ``<p>:fence`` its counter;
- ``<p>:inflight`` hash: claimed occurrences not yet confirmed sent, re-sent by the next leader;
- ``<p>:ids`` set: the ids of the entries, so the active beat counts them in its poll;
- ``<p>:projection`` hash: the marker a complete rebuild writes last (``generation``,
  ``rebuilt_at``, ``expected``: enabled schedules in the database); missing means the projection
  was lost (a flushed or restarted Redis) and the active beat rebuilds it;
- ``<p>:outbox`` list: run rows (JSON) waiting to be written to ``schedule_runs``; a claim and
  its missed rows, or a send and its row, are written in one step, so a database outage delays
  rows and never drops them;
- ``<p>:waiting`` hash: schedule id -> the claimed occurrence (the in-flight note it becomes)
  waiting for the previous run to end (overlap policy ``queue_one``; at most one per schedule).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import redis
from flask import Flask, current_app

CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local due = redis.call('ZSCORE', KEYS[2], ARGV[3])
if (not due) or tonumber(due) ~= tonumber(ARGV[4]) then return 0 end
local last = redis.call('HGET', KEYS[3], ARGV[3])
if last and tonumber(last) >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[5])
if ARGV[6] == '' then redis.call('ZREM', KEYS[2], ARGV[3])
else redis.call('ZADD', KEYS[2], ARGV[6], ARGV[3]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[4], ARGV[7], ARGV[8]) end
for i = 9, #ARGV do redis.call('RPUSH', KEYS[5], ARGV[i]) end
return 1
"""

# Write an entry unless its due time is at or before the last claimed occurrence (then the
# caller recomputes after that occurrence and retries): an edit never revives a fired occurrence.
UPSERT = """
local last = redis.call('HGET', KEYS[3], ARGV[1])
if ARGV[4] ~= '' and last and tonumber(last) >= tonumber(ARGV[4]) then return last end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'fp', ARGV[3])
redis.call('SADD', KEYS[4], ARGV[1])
if ARGV[4] == '' then redis.call('ZREM', KEYS[2], ARGV[1])
else redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1]) end
if ARGV[5] ~= '' and ((not last) or tonumber(last) < tonumber(ARGV[5])) then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
end
return false
"""

# Move a waiting occurrence (overlap policy queue_one) to the in-flight notes (ARGV[4] not
# empty: it is sent next) or drop it with its run rows: fenced like a claim, and only if it is
# still the very note the caller read.
TAKE_WAITING = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[4], ARGV[5]) end
for i = 6, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
return 1
"""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# The marker of a complete rebuild, written only if the rebuild's start note is still there: a
# Redis flushed while the rebuild ran must not end up marked complete with its entries gone.
# Each rebuild has its own note, so two beats starting together both finish theirs.
MARK = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
for i = 4, #ARGV do redis.call('SADD', KEYS[3], ARGV[i]) end
redis.call('HINCRBY', KEYS[2], 'generation', 1)
redis.call('HSET', KEYS[2], 'rebuilt_at', ARGV[2], 'expected', ARGV[3])
return 1
"""

SET_EXPECTED = """
if redis.call('HEXISTS', KEYS[1], 'rebuilt_at') == 1 then
  redis.call('HSET', KEYS[1], 'expected', ARGV[1])
end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class Poll:
    """What one idle tick reads in one round trip."""

    renewed: bool
    due: list[tuple[int, int]]
    upcoming: int | None
    marked: bool  # the projection marker exists
    entries: int  # members of the ids set
    outbox: int  # run rows waiting for the database
    waiting: int = 0  # occurrences waiting for their schedule's previous run to end


@dataclass
class Store:
    client: redis.Redis
    prefix: str

    def __post_init__(self) -> None:
        self._claim = self.client.register_script(CLAIM)
        self._upsert = self.client.register_script(UPSERT)
        self._renew = self.client.register_script(RENEW)
        self._release = self.client.register_script(RELEASE)
        self._mark = self.client.register_script(MARK)
        self._set_expected = self.client.register_script(SET_EXPECTED)
        self._take_waiting = self.client.register_script(TAKE_WAITING)

    def key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    # -- entries ---------------------------------------------------------------------------
    def upsert(
        self,
        schedule_id: int,
        data: dict[str, Any],
        fp: str,
        due_ms: int | None,
        claimed: int | None,
    ) -> int | None:
        """Write an entry; returns the blocking claimed occurrence (ms) when ``due_ms`` is stale."""
        blocking = self._upsert(
            keys=[
                self.key("entry", schedule_id),
                self.key("due"),
                self.key("claimed"),
                self.key("ids"),
            ],
            args=[schedule_id, json.dumps(data), fp, _arg(due_ms), _arg(claimed)],
        )
        return None if blocking is None else int(float(blocking))

    def remove(self, schedule_id: int) -> None:
        """Drop an entry from the projection (the claimed marker stays: occurrences stay fired)."""
        pipe = self.client.pipeline()
        pipe.delete(self.key("entry", schedule_id))
        pipe.zrem(self.key("due"), schedule_id)
        pipe.srem(self.key("ids"), schedule_id)
        pipe.execute()

    def entries(self, ids: list[int]) -> list[dict[str, Any] | None]:
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for schedule_id in ids:
            pipe.hget(self.key("entry", schedule_id), "data")
        return [json.loads(raw) if raw else None for raw in pipe.execute()]

    def fingerprints(self, ids: list[int]) -> dict[int, str | None]:
        pipe = self.client.pipeline(transaction=False)
        for schedule_id in ids:
            pipe.hget(self.key("entry", schedule_id), "fp")
        return {i: (fp.decode() if fp else None) for i, fp in zip(ids, pipe.execute(), strict=True)}

    def entry_ids(self) -> set[int]:
        """Every id the projection mentions: entry hashes, the ids set and the due set."""
        found = {
            int(key.rsplit(b":", 1)[1])
            for key in self.client.scan_iter(match=self.key("entry", "*"), count=1000)
        }
        found |= {int(i) for i in self.client.smembers(self.key("ids"))}
        return found | {int(i) for i in self.client.zrange(self.key("due"), 0, -1)}

    def due_ms(self, schedule_id: int) -> int | None:
        score = self.client.zscore(self.key("due"), schedule_id)
        return None if score is None else int(score)

    def due_many(self, ids: list[int]) -> dict[int, int | None]:
        """Next due times (epoch ms) of several entries in one round trip (None: not due)."""
        if not ids:
            return {}
        scores = self.client.zmscore(self.key("due"), ids)
        return {i: None if s is None else int(s) for i, s in zip(ids, scores, strict=True)}

    def claimed(self, schedule_id: int) -> int | None:
        value = self.client.hget(self.key("claimed"), str(schedule_id))
        return None if value is None else int(value)

    def due_now(self, now_ms: int, limit: int) -> list[tuple[int, int]]:
        """Entries due at ``now_ms`` (earliest first): a sorted-set range, never a scan."""
        rows = self.client.zrangebyscore(self.key("due"), "-inf", now_ms, 0, limit, withscores=True)
        return [(int(member), int(score)) for member, score in rows]

    def poll(self, token: str, ttl_ms: int, now_ms: int, limit: int) -> Poll:
        """One round trip per idle tick: renew the lock, read what is due and the next due time,
        whether the projection is marked complete, its entry count and the outbox length."""
        pipe = self.client.pipeline(transaction=False)
        self._renew(keys=[self.key("lock")], args=[token, ttl_ms], client=pipe)
        pipe.zrangebyscore(self.key("due"), "-inf", now_ms, 0, limit, withscores=True)
        pipe.zrange(self.key("due"), 0, 0, withscores=True)
        pipe.hexists(self.key("projection"), "rebuilt_at")
        pipe.scard(self.key("ids"))
        pipe.llen(self.key("outbox"))
        pipe.hlen(self.key("waiting"))
        renewed, rows, first, marked, entries, outbox, waiting = pipe.execute()
        return Poll(
            renewed=bool(renewed),
            due=[(int(member), int(score)) for member, score in rows],
            upcoming=int(first[0][1]) if first else None,
            marked=bool(marked),
            entries=int(entries),
            outbox=int(outbox),
            waiting=int(waiting),
        )

    # -- the projection marker ------------------------------------------------------------------
    def start_rebuild(self) -> str:
        """Note a rebuild has started; returns the note ``mark_rebuilt`` needs."""
        nonce = uuid4().hex
        self.client.set(self.key(f"rebuilding:{nonce}"), 1, ex=600)
        return nonce

    def mark_rebuilt(self, nonce: str, ids: list[int], expected: int) -> bool:
        """Mark the projection complete (and list ``ids`` as entries), unless Redis lost the
        rebuild's start note meanwhile; False then: rebuild again."""
        return bool(
            self._mark(
                keys=[self.key(f"rebuilding:{nonce}"), self.key("projection"), self.key("ids")],
                args=[nonce, datetime.now(UTC).isoformat(), expected, *ids],
            )
        )

    def set_expected(self, expected: int) -> None:
        """Record how many enabled schedules the database holds (only on a marked projection:
        a marker made by this write alone would hide a lost projection)."""
        self._set_expected(keys=[self.key("projection")], args=[expected])

    def wake(self) -> None:
        """Tell the active beat an entry changed, so it re-reads the due set at once."""
        self.client.publish(self.key("wake"), b"1")

    def subscribe(self) -> redis.client.PubSub:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.key("wake"))
        except redis.RedisError:
            pubsub.close()  # a half-made subscriber must not hold a pooled connection
            raise
        return pubsub

    def next_due_ms(self) -> int | None:
        rows = self.client.zrange(self.key("due"), 0, 0, withscores=True)
        return int(rows[0][1]) if rows else None

    # -- lock and claims ---------------------------------------------------------------------
    def acquire(self, owner: str, ttl_ms: int) -> str | None:
        """Take the lock if free; the token carries a counter that grows with each leader."""
        if self.client.exists(self.key("lock")):
            return None
        token = f"{self.client.incr(self.key('fence'))}:{owner}"
        if self.client.set(self.key("lock"), token, nx=True, px=ttl_ms):
            return token
        return None

    def renew(self, token: str, ttl_ms: int) -> bool:
        return bool(self._renew(keys=[self.key("lock")], args=[token, ttl_ms]))

    def holds(self, token: str) -> bool:
        value = self.client.get(self.key("lock"))
        return value is not None and value.decode() == token

    def release(self, token: str) -> None:
        self._release(keys=[self.key("lock")], args=[token])

    def claim(
        self,
        token: str,
        ttl_ms: int,
        schedule_id: int,
        due_ms: int,
        claimed_ms: int,
        next_ms: int | None,
        inflight: tuple[str, dict[str, Any]] | None,
        rows: list[dict[str, Any]] | None = None,
        wait: bool = False,
    ) -> int:
        """Atomically: check the lock is ours, the entry still due at ``due_ms`` and not claimed,
        then mark it claimed up to ``claimed_ms``, move it to ``next_ms``, note it in flight (or,
        with ``wait``, waiting for the previous run to end) and queue ``rows`` (its missed or
        skipped occurrences) in the outbox.

        Returns 1 (claimed), 0 (someone else claimed it or an edit moved it), -1 (lock lost).
        """
        field, value = inflight if inflight else ("", {})
        return int(
            self._claim(
                keys=[
                    self.key("lock"),
                    self.key("due"),
                    self.key("claimed"),
                    self.key("waiting" if wait else "inflight"),
                    self.key("outbox"),
                ],
                args=[
                    token,
                    ttl_ms,
                    schedule_id,
                    due_ms,
                    claimed_ms,
                    _arg(next_ms),
                    field,
                    json.dumps(value),
                    *(json.dumps(row) for row in rows or []),
                ],
            )
        )

    def inflight(self) -> dict[str, dict[str, Any]]:
        raw = self.client.hgetall(self.key("inflight"))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def waiting(self) -> dict[str, tuple[bytes, dict[str, Any]]]:
        """The waiting occurrences: schedule id -> (the raw note, the note)."""
        raw = self.client.hgetall(self.key("waiting"))
        return {k.decode(): (v, json.loads(v)) for k, v in raw.items()}

    def is_waiting(self, schedule_id: int) -> bool:
        return bool(self.client.hexists(self.key("waiting"), str(schedule_id)))

    def take_waiting(
        self,
        token: str,
        schedule_id: str,
        raw: bytes,
        inflight: tuple[str, dict[str, Any]] | None,
        rows: list[dict[str, Any]] | None = None,
    ) -> int:
        """Atomically move a waiting occurrence to the in-flight notes (``inflight``) or drop it
        with ``rows``; 1 done, 0 the note changed meanwhile, -1 the lock is lost."""
        field, value = inflight if inflight else ("", {})
        return int(
            self._take_waiting(
                keys=[
                    self.key("lock"),
                    self.key("waiting"),
                    self.key("inflight"),
                    self.key("outbox"),
                ],
                args=[
                    token,
                    schedule_id,
                    raw,
                    field,
                    json.dumps(value),
                    *(json.dumps(row) for row in rows or []),
                ],
            )
        )

    def sent(self, field: str, row: dict[str, Any] | None = None) -> None:
        """Confirm a claim sent and queue its run row, in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.key("inflight"), field)
        if row is not None:
            pipe.rpush(self.key("outbox"), json.dumps(row))
        pipe.execute()

    # -- the outbox of run rows ---------------------------------------------------------------
    def outbox(self, limit: int) -> list[dict[str, Any]]:
        """The oldest ``limit`` run rows waiting for the database (they stay until trimmed)."""
        return [json.loads(raw) for raw in self.client.lrange(self.key("outbox"), 0, limit - 1)]

    def queue_rows(self, rows: list[dict[str, Any]]) -> None:
        """Queue run rows again (a beat's own copy of rows Redis may have lost)."""
        if rows:
            self.client.rpush(self.key("outbox"), *(json.dumps(row) for row in rows))

    def trim_outbox(self, count: int) -> None:
        """Drop the ``count`` oldest rows, once the database has them."""
        self.client.ltrim(self.key("outbox"), count, -1)


def projection_state(store: Store) -> dict[str, Any]:
    """How complete the Redis projection is, for the health checks.

    ``complete`` is false when the marker a rebuild writes is missing (Redis was flushed or came
    back empty and no beat rebuilt it yet) or when fewer entries than the enabled schedules the
    database held at the last check are in Redis; ``expected`` is that count (None: no marker).
    """
    pipe = store.client.pipeline(transaction=False)
    pipe.hmget(store.key("projection"), "expected", "rebuilt_at")
    pipe.scard(store.key("ids"))
    pipe.llen(store.key("outbox"))
    (expected, rebuilt_at), entries, outbox = pipe.execute()
    expected_count = None if expected is None else int(expected)
    return {
        "complete": rebuilt_at is not None and entries >= (expected_count or 0),
        "entries": int(entries),
        "expected": expected_count,
        "rebuilt_at": rebuilt_at.decode() if rebuilt_at else None,
        "runs_waiting": int(outbox),
    }


def _arg(value: int | None) -> str | int:
    return "" if value is None else value


def get_store(app: Flask | None = None) -> Store:
    """The app's store, created on first use (no Redis connection at import time)."""
    # current_app is typed Flask, not the proxy it is
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    store = app.extensions.get("scheduler_store")
    if store is None:
        url = app.config.get("SCHEDULER_REDIS_URL") or app.config["REDIS_URL"]
        store = Store(
            redis.Redis.from_url(url), app.config.get("SCHEDULER_REDIS_PREFIX", "ewas:sched")
        )
        app.extensions["scheduler_store"] = store
    return store
