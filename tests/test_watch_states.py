"""The watch's rules, pure: no database, no clock (app.watch.states)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.scheduler.timing import Timing
from app.watch.states import Assessment, Facts, LatestSend, WatchState, assess, default_grace

T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
DAILY_6 = Timing(kind="crontab", crontab="0 6 * * *", timezone="UTC")
BERLIN_0230 = Timing(kind="crontab", crontab="30 2 * * *", timezone="Europe/Berlin")


def facts(timing=DAILY_6, last=None, send=None, enabled=True, grace=None, maximum=None, since=None):
    return Facts(
        enabled=enabled,
        timing=timing,
        scheduled_from=since or datetime(2026, 1, 1, tzinfo=UTC),
        grace_seconds=grace,
        max_duration_seconds=maximum,
        last_occurrence=last,
        latest_send=send,
    )


def sent(occurrence, status="success", started=True, finished=True, error=None, send_error=None):
    return LatestSend(
        occurrence=occurrence,
        sent_at=occurrence + timedelta(seconds=1),
        send_error=send_error,
        status=status,
        started_at=occurrence + timedelta(seconds=2) if started else None,
        finished_at=occurrence + timedelta(seconds=30) if finished else None,
        error_message=error,
        task_id="t-1",
    )


def test_default_grace_is_a_tenth_of_the_period_between_one_and_thirty_minutes():
    every = lambda seconds: Timing(kind="interval", interval_seconds=seconds, anchor=T0)  # noqa: E731
    assert default_grace(every(2), T0) == timedelta(minutes=1)
    assert default_grace(every(3600), T0) == timedelta(minutes=6)
    assert default_grace(DAILY_6, T0) == timedelta(minutes=30)
    assert default_grace(Timing(kind="one_time", run_at=T0), T0) == timedelta(minutes=10)


def test_on_time_when_the_due_occurrence_was_sent():
    found = assess(facts(last=T0, send=sent(T0)), T0 + timedelta(hours=3))
    assert found.state == WatchState.ON_TIME
    assert found.expected == T0 + timedelta(days=1)


def test_late_when_nothing_was_sent_past_the_grace():
    yesterday = T0 - timedelta(days=1)
    history = {"last": yesterday, "send": sent(yesterday)}
    assert assess(facts(**history), T0 + timedelta(minutes=29)).state == WatchState.ON_TIME
    found = assess(facts(**history), T0 + timedelta(minutes=42))
    assert (found.state, found.cause, found.occurrence) == (WatchState.LATE, "not_sent", T0)
    assert found.overdue_seconds == 42 * 60
    # An explicit grace wins over the derived one.
    assert assess(facts(**history, grace=60), T0 + timedelta(minutes=2)).state == WatchState.LATE


def test_late_when_sent_but_never_started():
    found = assess(
        facts(last=T0, send=sent(T0, status="pending", started=False, finished=False)),
        T0 + timedelta(minutes=45),
    )
    assert (found.state, found.cause) == (WatchState.LATE, "not_started")


def test_overrunning_only_past_the_maximum_duration():
    running = sent(T0, status="running", finished=False)
    assert assess(facts(last=T0, send=running), T0 + timedelta(hours=5)).state == WatchState.ON_TIME
    found = assess(facts(last=T0, send=running, maximum=3600), T0 + timedelta(hours=2))
    assert found.state == WatchState.OVERRUNNING
    assert found.overdue_seconds == pytest.approx(3600 - 2, abs=1)


def test_failing_when_the_latest_run_failed_or_could_not_be_sent():
    failed = sent(T0, status="failure", error="ConnectionError: idmc")
    assert assess(facts(last=T0, send=failed), T0 + timedelta(hours=1)).state == WatchState.FAILING
    unsent = sent(T0, status=None, started=False, send_error="OperationalError: broker")
    assert assess(facts(last=T0, send=unsent), T0 + timedelta(hours=1)).state == WatchState.FAILING


def test_late_beats_failing_and_a_new_success_ends_failing():
    yesterday = T0 - timedelta(days=1)
    failed = sent(yesterday, status="failure")
    assert assess(facts(last=yesterday, send=failed), T0 + timedelta(hours=1)).state == "late"
    assert assess(facts(last=T0, send=sent(T0)), T0 + timedelta(hours=1)).state == "on_time"


def test_disabled_paused_and_never_run():
    assert assess(facts(enabled=False), T0).state == WatchState.DISABLED
    expired = Timing(kind="crontab", crontab="0 6 * * *", expires_at=T0 - timedelta(days=3))
    assert assess(facts(timing=expired, last=T0 - timedelta(days=3)), T0).state == "paused"
    created = T0 - timedelta(hours=1)
    assert assess(facts(since=created), T0 - timedelta(minutes=5)).state == "never_run"
    # A new schedule whose first occurrence went by unsent is late, not "never run".
    assert assess(facts(since=created), T0 + timedelta(hours=1)).state == WatchState.LATE


def test_a_missed_occurrence_counts_as_handled():
    """The skip policy recorded it as missed: the operator chose not to run it."""
    yesterday = T0 - timedelta(days=1)
    found = assess(facts(last=T0, send=sent(yesterday)), T0 + timedelta(hours=2))
    assert found.state == WatchState.ON_TIME


def test_spring_forward_day_is_not_late():
    """02:30 does not exist in Berlin on 2026-03-29: it fires at 03:00 CEST (01:00 UTC)."""
    before = datetime(2026, 3, 28, 1, 30, tzinfo=UTC)  # 02:30 CET the day before
    gap_end = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    history = facts(timing=BERLIN_0230, last=before, send=sent(before))
    found = assess(history, datetime(2026, 3, 29, 1, 20, tzinfo=UTC))
    assert (found.state, found.expected) == (WatchState.ON_TIME, gap_end)
    fired = facts(timing=BERLIN_0230, last=gap_end, send=sent(gap_end))
    assert assess(fired, datetime(2026, 3, 29, 2, 0, tzinfo=UTC)).state == WatchState.ON_TIME
    late = assess(history, datetime(2026, 3, 29, 1, 31, tzinfo=UTC))
    assert (late.state, late.occurrence) == (WatchState.LATE, gap_end)


def test_fall_back_day_expects_one_run_only():
    """02:30 happens twice in Berlin on 2026-10-25: it fires at the first (00:30 UTC) only."""
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    history = facts(timing=BERLIN_0230, last=first, send=sent(first))
    found = assess(history, datetime(2026, 10, 25, 2, 15, tzinfo=UTC))  # after the second 02:30
    assert found.state == WatchState.ON_TIME
    assert found.expected == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_alert_key_names_state_and_occurrence():
    yesterday = T0 - timedelta(days=1)
    found = assess(facts(last=yesterday, send=sent(yesterday)), T0 + timedelta(hours=1))
    assert found.alert_key == f"late:{int(T0.timestamp() * 1000)}"
    assert assess(facts(last=T0, send=sent(T0)), T0).alert_key is None


def test_late_only_once_past_the_due_time_plus_grace():
    yesterday = T0 - timedelta(days=1)
    history = facts(last=yesterday, send=sent(yesterday), grace=120)
    assert assess(history, T0 + timedelta(seconds=120)).state == WatchState.ON_TIME
    found = assess(history, T0 + timedelta(seconds=121))
    assert (found.state, found.overdue_seconds, found.grace) == (
        WatchState.LATE,
        121,
        timedelta(seconds=120),
    )
    assert found.expected == T0 and found.latest_send == sent(yesterday)


def test_a_send_not_started_is_late_counted_from_when_it_was_sent():
    waiting = sent(T0, status="pending", started=False, finished=False)  # sent at T0 + 1 s
    history = facts(last=T0, send=waiting, grace=60)
    assert assess(history, T0 + timedelta(seconds=61)).state == WatchState.ON_TIME
    found = assess(history, T0 + timedelta(seconds=62))
    assert (found.state, found.cause, found.occurrence) == (WatchState.LATE, "not_started", T0)
    assert found.overdue_seconds == 61
    # never marked as sent: counted from its occurrence
    unsent = LatestSend(T0, None, None, None, None, None)
    found = assess(facts(last=T0, send=unsent, grace=60), T0 + timedelta(seconds=61))
    assert (found.state, found.overdue_seconds) == (WatchState.LATE, 61)


def test_overrunning_is_counted_from_the_start_past_the_maximum():
    running = sent(T0, status="started", finished=False)  # started at T0 + 2 s
    history = facts(last=T0, send=running, maximum=600)
    assert assess(history, T0 + timedelta(seconds=602)).state == WatchState.ON_TIME
    found = assess(history, T0 + timedelta(seconds=610))
    assert (found.state, found.occurrence, found.overdue_seconds) == (
        WatchState.OVERRUNNING,
        T0,
        8,
    )
    assert found.alert_key == f"overrunning:{int(T0.timestamp() * 1000)}"
    finished = sent(T0, status="success")
    assert assess(facts(last=T0, send=finished, maximum=600), T0 + timedelta(hours=2)).state == (
        WatchState.ON_TIME
    )


def test_a_finished_run_is_started_even_without_a_start_time():
    for status in ("success", "failure", "revoked", "missed"):
        ended = sent(T0, status=status, started=False)
        assert ended.started and not ended.running, status
    assert sent(T0, status=None, started=False).outcome == "sent"
    assert sent(T0, status="success", send_error="broker down").outcome == "error"
    assert not sent(T0, status="pending", started=False).started


def test_a_revoked_latest_run_is_not_failing():
    revoked = sent(T0, status="revoked")
    assert assess(facts(last=T0, send=revoked), T0 + timedelta(hours=1)).state == "on_time"


def test_an_expired_schedule_still_running_its_last_run_is_on_time_not_paused():
    expired = Timing(kind="crontab", crontab="0 6 * * *", expires_at=T0 + timedelta(minutes=1))
    running = sent(T0, status="started", finished=False)
    found = assess(facts(timing=expired, last=T0, send=running), T0 + timedelta(hours=1))
    assert (found.state, found.expected) == (WatchState.ON_TIME, None)
    done = sent(T0)
    found = assess(facts(timing=expired, last=T0, send=done), T0 + timedelta(hours=1))
    assert (found.state, found.alert_key) == (WatchState.PAUSED, None)


def test_a_retimed_schedule_expects_its_first_occurrence_after_the_change():
    yesterday = T0 - timedelta(days=1)
    retimed = T0 + timedelta(hours=1)  # after today's 06:00 went by unsent
    found = assess(
        facts(last=yesterday, send=sent(yesterday), since=retimed), T0 + timedelta(hours=2)
    )
    assert (found.state, found.expected) == (WatchState.ON_TIME, T0 + timedelta(days=1))


def test_the_default_grace_of_a_crontab_is_taken_at_its_expected_occurrence():
    hourly_by_day = Timing(kind="crontab", crontab="0 6,7 * * *", timezone="UTC")
    # after 06:00 the next is 07:00 (1 h: 6 min grace), after 07:00 it is 06:00 (23 h: 30 min)
    assert default_grace(hourly_by_day, T0) == timedelta(minutes=6)
    assert default_grace(hourly_by_day, T0 + timedelta(hours=1)) == timedelta(minutes=30)
    assert default_grace(hourly_by_day, None) == timedelta(minutes=10)
    ended = Timing(kind="crontab", crontab="0 6 * * *", expires_at=T0)
    assert default_grace(ended, T0) == timedelta(minutes=10)
    assert default_grace(Timing(kind="interval", interval_seconds=None), T0) == timedelta(
        minutes=10
    )
    yesterday = T0 - timedelta(days=1)
    found = assess(
        facts(timing=hourly_by_day, last=yesterday + timedelta(hours=1), send=sent(yesterday)),
        T0,
    )
    assert (found.expected, found.grace) == (T0, timedelta(minutes=6))


def test_only_alerting_states_with_an_occurrence_have_an_alert_key():
    failed = sent(T0, status="failure")
    found = assess(facts(last=T0, send=failed), T0 + timedelta(hours=1))
    assert found.alert_key == f"failing:{int(T0.timestamp() * 1000)}"
    assert assess(facts(enabled=False), T0).alert_key is None
    assert default_grace(DAILY_6, T0) == timedelta(minutes=30)
    assert assess(facts(since=T0 - timedelta(hours=1)), T0 - timedelta(minutes=5)).alert_key is None


def test_on_time_is_about_the_latest_sent_occurrence():
    found = assess(facts(last=T0, send=sent(T0)), T0 + timedelta(hours=3))
    assert (found.state, found.occurrence, found.latest_send) == (WatchState.ON_TIME, T0, sent(T0))


def test_a_disabled_schedule_keeps_showing_its_latest_send_and_waits_for_nothing():
    found = assess(facts(enabled=False, last=T0, send=sent(T0)), T0 + timedelta(days=3))
    assert found == Assessment(WatchState.DISABLED, timedelta(0), latest_send=sent(T0))
    assert (found.expected, found.occurrence, found.alert_key) == (None, None, None)


def test_an_occurrence_held_back_by_the_overlap_policy_is_not_late():
    yesterday = T0 - timedelta(days=1)
    still_running = sent(yesterday, status="started", finished=False)
    later = T0 + timedelta(hours=1)
    for policy in ("skip", "queue_one"):
        held = replace(facts(last=yesterday, send=still_running), overlap=policy)
        assert assess(held, later).state != WatchState.LATE, policy
    allowed = facts(last=yesterday, send=still_running)
    assert assess(allowed, later).state == WatchState.LATE  # allow sends it: it is late
    finished = replace(facts(last=yesterday, send=sent(yesterday)), overlap="skip")
    assert assess(finished, later).state == WatchState.LATE  # nothing runs: nothing holds it
    never_started = sent(yesterday, status="pending", started=False, finished=False)
    waiting = replace(facts(last=yesterday, send=never_started), overlap="skip")
    assert assess(waiting, later).state == WatchState.LATE
    nothing_sent = replace(facts(), overlap="skip")
    assert assess(nothing_sent, later).state == WatchState.LATE
