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
from app.scheduler.timing import (
    Timing,
    from_ms,
    instants,
    next_run,
    occurrences_between,
    to_ms,
    validate_crontab,
    zone,
)

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
    """The module's own occurrences in (start, end], with a limit no test window reaches."""
    return occurrences_between(timing, start, end, limit=100_000)


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
    again = validate_crontab("H H * * *", "nightly export")
    assert again == first
    first_run = next_run(timing, after)
    # the same wall time every day, whatever the time asked from
    assert next_run(timing, first_run) == first_run + timedelta(days=1)
    assert next_run(timing, first_run - timedelta(hours=5)) == first_run
    other = Timing("crontab", crontab="H H * * *", hash_id="weekly report")
    assert next_run(other, after) != first_run
    assert validate_crontab("0 0 * * MON-FRI", "x") == "0 0 * * MON-FRI"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", " UTC", "utc+2"])
def test_unknown_timezones_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        zone(name)
    assert "timezone" in caught.value.fields


def test_occurrences_between_keeps_the_earliest_up_to_the_limit() -> None:
    timing = Timing("crontab", crontab="*/10 * * * *")
    start = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    every = occurrences_between(timing, start, start + timedelta(hours=1), limit=100)
    assert every == [start + timedelta(minutes=10 * k) for k in range(1, 7)]  # (start, end]
    assert occurrences_between(timing, start, start + timedelta(hours=1), limit=2) == every[:2]
    assert occurrences_between(timing, start, start + timedelta(minutes=9), limit=5) == []


def test_the_next_interval_run_from_between_two_occurrences_is_the_following_one() -> None:
    anchor = datetime(2026, 5, 1, 10, 0, 7, tzinfo=UTC)
    every_90 = Timing("interval", interval_seconds=90, anchor=anchor)
    assert next_run(every_90, anchor + timedelta(seconds=100)) == anchor + timedelta(seconds=180)
    assert next_run(every_90, anchor + timedelta(seconds=179)) == anchor + timedelta(seconds=180)
    assert next_run(every_90, anchor + timedelta(seconds=180)) == anchor + timedelta(seconds=270)
    assert next_run(every_90, anchor - timedelta(days=3)) == anchor
    # without an anchor the interval counts from the time asked
    loose = Timing("interval", interval_seconds=60)
    assert next_run(loose, anchor) == anchor + timedelta(seconds=60)


@pytest.mark.parametrize("seconds", [0, -5, None])
def test_an_interval_must_be_positive(seconds) -> None:
    timing = Timing("interval", interval_seconds=seconds, anchor=datetime(2026, 5, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match=r"^interval must be positive$"):
        next_run(timing, datetime(2026, 5, 2, tzinfo=UTC))


def test_a_one_second_interval_is_allowed() -> None:
    anchor = datetime(2026, 5, 1, tzinfo=UTC)
    every_second = Timing("interval", interval_seconds=1, anchor=anchor)
    assert next_run(every_second, anchor) == anchor + timedelta(seconds=1)


@pytest.mark.parametrize(
    "timing",
    [
        Timing("crontab", crontab="* * * * *"),
        Timing("interval", interval_seconds=60, anchor=datetime(2026, 5, 1, tzinfo=UTC)),
    ],
    ids=["crontab", "interval"],
)
def test_a_start_on_an_occurrence_fires_there_once(timing: Timing) -> None:
    start_at = datetime(2026, 5, 1, 10, 1, tzinfo=UTC)
    bounded = Timing(**{**timing.__dict__, "start_at": start_at})
    got = ours(
        bounded, datetime(2026, 5, 1, 9, tzinfo=UTC), datetime(2026, 5, 1, 10, 3, tzinfo=UTC)
    )
    assert got == [start_at, start_at + MINUTE, start_at + 2 * MINUTE]
    assert next_run(bounded, start_at) == start_at + MINUTE


def test_expiry_on_an_occurrence_still_fires_there() -> None:
    expires_at = datetime(2026, 5, 1, 10, 2, tzinfo=UTC)
    timing = Timing("crontab", crontab="* * * * *", expires_at=expires_at)
    assert next_run(timing, expires_at - MINUTE) == expires_at
    assert next_run(timing, expires_at) is None


def test_a_one_time_entry_fires_only_after_the_time_asked() -> None:
    run_at = datetime(2026, 5, 1, 10, tzinfo=UTC)
    once = Timing("one_time", run_at=run_at)
    assert next_run(once, run_at - timedelta(microseconds=1)) == run_at
    assert next_run(once, run_at) is None
    assert next_run(Timing("one_time"), run_at) is None


@pytest.mark.parametrize(
    ("zone_name", "day", "gap_start", "gap_minutes", "first_valid"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29), (2, 0), 60, datetime(2026, 3, 29, 1, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 3, 8), (2, 0), 60, datetime(2026, 3, 8, 7, tzinfo=UTC)),
        (
            "Australia/Lord_Howe",
            datetime(2026, 10, 4),
            (2, 0),
            30,
            datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
        ),
    ],
)
def test_every_local_time_inside_a_spring_forward_gap_fires_at_the_gaps_end(
    zone_name: str, day: datetime, gap_start: tuple[int, int], gap_minutes: int, first_valid
) -> None:
    tz = zone(zone_name)
    for minute in range(gap_minutes):
        hour, minute_of_hour = divmod(gap_start[0] * 60 + gap_start[1] + minute, 60)
        for second in (0, 17, 59):
            wall = day.replace(hour=hour, minute=minute_of_hour, second=second)
            assert instants(wall, tz, both_folds=False) == [first_valid], wall
        timing = Timing("crontab", crontab=f"{minute_of_hour} {hour} * * *", timezone=zone_name)
        assert next_run(timing, first_valid - timedelta(hours=12)) == first_valid


