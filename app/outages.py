"""A dependency's outage as an engine process lives it: one warning when it starts, one line
when it ends (never a traceback per retry), and a growing backoff between attempts.

Beat, the recorder and the watch each keep one per dependency (Redis, the database).
"""

from __future__ import annotations

import logging
import time


class Outage:
    def __init__(
        self,
        process: str,
        name: str,
        state: str = "unavailable",
        max_backoff: float = 2.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.process, self.name, self.state = process, name, state
        self.max_backoff = max_backoff
        self.log = logger or logging.getLogger(f"app.{process}")
        self.since: float | None = None
        self.failures = 0
        self.retry_at = 0.0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> float:
        """Note a failure; returns the seconds to wait before the next attempt."""
        if self.since is None:
            self.since = time.monotonic()
            first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            self.log.warning(
                "%s: %s %s (%s: %s); retrying",
                self.process, self.name, self.state, type(error).__name__, first_line,
            )  # fmt: skip
        self.failures += 1
        backoff = min(self.max_backoff, 0.25 * 2 ** (self.failures - 1))
        self.retry_at = time.monotonic() + backoff
        return backoff

    def ok(self) -> None:
        if self.since is not None:
            self.log.warning(
                "%s: %s back after %.1f s", self.process, self.name, time.monotonic() - self.since
            )
        self.since, self.failures, self.retry_at = None, 0, 0.0

    def ready(self) -> bool:
        """Whether to try again now (always, outside an outage)."""
        return time.monotonic() >= self.retry_at
