"""Next-run computation and timing validation: pure functions, independent of the host's TZ.

Every time here is an aware UTC datetime. Crontab expressions are matched on the entry's local
wall clock (IANA zone) with this DST policy:

- a matching local time that does not exist (spring-forward gap) fires once, at the first valid
  instant after the gap;
- a matching local time that happens twice (fall-back) fires once, at its first occurrence, when
  the hour field is restricted (``30 2 * * *``); a wildcard-hour expression (``*/15 * * * *``)
  fires in both repeated hours, i.e. once per real hour.

croniter only enumerates wall-clock times (fed UTC-labelled naive values, so it never consults
the host's zone); mapping them to real instants is done here with ``zoneinfo``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter
from flask_babel import gettext as _

from app.bounds import valid_zone
from app.errors import InvalidInput

UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
RANDOM_TOKEN = re.compile(r"(?<![A-Za-z])[Rr](?![A-Za-z])")
# Wall-clock window scanned around a DST transition; larger than any real UTC offset change.
DST_WINDOW = timedelta(hours=3)
# Within this span a zone changes its offset at most once, so equal offsets at both ends mean
# no transition in between.
FAST_PATH_SPAN = timedelta(hours=6)


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` as input (one the pages can render), or InvalidInput on the
    ``timezone`` field. Next runs read a stored zone directly, so one saved before this rule
    still runs."""
    if valid_zone(name):
        return ZoneInfo(name)
    shown = name[:64] if isinstance(name, str) else name
    message = _("Unknown timezone %(name)r: use an IANA name such as Europe/Berlin.", name=shown)
    raise InvalidInput(message, {"timezone": [message]})


def validate_crontab(expression: str | None, hash_id: str) -> str:
    """A strictly valid 5-field expression; ``R`` is refused, ``H`` hashes ``hash_id``."""
    expression = " ".join((expression or "").split())
    problem = None
    if len(expression.split(" ")) != 5 or expression.startswith("@"):
        problem = _("A crontab needs exactly 5 fields: minute hour day-of-month month day-of-week.")
    elif RANDOM_TOKEN.search(expression):
        problem = _("Random crontab fields (R) are not allowed: each beat would pick other times.")
    elif not croniter.is_valid(expression, hash_id=hash_id.encode(), strict=True):
        problem = _(
            "%(expr)r is not a valid crontab expression (or never matches).", expr=expression
        )
    if problem:
        raise InvalidInput(problem, {"crontab": [problem]})
    return expression


@dataclass(frozen=True)
class Timing:
    """What next-run computation needs to know about an entry (also stored in Redis)."""

    kind: str  # crontab | interval | one_time
    crontab: str | None = None
    timezone: str = "UTC"
    hash_id: str = ""
    interval_seconds: float | None = None
    anchor: datetime | None = None  # interval: occurrences are anchor + k * interval
    run_at: datetime | None = None
    start_at: datetime | None = None
    expires_at: datetime | None = None


def next_run(timing: Timing, after: datetime) -> datetime | None:
    """The first occurrence strictly after ``after``, or None when there is none left."""
    if timing.start_at is not None and after < timing.start_at:
        after = timing.start_at - timedelta(microseconds=1)
    if timing.kind == "crontab":
        tz = ZoneInfo(timing.timezone)
        found = next_crontab(timing.crontab or "", tz, after, timing.hash_id)
    elif timing.kind == "interval":
        found = next_interval(timing.anchor or after, timing.interval_seconds or 0, after)
    else:
        found = timing.run_at if timing.run_at is not None and timing.run_at > after else None
    if found is not None and timing.expires_at is not None and found > timing.expires_at:
        return None
    return found


def next_interval(anchor: datetime, seconds: float, after: datetime) -> datetime:
    """``anchor + k * seconds`` for the smallest k >= 0 that lands after ``after``.

    Phase-locked to the anchor, so occurrences never drift and every beat computes the same ones.
    """
    if seconds <= 0:
        raise ValueError("interval must be positive")
    if after < anchor:
        return anchor
    period = timedelta(seconds=seconds)
    steps = (after - anchor) // period + 1
    return anchor + steps * period


@lru_cache(maxsize=4096)
def hour_is_wildcard(expression: str, hash_id: str) -> bool:
    """Whether the hour field matches every hour (then both repeated hours fire at fall-back)."""
    hours = croniter(expression, hash_id=hash_id.encode()).expanded[1]
    return hours == ["*"] or len(set(hours)) == 24


@lru_cache(maxsize=8192)
def next_crontab(
    expression: str, tz: ZoneInfo, after: datetime, hash_id: str = ""
) -> datetime | None:
    """First real instant after ``after`` at which ``expression`` fires in zone ``tz``.

    Pure, so cached: the watch asks the same questions of every schedule on every health answer
    and dashboard (about 0.2 ms each through croniter; 300 schedules made the health answer
    80 ms)."""
    every_hour = hour_is_wildcard(expression, hash_id)
    local_after = after.astimezone(tz).replace(tzinfo=None)
    # Fast path: the next wall-clock match, when no UTC offset change lies between (the usual
    # case); otherwise scan a window wide enough for any transition.
    try:
        matcher = croniter(expression, local_after.replace(tzinfo=UTC), hash_id=hash_id.encode())
        candidate = matcher.get_next(datetime).replace(tzinfo=None)
    except CroniterBadDateError:
        return None
    found = instants(candidate, tz, every_hour)
    if (
        len(found) == 1
        and found[0] - after < FAST_PATH_SPAN
        and after.astimezone(tz).utcoffset() == found[0].astimezone(tz).utcoffset()
    ):
        return found[0]
    walls = croniter(
        expression,
        (local_after - DST_WINDOW).replace(tzinfo=UTC),
        hash_id=hash_id.encode(),
    )
    best: datetime | None = None
    while True:
        try:
            wall = walls.get_next(datetime).replace(tzinfo=None)
        except CroniterBadDateError:
            return best
        if best is not None and wall > best.astimezone(tz).replace(tzinfo=None) + DST_WINDOW:
            return best
        for instant in instants(wall, tz, every_hour):
            if instant > after and (best is None or instant < best):
                best = instant


def instants(wall: datetime, tz: ZoneInfo, both_folds: bool) -> list[datetime]:
    """The real instants (UTC) of local wall time ``wall`` under the DST policy."""
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    first_utc = first.astimezone(UTC)
    second_utc = second.astimezone(UTC)
    if first_utc == second_utc:
        return [first_utc]
    if first_utc.astimezone(tz).replace(tzinfo=None) != wall:
        return [gap_end(min(first_utc, second_utc), max(first_utc, second_utc), tz)]
    return [first_utc, second_utc] if both_folds else [first_utc]


def gap_end(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The transition instant in [low, high]: the first valid local time after a DST gap."""
    before = low.astimezone(tz).utcoffset()
    lo, hi = 0, int((high - low).total_seconds())
    while lo < hi:
        mid = (lo + hi) // 2
        if (low + timedelta(seconds=mid)).astimezone(tz).utcoffset() == before:
            lo = mid + 1
        else:
            hi = mid
    return low + timedelta(seconds=lo)


def occurrences_between(
    timing: Timing, start: datetime, end: datetime, limit: int
) -> list[datetime]:
    """Occurrences in (start, end], at most ``limit`` of them (the latest ones are dropped)."""
    found: list[datetime] = []
    current = start
    while len(found) < limit:
        following = next_run(timing, current)
        if following is None or following > end:
            break
        found.append(following)
        current = following
    return found


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def from_ms(ms: int | float | str) -> datetime:
    return datetime.fromtimestamp(int(float(ms)) / 1000, UTC)
