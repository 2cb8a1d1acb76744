"""Per-process buffer of tracking events, written to a Redis stream in pipelined batches.

One XADD round trip per Celery signal halves worker throughput; buffering and flushing every
~50 ms keeps it near bare Celery. A flush sends all its XADDs in one write and reads all their
replies: one round trip per flush, not per event. An XADD is confirmed only by its reply, so a
flush whose connection broke or timed out, or whose XADD Redis refused (OOM under ``maxmemory``,
READONLY during a failover, anything), puts the unconfirmed events back at the front of the buffer
and they are sent again; a confirmed entry is never sent twice. An entry whose reply was lost after
the write may arrive twice: the recorder folds idempotently.

Events that end an attempt are flushed synchronously: the task returns (and its message is
acknowledged) only once Redis confirmed them, or after ``confirm_timeout`` seconds of a Redis
outage, after which they stay buffered and the background thread keeps retrying. So only a
worker process that dies while Redis is down can lose a final event (and when the broker is that
same Redis, the task's acknowledgement fails too, so its message is redelivered and runs again).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
import weakref
from typing import Any

import redis

from app.outages import Outage

log = logging.getLogger(__name__)

STREAM = "ewas:tracking"
# Redis outages are ridden out in memory up to this many events, oldest dropped past it.
MAX_BUFFERED = 100_000
# Events buffered together travel as one stream entry (a JSON array) of at most this many: fewer
# XADDs, acknowledgements and deletions for Redis, less per-entry work for the recorder.
ENTRY_MAX_EVENTS = 32
CLIENT_NAME = "ewas-tracking"
# One write sends at most this many events (after an outage the buffer can hold far more).
MAX_SEND_EVENTS = 256 * ENTRY_MAX_EVENTS


_XADD_PREFIX = f"*5\r\n$4\r\nXADD\r\n${len(STREAM)}\r\n{STREAM}\r\n$1\r\n*\r\n$1\r\ne\r\n".encode()


def _xadd(encoded: str) -> bytes:
    """``XADD <stream> * e <event>`` in Redis's wire format (cheaper than a generic packer)."""
    data = encoded.encode()
    return b"%s$%d\r\n%s\r\n" % (_XADD_PREFIX, len(data), data)


def _encode(events: list[dict[str, Any]]) -> str:
    """One event as a JSON object, several as a JSON array of them."""
    return json.dumps(events[0] if len(events) == 1 else events, default=str, separators=(",", ":"))


