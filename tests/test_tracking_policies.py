"""Retry policies: the backoff sequence (pure) and the cap the broker imposes."""

from __future__ import annotations

import itertools
import random

import pytest

from app.tracking.policies import (
    POLICIES,
    RetrievalTask,
    backoff_cap,
    backoff_delay,
)


@pytest.mark.parametrize("draw", [lambda: 0.0, lambda: 0.5, lambda: 0.999999])
def test_each_delay_is_base_times_two_to_the_n_within_a_quarter(draw) -> None:
    for retries in range(8):
        nominal = 2 * 2**retries
        delay = backoff_delay(2, retries, cap=10_000, draw=draw)
        assert 0.75 * nominal <= delay <= 1.25 * nominal


def test_the_sequence_grows_whatever_the_draws() -> None:
    rng = random.Random(15)
    for _ in range(2_000):
        delays = [backoff_delay(2, n, cap=600, draw=rng.random) for n in range(7)]
        assert all(later > earlier or later == 600 for earlier, later in itertools.pairwise(delays))
        # each wait is at least the previous retry's base
        assert all(delays[n] >= 2 * 2 ** (n - 1) for n in range(1, 7))
        assert max(delays) <= 600


def test_a_one_minute_outage_is_ridden_out_by_the_retrieval_policy() -> None:
    """The issue's case: seven attempts within 40 s. Six waits now add up to well past a minute."""
    base = RetrievalTask.backoff_base
    shortest = [backoff_delay(base, n, 600, draw=lambda: 0.0) for n in range(6)]
    assert sum(shortest) >= 0.75 * 2 * (2**6 - 1) > 90


def test_delays_stop_at_the_cap() -> None:
    assert backoff_delay(2, 30, cap=600, draw=lambda: 0.0) == 600
    assert backoff_delay(2, 10_000, cap=600) == 600


@pytest.mark.parametrize(
    ("base", "retries", "cap", "jitter"),
    [(-1, 0, 10, 0.25), (1, -1, 10, 0.25), (1, 0, -1, 0.25), (1, 0, 10, 1.0), (1, 0, 10, -0.1)],
)
def test_bad_backoff_inputs_are_refused(base, retries, cap, jitter) -> None:
    with pytest.raises(ValueError):
        backoff_delay(base, retries, cap, jitter)


def test_the_cap_leaves_room_for_the_task_inside_the_visibility_timeout() -> None:
    conf = {"broker_transport_options": {"visibility_timeout": 10_800}, "task_time_limit": 7_200}
    assert backoff_cap(conf) == 3_600
    assert backoff_cap(conf, maximum=600) == 600
    # a visibility timeout shorter than the time limit (misconfigured): still below the timeout
    short = {"broker_transport_options": {"visibility_timeout": 100}, "task_time_limit": 200}
    assert backoff_cap(short) == 50
    assert backoff_cap({}) == 3_600


def test_the_engine_config_caps_every_policy_below_the_visibility_timeout(app) -> None:
    conf = app.extensions["celery"].conf
    visibility = conf.broker_transport_options["visibility_timeout"]
    for policy in POLICIES.values():
        assert policy.retry_backoff is False  # Celery's full jitter stays off
        if policy.backoff_base is not None:
            longest = backoff_delay(policy.backoff_base, 50, backoff_cap(conf, policy.backoff_max))
            assert longest + conf.task_time_limit <= visibility
