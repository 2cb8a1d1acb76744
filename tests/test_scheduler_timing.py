"""Next-run computation against a brute-force reference walking UTC minute by minute.

Every test here runs twice, under two host ``TZ`` values: results must not depend on them.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import InvalidInput
from app.scheduler.timing import Timing, next_run, validate_crontab, zone

MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True, params=["UTC", "America/St_Johns"])
def host_tz(request: pytest.FixtureRequest):
    """Run under a host TZ (a 30-minute-offset zone with DST, the worst case); restore after."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


# -- the reference: an independent cron matcher and a minute-by-minute walk ---------------------
def field_values(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        step = 1
        if "/" in item:
            item, step_text = item.split("/")
            step = int(step_text)
        if item == "*":
            start, end = low, high
        elif "-" in item:
            start, end = map(int, item.split("-"))
        else:
            start = end = int(item)
        values.update(range(start, end + 1, step))
    return values


def matcher(expression: str):
    minute, hour, dom, month, dow = expression.split()
    minutes, hours = field_values(minute, 0, 59), field_values(hour, 0, 23)
    doms, months = field_values(dom, 1, 31), field_values(month, 1, 12)
    dows = {d % 7 for d in field_values(dow, 0, 7)}
    dom_any, dow_any = dom == "*", dow == "*"

    def day_ok(wall: datetime) -> bool:
        in_dom, in_dow = wall.day in doms, (wall.isoweekday() % 7) in dows
        if not dom_any and not dow_any:
            return in_dom or in_dow  # cron's day-of-month OR day-of-week rule
        return in_dom and in_dow

    def matches(wall: datetime) -> bool:
        return (
            wall.minute in minutes and wall.hour in hours and wall.month in months and day_ok(wall)
        )

    return matches, len(hours) == 24


def reference(expression: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Instants in (start, end] at which the expression fires under the DST policy."""
    matches, every_hour = matcher(expression)
    fired: set[datetime] = set()
    moment = start - 3 * timedelta(hours=1)
    moment = moment.replace(second=0, microsecond=0)
    previous = moment.astimezone(tz)
    while moment <= end:
        moment += MINUTE
        local = moment.astimezone(tz)
        wall = local.replace(tzinfo=None)
        if matches(wall) and (every_hour or local.fold == 0):
            fired.add(moment)
        skipped = previous.replace(tzinfo=None) + MINUTE
        while skipped < wall:  # a spring-forward gap: its matching times fire at its end
            if matches(skipped):
                fired.add(moment)
            skipped += MINUTE
        previous = local
    return sorted(t for t in fired if start < t <= end)


def ours(timing: Timing, start: datetime, end: datetime) -> list[datetime]:
    found, current = [], start
    while (following := next_run(timing, current)) is not None and following <= end:
        found.append(following)
        current = following
    return found


@cache
def transitions(name: str, year: int = 2026) -> list[datetime]:
    """UTC instants in ``year`` where the zone's offset changes."""
    tz, found = ZoneInfo(name), []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    while moment.year == year:
        following = moment + timedelta(hours=1)
        if moment.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            found.append(following)
        moment = following
    return found


DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
EXPRESSIONS = [
    "30 2 * * *",  # in Berlin's and New York's gap and repeated hour
    "0 2 * * *",
    "15 1 * * *",  # in Lord Howe's repeated half hour
    "45 2 * * *",  # in Lord Howe's gap
    "*/15 * * * *",  # wildcard hour: once per real hour
    "0 * * * *",
    "*/20 1-3 * * *",
    "59 1 * * 0",
]


@pytest.mark.parametrize("zone_name", DST_ZONES)
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_crontab_matches_the_reference_across_dst(zone_name: str, expression: str) -> None:
    timing = Timing("crontab", crontab=expression, timezone=zone_name)
    for transition in transitions(zone_name):
        start, end = transition - timedelta(days=1), transition + timedelta(days=1)
        assert ours(timing, start, end) == reference(expression, zone(zone_name), start, end)


def test_dst_policy_examples() -> None:
    berlin = "Europe/Berlin"
    # 02:30 does not exist on 2026-03-29: fires once at 03:00 CEST (01:00 UTC).
    day = Timing("crontab", crontab="30 2 * * *", timezone=berlin)
    spring = ours(day, datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 29, 12, tzinfo=UTC))
    assert spring == [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]
    # 02:30 happens twice on 2026-10-25: a fixed-hour expression fires at the first one only.
    fall = ours(day, datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 25, 12, tzinfo=UTC))
    assert fall == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]
    # A wildcard hour fires in both repeated hours: once per real hour.
    every = Timing("crontab", crontab="30 * * * *", timezone=berlin)
    hourly = ours(
        every, datetime(2026, 10, 24, 23, tzinfo=UTC), datetime(2026, 10, 25, 3, tzinfo=UTC)
    )
    assert [t.hour for t in hourly] == [23, 0, 1, 2]


