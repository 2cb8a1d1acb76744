"""The one percentile method: exact nearest rank, or a histogram estimate (pure)."""

from __future__ import annotations

import random

import pytest

from app.models.statistics import DURATION_BOUNDS, HISTOGRAM_COLUMNS
from app.monitoring.percentiles import from_histogram, nearest_rank
from app.monitoring.rollups import bucket_of


@pytest.mark.parametrize("value", [0.025, 0.077, 0.03, 4.2, 7000.0])
def test_one_value_is_its_own_percentile(value: float) -> None:
    assert nearest_rank([value], 0.95) == value
    assert nearest_rank([value], 0.0) == value


def test_nearest_rank_is_one_of_the_values() -> None:
    values = [float(v) for v in range(1, 21)]
    random.Random(3).shuffle(values)
    assert nearest_rank(values, 0.95) == 19.0
    assert nearest_rank(values, 0.5) == 10.0
    assert nearest_rank(values, 1.0) == 20.0
    assert nearest_rank(sorted(values), 0.95, ordered=True) == 19.0
    assert nearest_rank([], 0.95) is None


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_bad_shares_are_refused(share: float) -> None:
    with pytest.raises(ValueError):
        nearest_rank([1.0], share)
    with pytest.raises(ValueError):
        from_histogram([1] + [0] * len(DURATION_BOUNDS), share, DURATION_BOUNDS)


def test_a_histogram_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        from_histogram([1, 2], 0.95, DURATION_BOUNDS)


def test_bounds_fit_milliseconds_to_hours() -> None:
    assert tuple(sorted(DURATION_BOUNDS)) == DURATION_BOUNDS
    assert DURATION_BOUNDS[0] <= 0.005 and DURATION_BOUNDS[-1] >= 4 * 3600
    assert len(HISTOGRAM_COLUMNS) == len(DURATION_BOUNDS) + 1
    # 25, 30 and 77 ms fall in three different buckets (they all shared the first one before).
    assert len({bucket_of(s) for s in (0.025, 0.03, 0.077)}) == 3


@pytest.mark.parametrize("value", [0.003, 0.025, 0.077, 0.3, 4.2, 95.0, 2000.0, 9000.0])
def test_the_estimate_stays_inside_the_bucket_of_the_value(value: float) -> None:
    histogram = [0] * len(HISTOGRAM_COLUMNS)
    index = HISTOGRAM_COLUMNS.index(bucket_of(value))
    histogram[index] = 1
    estimate = from_histogram(histogram, 0.95, DURATION_BOUNDS)
    low = DURATION_BOUNDS[index - 1] if index else 0.0
    high = DURATION_BOUNDS[index] if index < len(DURATION_BOUNDS) else 2 * low
    assert low <= estimate <= high
    assert from_histogram([0] * len(HISTOGRAM_COLUMNS), 0.95, DURATION_BOUNDS) is None
