"""The supported range of every value the outside world sends: ids, moments, timezones, whole
numbers, durations and JSON. Pages, forms, the API and the scheduler all judge input here, so a
value is either refused with a message (a 4xx or a form error) or fits every later use: a
database column, a conversion to UTC or to the reader's timezone, a ``timedelta``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo, available_timezones

from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger
from werkzeug.routing import IntegerConverter, ValidationError

MAX_BIGINT = 2**63 - 1  # BIGINT keys (executions, alerts, dead letters, runs)
MAX_INT = 2**31 - 1  # INTEGER columns (schedules, sources, variables, counts)
ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
# Moments: far enough from year 1 and 9999 that any UTC offset and any reader's timezone fit.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = _l("Use a date between the years 1970 and 9000.")
MAX_INTERVAL = timedelta(days=3660)  # ten years: a longer interval is not a schedule
MAX_DELAY_SECONDS = 7 * 86400  # retry backoff, grace, maximum duration
MAX_RETRIES = 100
MAX_JSON_DEPTH = 64
MAX_JSON_CHARS = 256 * 1024  # one JSON form field (schedule arguments, variables)
# Zones the zone database lists that are no place's clock, or that the renderer cannot load.
NOT_A_PLACE = frozenset({"Factory", "localtime", "posixrules"})


def parse_id(text: str | None, maximum: int = MAX_BIGINT) -> int | None:
    """``text`` as an id from 1 to ``maximum``: ASCII digits only (no sign, space, ``²`` or
    Arabic-Indic digits, which ``int()`` or ``str.isdigit()`` would take); else None."""
    if text is None or not ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 0 < value <= maximum else None


def key_fits(model: Any, value: int) -> bool:
    """Whether ``value`` can be the primary key of ``model``: an INTEGER key stops at 2^31-1
    (PostgreSQL refuses a larger value even to compare), a BIGINT key at 2^63-1."""
    column = next(iter(model.__table__.primary_key.columns))
    return 0 < value <= (MAX_BIGINT if isinstance(column.type, BigInteger) else MAX_INT)


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: ASCII digits of an id that fits a BIGINT, else a 404."""

    regex = r"[0-9]+"

    def to_python(self, value: str) -> int:
        parsed = parse_id(value)
        if parsed is None:
            raise ValidationError()
        return parsed


class OutOfRange(ValueError):
    """A moment outside ``EARLIEST``..``LATEST`` (its message: :data:`OUT_OF_RANGE`)."""


def utc_moment(value: datetime) -> datetime:
    """The aware ``value`` in UTC, or :class:`OutOfRange` (checked on the wall clock first:
    converting year 1 east of UTC, or 9999-12-31 west of it, would overflow)."""
    wall = value.replace(tzinfo=UTC)
    if not EARLIEST - timedelta(days=2) < wall < LATEST + timedelta(days=2):
        raise OutOfRange(str(OUT_OF_RANGE))
    moment = value.astimezone(UTC)
    if not EARLIEST <= moment <= LATEST:
        raise OutOfRange(str(OUT_OF_RANGE))
    return moment


def parse_moment(text: str, zone: tzinfo) -> datetime:
    """An ISO 8601 date (midnight) or date and time, a naive one read in ``zone``, as an aware
    UTC datetime in the supported range; ValueError (or :class:`OutOfRange`) otherwise."""
    value = datetime.fromisoformat(text.strip())
    return utc_moment(value if value.tzinfo else value.replace(tzinfo=zone))


def displayable(moment: datetime) -> datetime:
    """``moment`` (naive: UTC) moved into the supported range, so any timezone can show it (a
    row written before the range was enforced may hold 9999-12-31, which overflows east of
    UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        return min(max(aware.astimezone(UTC), EARLIEST), LATEST)
    except OverflowError:  # year 1 with an offset east of UTC, or 9999 west of it
        return EARLIEST if aware.year < EARLIEST.year else LATEST


@lru_cache(maxsize=1)
def renderable_zones() -> frozenset[str]:
    """The IANA names a reader or a schedule may use: places' clocks the renderer can load
    (not ``right/*`` leap-second or ``posix/*`` copies, not ``Factory`` or ``localtime``)."""
    from flask_babel import timezone as babel_zone

    names = set()
    for name in available_timezones():
        if name in NOT_A_PLACE or name.startswith(("right/", "posix/")):
            continue
        try:
            babel_zone(name)
            ZoneInfo(name)
        except Exception:
            continue
        names.add(name)
    return frozenset(names)


def valid_zone(name: Any) -> bool:
    """Whether ``name`` is one of :func:`renderable_zones`."""
    return isinstance(name, str) and name in renderable_zones()


def whole_number(value: Any, low: int, high: int) -> TypeGuard[int]:
    """Whether ``value`` is an int (not a bool) from ``low`` to ``high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def seconds(value: Any, low: float = 0, high: float = MAX_DELAY_SECONDS) -> bool:
    """Whether ``value`` is a finite number of seconds from ``low`` to ``high`` (no inf, nan)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


def json_depth_ok(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether the brackets of JSON ``text`` nest at most ``max_depth`` deep (read without
    parsing: a 100,000-deep document would exhaust the parser's recursion)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", "replace")
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)  # brackets inside strings do not nest
    depth = 0
    for char in stripped:
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return False
        elif char in "]}":
            depth -= 1
    return True


def loads(text: str | bytes, max_chars: int | None = None, **kwargs: Any) -> Any:
    """``json.loads`` refusing (ValueError) documents too deep or too long, and ``NaN`` or
    ``Infinity``, which JSON does not have and no column can hold."""
    if max_chars is not None and len(text) > max_chars:
        raise ValueError(f"longer than {max_chars} characters")
    if not json_depth_ok(text):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite, **kwargs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value
