"""The run page's timeline: each step a bar on one time axis, drawn on the server as SVG.

Every step's row holds a small ``<svg>`` with the same viewBox, so the bars of all rows share
one axis: a light part while the step waited in its queue, then a part in its status colour
while it ran. Colours come from CSS classes (the content security policy forbids inline
styles); the axis' times are HTML beside the bars, so they follow the reader's direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape

from app.services.runs import StepView

WIDTH, HEIGHT = 1000, 14
BAR_Y, BAR_HEIGHT = 2, 10
MIN_WIDTH = 3.0  # a step of a few milliseconds stays visible


@dataclass(frozen=True)
class Axis:
    """The span every bar is drawn against."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.001)

    def x(self, moment: datetime) -> float:
        offset = (_aware(moment) - self.start).total_seconds() / self.seconds
        return min(max(offset, 0.0), 1.0) * WIDTH


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _end(view: StepView, now: datetime) -> datetime | None:
    """When the step stopped, or now while it has not."""
    execution = view.execution
    if execution is None:
        return None
    return _aware(execution.completed_at) if execution.completed_at else now


def time_axis(steps: list[StepView], now: datetime) -> Axis | None:
    """From the first step's creation to the last one's end (now while any still runs)."""
    starts = [_aware(v.execution.created_at) for v in steps if v.execution is not None]
    ends = [end for v in steps if (end := _end(v, now)) is not None]
    ends += [_aware(v.started_at) for v in steps if v.started_at is not None]
    if not starts:
        return None
    start = min(starts + ends)
    return Axis(start, max([*ends, start]))


def step_bar(view: StepView, axis: Axis, now: datetime, tooltip: str) -> Markup:
    """The step's bar on ``axis``: queued, then running or ended; empty for a planned step."""
    parts = [
        f'<svg class="run-bar" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(tooltip)}"><title>{escape(tooltip)}</title>'
        f'<line class="run-bar-track" x1="0" y1="{HEIGHT / 2}" x2="{WIDTH}" y2="{HEIGHT / 2}"/>'
    ]
    execution = view.execution
    if execution is not None:
        created = axis.x(execution.created_at)
        started = axis.x(execution.started_at) if execution.started_at else None
        end = axis.x(_end(view, now) or now)
        queued_until = started if started is not None else end
        if queued_until > created:
            parts.append(_rect("run-bar-queued", created, queued_until))
        if started is not None:
            parts.append(_rect(f"run-bar-{view.state}", started, end))
    parts.append("</svg>")
    return Markup("".join(parts))


def _rect(css_class: str, x1: float, x2: float) -> str:
    width = max(x2 - x1, MIN_WIDTH)
    x = min(x1, WIDTH - width)
    return (
        f'<rect class="{css_class}" x="{x:.1f}" y="{BAR_Y}" '
        f'width="{width:.1f}" height="{BAR_HEIGHT}"/>'
    )
