"""The pure folding rules: duplicates are harmless, order does not matter, nothing regresses."""

from __future__ import annotations

import itertools

import pytest

from app.tracking import events as ev

T0 = 1_780_000_000.0


def event(kind: str, attempt: int = 0, dt: float = 0.0, **fields) -> dict:
    return {"kind": kind, "task_id": "t", "ts": T0 + dt, "attempt": attempt, "fields": fields}


def fold(events: list[dict]) -> dict:
    return ev.fold(ev.new_row("t", T0), events)


def test_happy_path() -> None:
    row = fold(
        [
            event(ev.PUBLISHED, task_name="a.b", queue="default", args=[1], kwargs={}),
            event(ev.STARTED, dt=1, worker="w1"),
            event(ev.SUCCEEDED, dt=3, result={"n": 1}, cpu_seconds=0.5),
        ]
    )
    assert row["status"] == "success"
    assert row["task_name"] == "a.b" and row["worker"] == "w1" and row["result"] == {"n": 1}
    assert (row["completed_at"] - row["started_at"]).total_seconds() == 2
    assert row["cpu_seconds"] == 0.5


def test_every_arrival_order_gives_the_same_row() -> None:
    story = [
        event(ev.PUBLISHED, task_name="a.b"),
        event(ev.STARTED, dt=1, worker="w1"),
        event(ev.RETRIED, dt=2, error_message="ConnectionError: down"),
        event(ev.PUBLISHED, attempt=1, dt=2.1, eta="2030-01-01T00:00:00+00:00"),
        event(ev.STARTED, attempt=1, dt=5, worker="w2"),
        event(ev.FAILED, attempt=1, dt=6, error_message="ValueError: bad", is_dead_letter=True),
    ]
    results = set()
    for order in itertools.permutations(story):
        row = fold(list(order))
        results.add(
            (
                row["status"],
                row["retry_count"],
                row["worker"],
                row["error_message"],
                row["is_dead_letter"],
            )
        )
    assert results == {("failure", 1, "w2", "ValueError: bad", True)}


def test_events_split_over_batches_in_any_order() -> None:
    story = [
        event(ev.PUBLISHED, task_name="x"),
        event(ev.STARTED, dt=1, worker="w"),
        event(ev.SUCCEEDED, dt=2, result=5),
    ]
    for order in itertools.permutations(story):
        row = ev.new_row("t", T0)
        for single in order:
            row = ev.fold(row, [single])
        assert row["status"] == "success" and row["result"] == 5 and row["task_name"] == "x"


def test_duplicates_are_idempotent() -> None:
    story = [event(ev.PUBLISHED, task_name="x"), event(ev.STARTED, dt=1), event(ev.SUCCEEDED, dt=2)]
    once = fold(story)
    assert fold(story + story) == once
    assert ev.fold(once, story) == once


def test_late_pending_never_overwrites_started() -> None:
    row = fold([event(ev.STARTED, dt=1)])
    row = ev.fold(row, [event(ev.PUBLISHED, dt=0, task_name="x")])
    assert row["status"] == "started" and row["task_name"] == "x"


@pytest.mark.parametrize("final", [ev.SUCCEEDED, ev.FAILED, ev.REVOKED])
def test_late_started_never_overwrites_a_final_status_of_the_same_attempt(final: str) -> None:
    row = fold([event(final, dt=2, error_message="e")])
    row = ev.fold(row, [event(ev.STARTED, dt=1)])
    assert row["status"] == ev.STATUSES[final]


def test_redelivered_attempt_restarts_on_the_new_worker() -> None:
    row = fold([event(ev.STARTED, dt=1, worker="dead")])
    row = ev.fold(row, [event(ev.STARTED, dt=50, worker="alive")])
    assert row["worker"] == "alive"
    row = ev.fold(row, [event(ev.SUCCEEDED, dt=51)])
    assert row["status"] == "success"


def test_retry_republish_keeps_retry_status_and_sets_eta() -> None:
    row = fold(
        [
            event(ev.STARTED, dt=1),
            event(ev.RETRIED, dt=2, error_message="boom"),
            event(ev.PUBLISHED, attempt=1, dt=2.01, eta="2030-01-01T00:00:10+00:00"),
        ]
    )
    assert row["status"] == "retry" and row["retry_count"] == 1
    assert row["eta"].isoformat() == "2030-01-01T00:00:10+00:00"
    assert row["completed_at"] is None


def test_revoke_beats_failure_of_the_same_attempt() -> None:
    row = fold([event(ev.STARTED, dt=1), event(ev.REVOKED, dt=2), event(ev.FAILED, dt=3)])
    assert row["status"] == "revoked"


def test_revoked_before_start_has_no_start() -> None:
    row = fold([event(ev.PUBLISHED), event(ev.REVOKED, dt=1, error_message="revoked")])
    assert row["status"] == "revoked" and row["started_at"] is None and row["completed_at"]


def test_failure_always_has_an_error_message() -> None:
    assert fold([event(ev.FAILED, dt=1)])["error_message"] == ev.UNKNOWN_ERROR


def test_completion_never_before_start_even_with_skewed_clocks() -> None:
    row = fold([event(ev.STARTED, dt=5), event(ev.SUCCEEDED, attempt=0, dt=4)])
    # the success is from the same attempt and later in phase, so it applies despite the clock
    assert row["status"] == "success"
    assert row["completed_at"] >= row["started_at"]


def test_created_at_is_the_publish_time() -> None:
    row = ev.fold(ev.new_row("t", T0 + 10), [event(ev.STARTED, dt=10), event(ev.PUBLISHED, dt=0)])
    assert row["created_at"].timestamp() == T0


def test_note_sets_links_without_moving_status() -> None:
    row = fold([event(ev.STARTED, dt=1), event(ev.NOTE, dt=2, source_id=3, task_type="retrieval")])
    assert row["status"] == "started" and row["source_id"] == 3 and row["task_type"] == "retrieval"


def test_start_time_is_kept_when_the_final_event_came_first() -> None:
    row = fold([event(ev.SUCCEEDED, dt=2)])
    row = ev.fold(row, [event(ev.STARTED, dt=1, worker="w")])
    assert row["status"] == "success" and row["started_at"].timestamp() == T0 + 1
    assert row["worker"] == "w"


def test_attempt_timeline_in_any_order() -> None:
    story = [
        {**event(ev.STARTED, dt=1, worker="w1"), "run_id": "r0"},
        {**event(ev.RETRIED, dt=2, error_message="E", retry_delay_seconds=4), "run_id": "r0"},
        {**event(ev.STARTED, attempt=1, dt=6, worker="w2"), "run_id": "r1"},
        {**event(ev.SUCCEEDED, attempt=1, dt=7, cpu_seconds=0.1), "run_id": "r1"},
    ]
    for order in itertools.permutations(story):
        runs = fold(list(order))["attempts"]
        assert [(r["attempt"], r["status"], r["worker"]) for r in runs] == [
            (0, "retry", "w1"),
            (1, "success", "w2"),
        ]
        assert runs[0]["retry_delay_seconds"] == 4 and runs[1]["cpu_seconds"] == 0.1


def test_revoke_from_the_main_process_closes_the_open_run() -> None:
    runs = fold([{**event(ev.STARTED, dt=1), "run_id": "r0"}, event(ev.REVOKED, dt=2)])["attempts"]
    assert runs[0]["status"] == "revoked" and runs[0]["completed_at"]