def test_interval_and_one_time() -> None:
    anchor = datetime(2026, 3, 29, 0, 0, 7, tzinfo=UTC)
    every_90 = Timing("interval", interval_seconds=90, anchor=anchor)
    start, end = anchor - timedelta(minutes=5), anchor + timedelta(hours=3)
    expected = [anchor + k * timedelta(seconds=90) for k in range(121)]
    assert ours(every_90, start, end) == expected  # DST in any zone is irrelevant to intervals
    run_at = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    once = Timing("one_time", run_at=run_at, timezone="Europe/Berlin")
    assert ours(once, run_at - timedelta(days=1), run_at + timedelta(days=1)) == [run_at]
    assert next_run(once, run_at) is None


def test_start_and_expiry_bound_occurrences() -> None:
    start_at = datetime(2026, 5, 1, 10, 0, 30, tzinfo=UTC)
    expires_at = datetime(2026, 5, 1, 10, 5, tzinfo=UTC)
    timing = Timing("crontab", crontab="* * * * *", start_at=start_at, expires_at=expires_at)
    got = ours(timing, datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC))
    assert got == [datetime(2026, 5, 1, 10, m, tzinfo=UTC) for m in range(1, 6)]


field = st.one_of(st.just("*"), st.integers(2, 6).map(lambda k: f"*/{k}"))
expressions = st.builds(
    lambda minute, hour, dom, month, dow: f"{minute} {hour} {dom} {month} {dow}",
    st.one_of(st.integers(0, 59).map(str), st.sampled_from(["*/7", "0,30", "10-20/5", "*"])),
    st.one_of(st.integers(0, 23).map(str), st.sampled_from(["*", "1-3", "*/2", "0,2,3"])),
    st.one_of(st.just("*"), st.integers(1, 28).map(str), st.just("1-15")),
    st.one_of(st.just("*"), st.integers(1, 12).map(str)),
    st.one_of(st.just("*"), st.integers(0, 6).map(str), st.just("1-5")),
)
ZONES = [*DST_ZONES, "UTC", "Asia/Kolkata", "Pacific/Chatham", "America/Santiago", "Europe/London"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    expression=expressions,
    zone_name=st.sampled_from(ZONES),
    data=st.data(),
)
def test_property_random_expressions_and_zones(expression: str, zone_name: str, data) -> None:
    points = transitions(zone_name) or [datetime(2026, 6, 1, tzinfo=UTC)]
    center = data.draw(st.sampled_from(points))
    offset = data.draw(st.integers(-36 * 60, 12 * 60))
    start = center + timedelta(minutes=offset, seconds=data.draw(st.integers(0, 59)))
    end = start + timedelta(hours=36)
    timing = Timing("crontab", crontab=expression, timezone=zone_name)
    assert ours(timing, start, end) == reference(expression, zone(zone_name), start, end)


@pytest.mark.parametrize(
    "expression",
    ["0 0 31 2 *", "* * * *", "0 0 * * * *", "R 0 * * *", "0 R(1-5) * * *", "61 * * * *",
     "@daily", "", "0 0 * * MON-FRI-", "0 24 * * *"],
)  # fmt: skip
def test_invalid_crontabs_are_refused(expression: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_crontab(expression, "a name")
    assert caught.value.fields["crontab"]


def test_hashed_fields_are_stable_per_name() -> None:
    first = validate_crontab("H H * * *", "nightly export")
    timing = Timing("crontab", crontab=first, hash_id="nightly export")
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_run(timing, after) == next_run(timing, after)
    assert validate_crontab("0 0 * * MON-FRI", "x") == "0 0 * * MON-FRI"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", " UTC", "utc+2"])
def test_unknown_timezones_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        zone(name)
    assert "timezone" in caught.value.fields