class Emitter:
    """Buffers events and writes them to the tracking stream from a background thread."""

    def __init__(
        self, redis_url: str, interval: float = 0.05, confirm_timeout: float = 5.0
    ) -> None:
        self.redis_url = redis_url
        self.interval = interval
        self.confirm_timeout = confirm_timeout
        self._buffer: list[dict[str, Any]] = []
        self._keyed: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._client: redis.connection.AbstractConnection | None = None
        self._send_lock = threading.Lock()
        self._outage = Outage("tracking", "Redis", logger=log)
        self._dropped = 0
        self._in_flight = 0  # taken by a send, not yet confirmed or put back
        self._closed = threading.Event()
        emitter = weakref.ref(self)

        def after_fork_in_child() -> None:
            if (e := emitter()) is not None:
                e._forked()

        os.register_at_fork(after_in_child=after_fork_in_child)

    def _forked(self) -> None:
        """In a forked child (a prefork pool process): the parent's locks may have been held by
        its flush thread at the fork, its socket is not ours, and its buffered events are still
        the parent's to send (copies here would only be duplicates)."""
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._client = None
        self._buffer, self._keyed, self._in_flight = [], {}, 0

    def close(self) -> None:
        """Stop the background thread and the connection (buffered events stay unsent)."""
        self._closed.set()
        with self._send_lock:
            self._drop_connection()

    def emit(self, event: dict[str, Any], flush: bool = False, key: str | None = None) -> None:
        """Buffer ``event``; with ``key``, it can still be taken back until it is flushed.

        With ``flush``, return once Redis confirmed it (or after ``confirm_timeout`` seconds)."""
        with self._lock:
            self._buffer.append(event)
            if key is not None:
                self._keyed[key] = event
            if len(self._buffer) > MAX_BUFFERED:
                self._drop_oldest()
        self._ensure_thread()
        if flush:
            self.flush()

    def take(self, key: str) -> dict[str, Any] | None:
        """Remove the buffered event emitted with ``key``, if it was not flushed yet.

        A task that ends within one flush interval sends its start and its end as one entry.
        """
        with self._lock:
            event = self._keyed.pop(key, None)
            if event is not None:
                self._buffer.remove(event)
        return event

    @property
    def buffered(self) -> int:
        """Events waiting to be sent or confirmed."""
        return len(self._buffer) + self._in_flight

    def flush(self, timeout: float | None = None) -> bool:
        """Send every buffered event and wait for Redis to confirm them, retrying through an
        outage for at most ``timeout`` seconds (default ``confirm_timeout``).

        True once every event buffered before the call is confirmed; False when the wait ran out
        (the unconfirmed events stay buffered for the background thread)."""
        self._ensure_fork_safe()
        deadline = time.monotonic() + (self.confirm_timeout if timeout is None else timeout)
        first = True
        while True:
            remaining = deadline - time.monotonic()
            wait = 0.0 if first else self._outage.retry_at - time.monotonic()
            first = False
            if wait > 0:  # backing off during an outage (a new flush tries once at once)
                if wait >= remaining:
                    return False
                time.sleep(wait)
                remaining -= wait
            if not self._send_lock.acquire(timeout=max(remaining, 0.0)):
                return False  # another thread's send is stuck on a hung Redis
            try:
                # Any send that took our events before we got the lock has confirmed them or put
                # them back: a send now that confirms all it takes (and all before it) covers them.
                # The socket waits at most what is left, in steps of 0.1 s (set only on change).
                confirmed, more = self._send(
                    min(math.ceil(remaining * 10) / 10, self.confirm_timeout)
                )
            finally:
                self._send_lock.release()
            if confirmed and not more:
                return True
            if time.monotonic() >= deadline:
                return False

    def _send(self, timeout: float) -> tuple[bool, bool]:
        """Send the buffer (up to ``MAX_SEND_EVENTS``) once, the send lock held; put back what
        Redis did not confirm. Returns (all taken were confirmed, some were left for a next send:
        events emitted meanwhile by other threads do not count)."""
        with self._lock:
            more = len(self._buffer) > MAX_SEND_EVENTS
            if not more:
                pending, self._buffer = self._buffer, []
            else:
                pending = self._buffer[:MAX_SEND_EVENTS]
                del self._buffer[:MAX_SEND_EVENTS]
            self._keyed.clear()
            self._in_flight = len(pending)
        try:
            confirmed = self._write(pending, timeout) if pending else True
        finally:
            self._in_flight = 0
        return confirmed, more

    def _write(self, pending: list[dict[str, Any]], timeout: float) -> bool:
        chunks = [
            pending[start : start + ENTRY_MAX_EVENTS]
            for start in range(0, len(pending), ENTRY_MAX_EVENTS)
        ]
        confirmed = 0  # replies read, in order: each chunk before this one was answered
        refused: list[list[dict[str, Any]]] = []
        error: BaseException | None = None
        try:
            connection = self._connection(timeout)
            packed = [b"".join(_xadd(_encode(c)) for c in chunks)]
            # types-redis says str; redis-py sends bytes items as they are (it packed them so).
            connection.send_packed_command(packed, False)  # type: ignore[arg-type]
            for chunk in chunks:
                try:
                    connection.read_response()
                except redis.ResponseError as refusal:  # this XADD was refused, the next may not be
                    refused.append(chunk)
                    error = refusal
                confirmed += 1
        except (redis.RedisError, OSError) as failure:
            error = failure
        if error is None:
            self._outage.ok()
            return True
        self._drop_connection()
        self._outage.failed(error)
        kept = [event for chunk in (*refused, *chunks[confirmed:]) for event in chunk]
        with self._lock:
            self._buffer[:0] = kept
            if len(self._buffer) > MAX_BUFFERED:
                self._drop_oldest()
        return False

    def _drop_oldest(self) -> None:
        """Past ``MAX_BUFFERED`` (a long outage), the oldest events go; said once per outage."""
        excess = len(self._buffer) - MAX_BUFFERED
        del self._buffer[:excess]
        if not self._dropped:
            log.error("tracking: buffer full (%d events), dropping the oldest", MAX_BUFFERED)
        self._dropped += excess

    def _connection(self, timeout: float) -> redis.connection.AbstractConnection:
        timeout = min(timeout, self.confirm_timeout)
        if self._client is None:
            pool = redis.ConnectionPool.from_url(
                self.redis_url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                client_name=f"{CLIENT_NAME}-{os.getpid()}",  # to find it in CLIENT LIST
            )
            connection = pool.make_connection()
            connection.connect()
            self._client = connection
            self._dropped = 0
        # A final flush waits at most what is left of its bounded wait, also on a hung Redis.
        if self._client.socket_timeout != timeout:
            self._client.socket_timeout = timeout
            sock = getattr(self._client, "_sock", None)
            if sock is not None:
                sock.settimeout(timeout)
        return self._client

    def _drop_connection(self) -> None:
        if self._client is not None:
            self._client.disconnect()
        self._client = None

    def _ensure_fork_safe(self) -> None:
        if self._pid != os.getpid():
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        # Threads and sockets do not survive fork: a prefork pool child starts its own.
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self._client = None  # the parent's socket is not ours to write on
            self._send_lock = threading.Lock()
            self._outage = Outage("tracking", "Redis", logger=log)
            thread = threading.Thread(target=self._run, name="tracking-flush", daemon=True)
            thread.start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while not self._closed.wait(self.interval):
            if not self._buffer or not self._outage.ready():
                continue
            try:
                with self._send_lock:
                    self._send(self.confirm_timeout)
            except Exception:  # the flusher must never die
                log.exception("tracking: flush failed")
