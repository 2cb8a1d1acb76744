"""Per-process buffer of tracking events, written to a Redis stream in pipelined batches.

One XADD round trip per Celery signal halves worker throughput; buffering and flushing every
~50 ms keeps it near bare Celery. Events that end an attempt are flushed synchronously before the
task returns (and so before its message is acknowledged), so a crash costs latency, never a row.

The connection runs with ``CLIENT REPLY OFF``: a flush is one ``sendall`` of pipelined XADDs,
with no round trip to wait for. Once the bytes are in the kernel they reach Redis even if this
process dies right after (the kernel still sends them when it closes the socket), which is the
same guarantee the broker acknowledgement itself has.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from typing import Any

import redis

log = logging.getLogger(__name__)

STREAM = "ewas:tracking"
# Redis outages are ridden out in memory up to this many events, oldest dropped past it.
MAX_BUFFERED = 100_000
# Events buffered together travel as one stream entry (a JSON array) of at most this many: fewer
# XADDs, acknowledgements and deletions for Redis, less per-entry work for the recorder.
ENTRY_MAX_EVENTS = 32


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

    def __init__(self, redis_url: str, interval: float = 0.05) -> None:
        self.redis_url = redis_url
        self.interval = interval
        self._buffer: list[dict[str, Any]] = []
        self._keyed: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._client: redis.connection.AbstractConnection | None = None
        self._send_lock = threading.Lock()

    def emit(self, event: dict[str, Any], flush: bool = False, key: str | None = None) -> None:
        """Buffer ``event``; with ``key``, it can still be taken back until it is flushed."""
        with self._lock:
            self._buffer.append(event)
            if key is not None:
                self._keyed[key] = event
            if len(self._buffer) > MAX_BUFFERED:
                del self._buffer[: len(self._buffer) - MAX_BUFFERED]
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

    def flush(self) -> None:
        """Write every buffered event now (one pipelined write, no round trip)."""
        with self._lock:
            pending, self._buffer = self._buffer, []
            self._keyed.clear()
        if not pending:
            return
        packed = b"".join(
            _xadd(_encode(pending[start : start + ENTRY_MAX_EVENTS]))
            for start in range(0, len(pending), ENTRY_MAX_EVENTS)
        )
        with self._send_lock:
            try:
                self._connection().send_packed_command([packed], False)
            except (redis.RedisError, OSError):
                log.warning(
                    "tracking: Redis unavailable, keeping %d events for later", len(pending)
                )
                self._drop_connection()
                with self._lock:
                    self._buffer[:0] = pending

    def _connection(self) -> redis.connection.AbstractConnection:
        if self._client is None:
            pool = redis.ConnectionPool.from_url(self.redis_url, socket_timeout=5)
            connection = pool.make_connection()
            connection.connect()
            connection.send_command("CLIENT", "REPLY", "OFF")
            self._client = connection
        return self._client

    def _drop_connection(self) -> None:
        if self._client is not None:
            self._client.disconnect()
        self._client = None

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
            thread = threading.Thread(target=self._run, name="tracking-flush", daemon=True)
            thread.start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.flush()
            except Exception:  # the flusher must never die
                log.exception("tracking: flush failed")
