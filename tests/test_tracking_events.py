"""The pure folding rules: duplicates are harmless, order does not matter, nothing regresses."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from app.tracking import events as ev
from app.tracking.bounds import MAX_ATTEMPT

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


def at(dt: float) -> datetime:
    return datetime.fromtimestamp(T0 + dt, UTC)


def run_event(kind: str, run_id: str, attempt: int = 0, dt: float = 0.0, **fields) -> dict:
    return {**event(kind, attempt=attempt, dt=dt, **fields), "run_id": run_id}


def test_a_new_row_is_pending_with_nothing_happened_yet() -> None:
    assert ev.new_row("t", T0) == {
        "task_id": "t",
        "status": "pending",
        "created_at": at(0),
        "updated_at": at(0),
        "retry_count": 0,
        "is_dead_letter": False,
        "lost_suspect": False,
        "replayable": True,
        "state_rank": -1,
        "state_at": 0.0,
        "started_at": None,
        "completed_at": None,
    }


def test_times_are_aware_utc_datetimes() -> None:
    row = fold([event(ev.STARTED, dt=1), event(ev.SUCCEEDED, dt=2)])
    assert row["started_at"] == at(1) and row["started_at"].tzinfo is UTC
    assert row["completed_at"] == at(2) and row["updated_at"] == at(2)


def test_folding_never_changes_the_callers_row() -> None:
    row = fold([run_event(ev.STARTED, "r0", dt=1, worker="w")])
    before = {**row, "attempts": [dict(run) for run in row["attempts"]]}
    ev.fold(row, [run_event(ev.SUCCEEDED, "r0", dt=2, result=1)])
    assert row == before


def test_the_attempt_timeline_survives_folding_batch_by_batch() -> None:
    story = [
        run_event(ev.STARTED, "r0", dt=1, worker="w1"),
        run_event(ev.RETRIED, "r0", dt=2, error_message="E"),
        run_event(ev.STARTED, "r1", attempt=1, dt=6, worker="w2"),
        run_event(ev.SUCCEEDED, "r1", attempt=1, dt=7),
    ]
    row = ev.new_row("t", T0)
    for single in story:
        row = ev.fold(row, [single])
    assert row["attempts"] == fold(story)["attempts"]
    assert [(r["run_id"], r["status"]) for r in row["attempts"]] == [
        ("r0", "retry"),
        ("r1", "success"),
    ]


def test_a_run_entry_records_its_start_worker_and_end() -> None:
    open_run = fold([run_event(ev.STARTED, "r0", dt=1, worker="w")])["attempts"]
    assert open_run == [
        {
            "run_id": "r0",
            "attempt": 0,
            "status": "started",
            "worker": "w",
            "started_at": at(1).isoformat(),
            "completed_at": None,
        }
    ]
    ended_first = fold([run_event(ev.FAILED, "r0", dt=3, error_message="E")])["attempts"]
    assert ended_first == [
        {
            "run_id": "r0",
            "attempt": 0,
            "status": "failure",
            "worker": None,
            "started_at": None,
            "completed_at": at(3).isoformat(),
            "error_message": "E",
        }
    ]


def test_runs_of_one_attempt_are_listed_by_start_time_whatever_the_arrival_order() -> None:
    # a redelivered attempt: the first run never ended, the second one ended first
    later, earlier = run_event(ev.STARTED, "r1", dt=50), run_event(ev.STARTED, "r0", dt=1)
    row = ev.fold(ev.fold(ev.new_row("t", T0), [later]), [earlier])
    assert [r["run_id"] for r in row["attempts"]] == ["r0", "r1"]
    # a run seen only by its end sorts by that end
    row = ev.fold(row, [run_event(ev.SUCCEEDED, "r2", dt=60)])
    assert [r["run_id"] for r in row["attempts"]] == ["r0", "r1", "r2"]


def test_events_without_a_run_id_add_no_run_to_the_timeline() -> None:
    assert fold([event(ev.STARTED, dt=1), event(ev.SUCCEEDED, dt=2)])["attempts"] == []


def test_a_late_publish_leaves_the_open_run_open() -> None:
    row = fold([run_event(ev.STARTED, "r0", dt=1)])
    row = ev.fold(row, [event(ev.PUBLISHED, dt=0)])
    assert row["attempts"][0]["status"] == "started"
    assert row["attempts"][0]["completed_at"] is None


def test_a_revoke_without_run_id_closes_only_the_open_runs_of_its_attempt() -> None:
    row = fold(
        [
            run_event(ev.STARTED, "lost", dt=1),
            run_event(ev.FAILED, "lost", dt=2, error_message="WorkerLostError"),
            run_event(ev.STARTED, "again", dt=3),
            run_event(ev.STARTED, "next", attempt=1, dt=4),
        ]
    )
    row = ev.fold(row, [event(ev.REVOKED, dt=5, error_message="revoked by operator")])
    runs = {r["run_id"]: r for r in row["attempts"]}
    assert runs["lost"]["status"] == "failure"
    assert runs["lost"]["error_message"] == "WorkerLostError"
    assert runs["again"]["status"] == "revoked"
    assert runs["again"]["error_message"] == "revoked by operator"
    assert runs["again"]["completed_at"] == at(5).isoformat()
    assert runs["next"]["status"] == "started" and runs["next"]["completed_at"] is None


def test_an_older_start_of_the_same_attempt_arriving_later_does_not_move_the_row() -> None:
    row = fold([event(ev.STARTED, dt=50, worker="alive")])
    row = ev.fold(row, [event(ev.STARTED, dt=1, worker="dead")])
    assert row["worker"] == "alive" and row["started_at"] == at(50)


def test_a_duplicate_start_after_a_note_keeps_the_noted_result() -> None:
    row = fold([event(ev.STARTED, dt=1)])
    row = ev.fold(row, [event(ev.NOTE, dt=2, result={"rows": 3})])
    row = ev.fold(row, [event(ev.STARTED, dt=1)])
    assert row["result"] == {"rows": 3}


def test_a_note_sets_the_result_and_links_but_never_the_status_or_outcome() -> None:
    row = fold([event(ev.STARTED, dt=1, worker="w")])
    row = ev.fold(
        row,
        [event(ev.NOTE, dt=2, result=7, source_id=3, status="success", worker="x", logs="l")],
    )
    assert row["result"] == 7 and row["source_id"] == 3
    assert row["status"] == "started" and row["worker"] == "w" and "logs" not in row


def test_an_intermediate_noted_result_never_replaces_the_final_one_of_the_same_batch() -> None:
    row = fold(
        [
            event(ev.STARTED, dt=1),
            event(ev.SUCCEEDED, dt=3, result=5),
            event(ev.NOTE, dt=2, result=1),
        ]
    )
    assert row["result"] == 5


def test_descriptive_fields_come_from_the_first_event_that_carries_them() -> None:
    row = fold([event(ev.PUBLISHED, task_name="a"), event(ev.STARTED, dt=1, task_name="b")])
    assert row["task_name"] == "a"


def test_an_event_that_saw_cut_arguments_makes_the_row_not_replayable_for_good() -> None:
    assert fold([event(ev.PUBLISHED), event(ev.STARTED, dt=1)])["replayable"] is True
    row = fold([event(ev.PUBLISHED, replayable=False)])
    row = ev.fold(row, [event(ev.STARTED, dt=1, replayable=True)])
    assert row["replayable"] is False


def test_a_schedule_occurrence_given_as_text_becomes_an_aware_datetime() -> None:
    row = fold([event(ev.PUBLISHED, schedule_occurrence="2026-06-01T06:00:00")])
    assert row["schedule_occurrence"] == datetime(2026, 6, 1, 6, tzinfo=UTC)
    row = fold([event(ev.PUBLISHED, schedule_occurrence="2026-06-01T06:00:00+02:00")])
    assert row["schedule_occurrence"] == datetime(2026, 6, 1, 4, tzinfo=UTC)
    assert (
        fold([event(ev.PUBLISHED, schedule_occurrence="nonsense")])["schedule_occurrence"] is None
    )


def test_created_at_moves_only_to_an_earlier_publish() -> None:
    skewed_worker = ev.fold(ev.new_row("t", T0), [event(ev.STARTED, dt=-5)])
    assert skewed_worker["created_at"] == at(0)
    republished = ev.fold(ev.new_row("t", T0), [event(ev.PUBLISHED, attempt=1, dt=5)])
    assert republished["created_at"] == at(0)


def test_updated_at_never_goes_back() -> None:
    row = fold([event(ev.STARTED, dt=5), event(ev.SUCCEEDED, dt=4)])
    assert row["updated_at"] == at(5)


def test_a_task_published_with_a_countdown_shows_its_eta_while_pending() -> None:
    row = fold([event(ev.PUBLISHED, eta="2030-01-01T00:00:00+00:00")])
    assert row["status"] == "pending"
    assert row["eta"] == datetime(2030, 1, 1, tzinfo=UTC)


def test_a_retry_event_sets_the_next_attempts_eta_and_reopens_the_task() -> None:
    row = fold([event(ev.FAILED, dt=2, error_message="lost")])
    row = ev.fold(row, [event(ev.RETRIED, attempt=1, dt=5, eta="2030-01-01T00:00:00+00:00")])
    assert row["status"] == "retry" and row["retry_count"] == 2
    assert row["eta"] == datetime(2030, 1, 1, tzinfo=UTC) and row["completed_at"] is None


def test_a_new_start_begins_with_a_clean_outcome() -> None:
    row = fold([event(ev.STARTED, dt=1), event(ev.RETRIED, dt=2, error_message="boom")])
    row.update(result={"partial": 1}, traceback="tb", is_dead_letter=True, lost_suspect=True)
    row["eta"] = datetime(2030, 1, 1, tzinfo=UTC)
    row = ev.fold(row, [event(ev.STARTED, attempt=1, dt=6)])
    assert row["status"] == "started" and row["retry_count"] == 1
    assert row["error_message"] is None and row["traceback"] is None and row["result"] is None
    assert row["eta"] is None and row["completed_at"] is None
    assert row["is_dead_letter"] is False and row["lost_suspect"] is False


def test_a_retrys_error_is_cleared_when_the_next_attempt_succeeds() -> None:
    row = fold(
        [
            event(ev.STARTED, dt=1),
            event(ev.RETRIED, dt=2, error_message="boom", traceback="tb"),
            event(ev.STARTED, attempt=1, dt=6),
            event(ev.SUCCEEDED, attempt=1, dt=7, result=1),
        ]
    )
    assert row["status"] == "success" and row["error_message"] is None
    assert row["traceback"] is None


def test_revoking_a_task_waiting_for_its_retry_keeps_its_retry_count_and_drops_the_eta() -> None:
    row = fold(
        [
            event(ev.STARTED, dt=1),
            event(ev.RETRIED, dt=2, eta="2030-01-01T00:00:00+00:00"),
            event(ev.REVOKED, dt=3),
        ]
    )
    assert row["status"] == "revoked" and row["retry_count"] == 1
    assert row["eta"] is None and row["completed_at"] == at(3)


def test_a_final_event_of_a_later_attempt_counts_its_retries() -> None:
    assert fold([event(ev.FAILED, attempt=2, dt=9)])["retry_count"] == 2


def test_a_task_flagged_lost_that_reports_its_end_is_no_longer_lost() -> None:
    for final in sorted(ev.FINAL_KINDS):
        row = fold([event(ev.STARTED, dt=1)])
        row["lost_suspect"] = True
        row = ev.fold(row, [event(final, dt=2)])
        assert row["lost_suspect"] is False and row["status"] == ev.STATUSES[final]


def test_a_success_has_no_error_message() -> None:
    row = fold([event(ev.STARTED, dt=1), event(ev.SUCCEEDED, dt=2)])
    assert row.get("error_message") is None


def test_a_stored_failure_without_an_error_message_gets_one_on_the_next_fold() -> None:
    row = {**ev.new_row("t", T0), "status": "failure", "state_rank": 2, "state_at": T0 + 1}
    row = ev.fold(row, [event(ev.NOTE, dt=2, source_id=1)])
    assert row["error_message"] == ev.UNKNOWN_ERROR


def test_the_start_of_a_retry_is_kept_when_its_final_event_came_first() -> None:
    row = fold([event(ev.SUCCEEDED, attempt=1, dt=9, worker="w2")])
    row = ev.fold(row, [event(ev.STARTED, attempt=1, dt=8, worker="w1")])
    assert row["started_at"] == at(8) and row["worker"] == "w2"
    # a start of an earlier attempt is not this attempt's start
    row = fold([event(ev.SUCCEEDED, attempt=1, dt=9)])
    assert ev.fold(row, [event(ev.STARTED, dt=1)])["started_at"] is None


def test_final_kinds_are_success_failure_and_revoke() -> None:
    assert {ev.STATUSES[kind] for kind in ev.FINAL_KINDS} == {"success", "failure", "revoked"}


def test_the_largest_allowed_attempt_fits_the_state_rank_column() -> None:
    top = max(ev.PHASES.values())
    assert ev.rank_of((MAX_ATTEMPT, top, 0.0)) < 2**31 - 1
    # ranks order attempts first, then phases
    ranks = [ev.rank_of((attempt, phase, 0.0)) for attempt in range(3) for phase in range(top + 1)]
    assert ranks == sorted(set(ranks))


def test_no_timestamp_is_no_time() -> None:
    assert ev.to_datetime(None) is None
    assert ev.to_datetime(T0) == at(0)


def test_an_event_that_saw_whole_arguments_leaves_the_row_replayable() -> None:
    assert fold([event(ev.PUBLISHED, replayable=True)])["replayable"] is True


def test_a_new_attempt_after_a_failure_is_no_longer_complete() -> None:
    row = fold([event(ev.FAILED, dt=2, error_message="WorkerLostError")])
    row = ev.fold(row, [event(ev.STARTED, attempt=1, dt=6)])
    assert row["status"] == "started" and row["completed_at"] is None
    assert row["error_message"] is None and row["retry_count"] == 1


def test_a_start_of_a_later_attempt_counts_its_retries() -> None:
    assert fold([event(ev.STARTED, attempt=2, dt=9)])["retry_count"] == 2


# --- live log lines of a running attempt ---------------------------------------------------


def lines(*texts: str, dt: float = 1.0) -> list[dict]:
    return [{"time": T0 + dt + n, "level": "INFO", "logger": "t", "message": m}
            for n, m in enumerate(texts)]  # fmt: skip


def test_live_lines_show_while_the_attempt_runs_and_never_change_its_status() -> None:
    row = fold([event(ev.STARTED, dt=1), event(ev.LOGS, dt=2, logs=lines("one"))])
    assert row["status"] == "started" and [r["message"] for r in row["logs"]] == ["one"]
    newer = ev.fold(row, [event(ev.LOGS, dt=3, logs=lines("one", "two"))])
    assert [r["message"] for r in newer["logs"]] == ["one", "two"]
    older = ev.fold(newer, [event(ev.LOGS, dt=2, logs=lines("one"))])  # a late, shorter copy
    assert [r["message"] for r in older["logs"]] == ["one", "two"]


def test_the_final_capture_wins_whatever_the_arrival_order() -> None:
    story = [
        event(ev.PUBLISHED, task_name="a.b"),
        event(ev.STARTED, dt=1),
        event(ev.LOGS, dt=2, logs=lines("one")),
        event(ev.LOGS, dt=3, logs=lines("one", "two")),
        event(ev.SUCCEEDED, dt=4, logs=lines("one", "two", "three")),
    ]
    for order in itertools.permutations(story):
        row = fold(list(order))
        assert row["status"] == "success"
        assert [r["message"] for r in row["logs"]] == ["one", "two", "three"], order
    for cut in range(1, len(story)):  # split over two batches
        row = ev.fold(fold(story[cut:]), story[:cut])
        assert [r["message"] for r in row["logs"]] == ["one", "two", "three"]


def test_live_lines_of_another_attempt_or_of_a_waiting_execution_are_ignored() -> None:
    failed = [event(ev.STARTED, dt=1), event(ev.RETRIED, dt=2, logs=lines("first try"))]
    row = fold([*failed, event(ev.LOGS, dt=1.5, logs=lines("late line of try 0"))])
    assert row["status"] == "retry" and [r["message"] for r in row["logs"]] == ["first try"]
    late = event(ev.LOGS, attempt=0, dt=6, logs=lines("late line of try 0", dt=6))
    row = fold([*failed, event(ev.STARTED, attempt=1, dt=5), late])
    assert [r["message"] for r in row["logs"]] == ["first try"]  # try 1 runs: not its lines
    pending = fold([event(ev.PUBLISHED), event(ev.LOGS, dt=1, logs=lines("x"))])
    assert pending["status"] == "pending" and not pending.get("logs")


def test_malformed_live_lines_are_ignored() -> None:
    for bad in (None, "text", {"a": 1}, [None], ["line"]):
        row = fold([event(ev.STARTED, dt=1), event(ev.LOGS, dt=2, logs=bad)])
        assert row["status"] == "started" and not row.get("logs"), bad
    odd_time = [{"time": "soon", "message": "m"}]  # kept, and never crashes the ordering
    row = fold([event(ev.STARTED, dt=1), event(ev.LOGS, dt=2, logs=odd_time)])
    row = ev.fold(row, [event(ev.LOGS, dt=3, logs=lines("next"))])
    assert [r["message"] for r in row["logs"]] == ["next"]


def test_a_retry_shows_its_own_live_lines_whatever_the_arrival_order() -> None:
    story = [
        event(ev.STARTED, dt=1),
        event(ev.RETRIED, dt=2, logs=lines("first try")),
        event(ev.STARTED, attempt=1, dt=5),
        event(ev.LOGS, attempt=1, dt=6, logs=lines("second try", dt=6)),
    ]
    for order in itertools.permutations(story):
        row = fold(list(order))
        assert row["status"] == "started" and row["retry_count"] == 1
        assert [r["message"] for r in row["logs"]] == ["second try"], order


def test_lines_logged_in_the_same_instant_replace_the_shorter_copy() -> None:
    same = [{"time": T0 + 2, "level": "INFO", "logger": "t", "message": m} for m in ("a", "b")]
    row = fold([event(ev.STARTED, dt=1), event(ev.LOGS, dt=2, logs=same[:1])])
    row = ev.fold(row, [event(ev.LOGS, dt=3, logs=same)])
    assert [r["message"] for r in row["logs"]] == ["a", "b"]


def test_an_empty_live_copy_keeps_the_lines_shown() -> None:
    row = fold([event(ev.STARTED, dt=1), event(ev.LOGS, dt=2, logs=lines("one"))])
    row = ev.fold(row, [event(ev.LOGS, dt=3, logs=[])])
    assert [r["message"] for r in row["logs"]] == ["one"]
