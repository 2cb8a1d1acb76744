"""What tracking captures from a task: arguments (redacted, size-capped), results, logs, and the
CPU time and peak memory of one attempt."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import resource
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

ARGS_MAX_BYTES = 64 * 1024
RESULT_MAX_BYTES = 64 * 1024
LOG_MAX_RECORDS = 200
LOG_MAX_BYTES = 32 * 1024
REDACTED = "***redacted***"
CELERY_OWN_LOGGERS = ("celery.app.trace", "celery.worker", "celery.pool", "kombu")
SECRET_KEY_PATTERN = re.compile(
    r"(pass(word|wd|phrase)?|token|secret|credential|authori[sz]ation|api_?key|private_?key"
    r"|access_?key|^key$|_key$)",
    re.IGNORECASE,
)


def _redact(value: Any, found: list[str]) -> Any:
    if isinstance(value, dict):
        clean = {}
        for key, item in value.items():
            if isinstance(key, str) and SECRET_KEY_PATTERN.search(key):
                clean[key] = REDACTED
                found.append(key)
            else:
                clean[key] = _redact(item, found)
        return clean
    if isinstance(value, list | tuple):
        return [_redact(item, found) for item in value]
    return value


def capped_json(value: Any, max_bytes: int) -> tuple[Any, bool]:
    """``value`` as JSON-able data, or a visible truncation marker when it is too large."""
    encoded = json.dumps(value, default=repr, separators=(",", ":"))
    if len(encoded) <= max_bytes:
        return json.loads(encoded), False
    return {"_truncated": True, "size_bytes": len(encoded), "preview": encoded[:2000]}, True


def redacted_copy(value: Any) -> Any:
    """``value`` redacted and size-capped exactly as an execution's arguments are stored.

    For copies kept raw on purpose (a dead letter must be replayable) but shown to readers.
    """
    return capped_json(_redact(value, []), ARGS_MAX_BYTES)[0]


_SEQUENCES = (list, tuple)
_SCALAR_TYPES = frozenset({int, float, bool, type(None)})
_FAST_MAX_ITEMS = 16
_FAST_MAX_CHARS = 512


def capture_arguments(args: Any, kwargs: Any) -> dict[str, Any]:
    """Arguments as stored on the execution: secrets redacted, size-capped.

    ``replayable`` says whether a retry can re-run exactly these arguments.
    """
    if not kwargs and type(args) in _SEQUENCES and len(args) <= _FAST_MAX_ITEMS:
        # The common case, a few scalars and no keywords: nothing to redact, and the JSON round
        # trip would give them back unchanged (at most 6 bytes per character each: under the cap).
        plain = list(args)
        if all(
            type(item) in _SCALAR_TYPES or (type(item) is str and len(item) <= _FAST_MAX_CHARS)
            for item in plain
        ):
            first = plain[0] if plain else None
            return {
                "args": plain,
                "kwargs": {},
                "arg1": None if first is None else str(first)[:255],
                "replayable": True,
            }
    found: list[str] = []
    clean_args = _redact(list(args or ()), found)
    clean_kwargs = _redact(dict(kwargs or {}), found)
    stored_args, args_cut = capped_json(clean_args, ARGS_MAX_BYTES)
    stored_kwargs, kwargs_cut = capped_json(clean_kwargs, ARGS_MAX_BYTES)
    first = clean_args[0] if clean_args else None
    return {
        "args": stored_args,
        "kwargs": stored_kwargs,
        "arg1": None if first is None else str(first)[:255],
        "replayable": not (found or args_cut or kwargs_cut),
    }


SCALARS = (int, float, bool, type(None))


def capture_result(result: Any) -> Any:
    if isinstance(result, SCALARS) or (isinstance(result, str) and len(result) < 4096):
        return result  # most results: nothing to convert or cut
    return capped_json(result, RESULT_MAX_BYTES)[0]


class LiveLogs:
    """Publishes a running attempt's lines as they come, at most once per ``interval`` seconds:
    the first line at once, later ones together, the last ones by a timer when the task goes
    quiet. A task that logs nothing costs nothing."""

    def __init__(
        self, records: deque, publish: Callable[[list[dict[str, Any]]], None], interval: float
    ) -> None:
        self.records, self.publish, self.interval = records, publish, interval
        self.lock = threading.Lock()
        self.sent_at = 0.0
        self.timer: threading.Timer | None = None
        self.stopped = False

    def changed(self) -> None:
        """Called with ``lock`` held, after a line was added."""
        wait = self.interval - (time.monotonic() - self.sent_at)
        if wait <= 0:
            self._send()
        elif self.timer is None:
            self.timer = threading.Timer(wait, self._on_timer)
            self.timer.daemon = True
            self.timer.start()

    def _on_timer(self) -> None:
        with self.lock:
            self.timer = None
            if not self.stopped:
                self._send()

    def _send(self) -> None:
        self.sent_at = time.monotonic()
        try:
            self.publish(list(self.records))
        except Exception:  # showing lines live must never fail the task
            logging.getLogger(__name__).debug("live logs not published", exc_info=True)

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None


class AttemptLogs(logging.Handler):
    """Keeps the INFO+ records of the running task, oldest dropped past the caps; with
    ``publish``, also sends them while the task runs (``LiveLogs``)."""

    def __init__(self, live_interval: float = 0.5) -> None:
        super().__init__(level=logging.INFO)
        self.records: ContextVar[deque | None] = ContextVar("attempt_logs", default=None)
        self.live: ContextVar[LiveLogs | None] = ContextVar("attempt_live_logs", default=None)
        self.publish: ContextVar[Callable[[list[dict[str, Any]]], None] | None] = ContextVar(
            "attempt_logs_publish", default=None
        )
        self.live_interval = live_interval

    def start(self, publish: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.records.set(deque())
        self.publish.set(publish)
        self.live.set(None)  # made at the first line: a task that logs nothing pays nothing

    def stop(self) -> list[dict[str, Any]]:
        records = self.records.get()
        live = self.live.get()
        if live is not None:
            live.stop()
        self.records.set(None)
        self.live.set(None)
        self.publish.set(None)
        return list(records or ())

    def emit(self, record: logging.LogRecord) -> None:
        records = self.records.get()
        if records is None or getattr(record, "_ewas_seen", False):
            return
        if record.name.startswith(CELERY_OWN_LOGGERS):
            return  # Celery's "Task ... succeeded in 0.01s" lines are not the task's own
        record._ewas_seen = True  # the same record may reach us from two loggers
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        line = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": message[:4000],
        }
        live = self.live.get()
        if live is None:
            publish = self.publish.get()
            if publish is None:
                self._keep(records, line)
                return
            live = LiveLogs(records, publish, self.live_interval)
            self.live.set(live)
        with live.lock:
            self._keep(records, line)
            live.changed()

    @staticmethod
    def _keep(records: deque, line: dict[str, Any]) -> None:
        records.append(line)
        while len(records) > LOG_MAX_RECORDS or (
            len(records) > 1 and sum(len(r["message"]) for r in records) > LOG_MAX_BYTES
        ):
            records.popleft()


def install_log_capture(handler: AttemptLogs) -> None:
    """Attach to the root logger and to Celery's task logger (which does not propagate)."""
    for name in ("", "celery.task"):
        logger = logging.getLogger(name)
        if handler not in logger.handlers:
            logger.addHandler(handler)


