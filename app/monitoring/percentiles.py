"""The one percentile method of the engine: exact (nearest rank) over the durations themselves,
or, when there are too many to read, an estimate interpolated inside a histogram bucket.

Every page and API field that shows a percentile goes through here, so a task type whose only
execution took 77 ms reads 77 ms everywhere; an estimate is always flagged as one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def nearest_rank(values: Sequence[float], share: float, *, ordered: bool = False) -> float | None:
    """The nearest-rank ``share`` percentile (``share`` in 0..1) of ``values``: always one of
    them, never an interpolation; None when there are none."""
    if not 0 <= share <= 1:
        raise ValueError("a percentile share is between 0 and 1")
    if not values:
        return None
    sorted_values = values if ordered else sorted(values)
    return sorted_values[max(1, math.ceil(share * len(sorted_values))) - 1]


def from_histogram(histogram: Sequence[int], share: float, bounds: Sequence[float]) -> float | None:
    """An estimate of the ``share`` percentile from bucket counts: ``histogram[i]`` counts the
    values in ``(bounds[i-1], bounds[i]]``, the last one those above ``bounds[-1]``. Linear
    interpolation inside the bucket; the open last bucket is read as ending at twice its start.
    """
    if not 0 <= share <= 1:
        raise ValueError("a percentile share is between 0 and 1")
    if len(histogram) != len(bounds) + 1:
        raise ValueError("a histogram has one bucket more than it has bounds")
    total = sum(histogram)
    if not total:
        return None
    wanted, seen = max(share * total, 1), 0
    for index, count in enumerate(histogram):
        if count and seen + count >= wanted:
            low = bounds[index - 1] if index else 0.0
            high = bounds[index] if index < len(bounds) else low * 2
            return round(low + (high - low) * (wanted - seen) / count, 3)
        seen += count
    return None
