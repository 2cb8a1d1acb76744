"""A run's status rules, pure: no database (app.runs.status)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from app.runs.status import NOT_RUN, WAITING, StepState, summarize

T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def done(task_id: str, status: str = "success", start: float = 0, end: float = 1, **more):
    return StepState(
        task_id=task_id, status=status, started_at=at(start), completed_at=at(end), **more
    )


def planned(task_id: str, after: str | None = None, **more) -> StepState:
    return StepState(task_id=task_id, after=after, **more)


def chain(*steps: StepState) -> list[StepState]:
    """Each step follows the one before it."""
    linked, previous = [], None
    for step in steps:
        linked.append(StepState(**{**step.__dict__, "after": step.after or previous}))
        previous = step.task_id
    return linked


def test_every_step_succeeded_is_a_success_from_first_start_to_last_end() -> None:
    found = summarize(chain(done("a", start=0, end=2), done("b", start=3, end=5)))
    assert found.status == "success"
    assert (found.total, found.succeeded, found.failed, found.running, found.not_run) == (
        2,
        2,
        0,
        0,
        0,
    )
    assert (found.started_at, found.finished_at) == (at(0), at(5))
    assert found.failed_step is None
    assert found.states == {"a": "success", "b": "success"}


def test_a_failed_step_leaves_the_planned_steps_after_it_not_run() -> None:
    steps = chain(done("a"), done("b", "failure", 1, 2), planned("c"), planned("d"))
    found = summarize(steps)
    assert found.status == "failure"
    assert found.states == {"a": "success", "b": "failure", "c": NOT_RUN, "d": NOT_RUN}
    assert (found.succeeded, found.failed, found.not_run, found.running) == (1, 1, 2, 0)
    assert found.failed_step.task_id == "b"
    assert found.finished_at == at(2)


def test_a_failure_makes_the_run_failed_at_once_but_finished_only_when_nothing_runs() -> None:
    steps = [done("a", "failure", 0, 1), StepState("b", status="started", started_at=at(0))]
    found = summarize(steps)
    assert found.status == "failure" and found.running == 1
    assert found.finished_at is None


def test_a_revoked_step_makes_the_run_revoked_unless_another_failed() -> None:
    found = summarize(chain(done("a", "revoked", 0, 1), planned("b")))
    assert found.status == "revoked" and found.failed_step.task_id == "a"
    assert found.states["b"] == NOT_RUN
    both = summarize([done("a", "revoked", 0, 1), done("b", "failure", 0, 3)])
    assert both.status == "failure" and both.failed_step.task_id == "b"


def test_the_run_is_running_while_a_step_is_pending_started_retrying_or_waiting() -> None:
    for status in ("pending", "started", "retry"):
        found = summarize(chain(done("a"), StepState("b", status=status, started_at=at(2))))
        assert found.status == "running" and found.running == 1, status
        assert found.finished_at is None and found.started_at == at(0)
    waiting = summarize(chain(done("a"), planned("b")))
    assert waiting.status == "running" and waiting.states["b"] == WAITING
    assert (waiting.running, waiting.not_run, waiting.total) == (1, 0, 2)


def test_a_retried_step_is_replaced_and_no_longer_counts() -> None:
    steps = chain(done("a", "failure", 0, 1), planned("b"))
    steps.append(done("a2", replaces="a", start=5, end=6))
    found = summarize(steps)
    assert found.states["a"] == "replaced" and found.states["a2"] == "success"
    # a retry of one step sends it alone: its chain does not go on from it
    assert found.states["b"] == NOT_RUN
    assert found.status == "failure" and found.failed_step.task_id == "b"
    assert (found.total, found.failed, found.succeeded, found.not_run) == (2, 0, 1, 1)


def test_a_resume_replaces_the_steps_after_it_too() -> None:
    steps = chain(done("a"), done("b", "failure", 1, 2), planned("c"))
    steps += [done("b2", replaces="b", start=5, end=6), done("c2", replaces="c", start=6, end=7)]
    found = summarize(steps)
    assert found.status == "success" and found.total == 3
    assert found.finished_at == at(7)


def test_a_planned_replacement_follows_what_the_replaced_step_followed() -> None:
    steps = chain(done("a", "failure", 0, 1), planned("b"))
    steps.append(planned("b2", replaces="b"))
    assert summarize(steps).states["b2"] == NOT_RUN
    steps = chain(done("a"), planned("b"))
    steps.append(planned("b2", replaces="b"))
    found = summarize(steps)
    assert found.states["b2"] == WAITING and found.status == "running"


def test_the_first_step_not_run_is_where_an_incomplete_run_stopped() -> None:
    # "a" was retried alone: the steps planned after it were never sent
    steps = [
        done("a", "failure", 0, 1),
        done("a2", replaces="a", start=2, end=3),
        planned("z", after="a"),
        planned("c", after="z"),
    ]
    found = summarize(steps)
    assert (found.states["z"], found.states["c"]) == (NOT_RUN, NOT_RUN)
    assert found.status == "failure" and found.not_run == 2
    assert found.failed_step.task_id == "z"
    assert found.finished_at == at(3)


def test_the_first_failure_is_the_one_that_ended_first() -> None:
    # ids sort in another order than the ends, so only the ends can decide
    steps = [
        done("a", "failure", 0, 9),
        done("d", "failure", 1, 2),
        StepState("b", status="failure"),  # no time known: last
        StepState("c", status="failure", started_at=at(5)),  # not ended: its start counts
    ]
    for order in itertools.permutations(steps):
        assert summarize(list(order)).failed_step.task_id == "d"
    assert summarize([steps[0], steps[2], steps[3]]).failed_step.task_id == "c"
    tie = [done("b", "failure", 0, 2), done("a", "failure", 0, 2)]
    assert summarize(tie).failed_step.task_id == "a"
    unknown = [StepState("b", status="failure"), StepState("a", status="failure")]
    assert summarize(unknown).failed_step.task_id == "a"


def test_a_finish_never_before_the_start_when_clocks_disagree() -> None:
    found = summarize([done("a", start=5, end=4)])
    assert found.finished_at == found.started_at == at(5)


def test_no_times_known_means_no_start_and_no_finish() -> None:
    found = summarize([StepState("a", status="success")])
    assert (found.status, found.started_at, found.finished_at) == ("success", None, None)


def test_steps_that_follow_each_other_in_a_loop_still_get_a_state() -> None:
    found = summarize([planned("a", after="b"), planned("b", after="a")])
    assert found.states == {"a": WAITING, "b": WAITING} and found.status == "running"


def test_every_order_of_the_steps_gives_the_same_summary() -> None:
    steps = chain(done("a"), done("b", "failure", 1, 2), planned("c"), planned("d"))
    steps.append(done("b2", replaces="b", start=4, end=5))
    expected = summarize(steps)
    for order in itertools.permutations(steps):
        assert summarize(list(order)) == expected


def test_a_lone_planned_step_is_waiting_to_be_sent() -> None:
    found = summarize([planned("a")])
    assert (found.status, found.states, found.running) == ("running", {"a": WAITING}, 1)


def test_a_step_planned_after_one_outside_the_run_is_waiting() -> None:
    found = summarize([done("a"), planned("b", after="elsewhere")])
    assert found.states["b"] == WAITING and found.status == "running"


def test_every_running_step_is_counted() -> None:
    steps = [StepState(name, status="started", started_at=at(0)) for name in "abc"]
    assert summarize(steps).running == 3


def test_replacements_that_loop_still_give_every_step_a_state() -> None:
    steps = [
        planned("a", replaces="b"),
        StepState("b", status="failure", replaces="c"),
        StepState("c", status="failure", replaces="b"),
    ]
    found = summarize(steps)
    assert found.states == {"a": WAITING, "b": "replaced", "c": "replaced"}