def test_milliseconds_round_trip() -> None:
    moment = datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert to_ms(moment) == 1_777_629_600_123
    assert from_ms(to_ms(moment)) == moment
    assert from_ms("1777629600123") == moment
    assert from_ms(1_777_629_600_123.9) == moment


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        (
            "0 0 * *",
            "A crontab needs exactly 5 fields: minute hour day-of-month month day-of-week.",
        ),
        ("@yearly * * * *", "A crontab needs exactly 5 fields"),
        (
            "R 0 * * *",
            "Random crontab fields (R) are not allowed: each beat would pick other times.",
        ),
        ("61 * * * *", "'61 * * * *' is not a valid crontab expression (or never matches)."),
        ("  61   *  * * * ", "'61 * * * *' is not a valid crontab expression"),
    ],
)
def test_a_refused_crontab_says_why(expression: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_crontab(expression, "a name")
    assert caught.value.message.startswith(says)
    assert caught.value.fields == {"crontab": [caught.value.message]}


def test_an_unknown_timezone_is_named_in_the_refusal() -> None:
    with pytest.raises(InvalidInput) as caught:
        zone("Mars/Olympus")
    expected = "Unknown timezone 'Mars/Olympus': use an IANA name such as Europe/Berlin."
    assert caught.value.message == expected
    assert caught.value.fields == {"timezone": [expected]}


def test_a_utc_crontab_ignores_the_hosts_own_dst_gap() -> None:
    """Under America/St_Johns, 02:30 local does not exist on 2026-03-08; in UTC it does."""
    timing = Timing("crontab", crontab="30 2 * * *", timezone="UTC")
    after = datetime(2026, 3, 8, tzinfo=UTC)
    assert next_run(timing, after) == datetime(2026, 3, 8, 2, 30, tzinfo=UTC)
    berlin = Timing("crontab", crontab="30 2 * * *", timezone="Europe/Berlin")
    assert next_run(berlin, after) == datetime(2026, 3, 8, 1, 30, tzinfo=UTC)


def test_no_interval_occurrence_before_start_at_even_by_a_microsecond() -> None:
    start_at = datetime(2026, 5, 1, 10, tzinfo=UTC)
    just_before = Timing(
        "interval",
        interval_seconds=60,
        anchor=start_at - timedelta(microseconds=1),
        start_at=start_at,
    )
    first = next_run(just_before, start_at - timedelta(hours=1))
    assert first == start_at + timedelta(seconds=60, microseconds=-1)