class AttemptResources:
    """CPU seconds and peak RSS of the process while one attempt runs.

    Linux lets a process reset its peak RSS (write 5 to /proc/self/clear_refs), which makes the
    peak per attempt rather than per process lifetime; elsewhere the lifetime peak is reported.
    The /proc files stay open per process: re-reading them costs a syscall, not an open.
    """

    def __init__(self) -> None:
        self.cpu_start = 0.0

    def start(self) -> None:
        self.cpu_start = time.process_time()
        _proc.reset_peak()

    def stop(self) -> dict[str, Any]:
        return {
            "cpu_seconds": round(time.process_time() - self.cpu_start, 6),
            "peak_memory_bytes": _proc.peak_rss(),
        }


class _ProcFiles:
    def __init__(self) -> None:
        self.pid = -1
        self.status_fd: int | None = None
        self.clear_fd: int | None = None

    def _open(self) -> None:
        if self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.status_fd = self.clear_fd = None  # a forked child must not share the parent's
        with contextlib.suppress(OSError):
            self.status_fd = os.open("/proc/self/status", os.O_RDONLY)
        with contextlib.suppress(OSError):
            self.clear_fd = os.open("/proc/self/clear_refs", os.O_WRONLY)

    def reset_peak(self) -> None:
        self._open()
        if self.clear_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.clear_fd, b"5")

    def peak_rss(self) -> int:
        self._open()
        if self.status_fd is not None:
            with contextlib.suppress(OSError, ValueError):
                status = os.pread(self.status_fd, 8192, 0)
                start = status.index(b"VmHWM:") + 6
                return int(status[start : status.index(b"kB", start)]) * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_proc = _ProcFiles()


def peak_rss_bytes() -> int:
    return _proc.peak_rss()
