"""Small SVG charts drawn on the server: no JavaScript chart library, tooltips through <title>.

Each function returns markup for one ``<svg>``; values are escaped, colours come from CSS classes
(the content security policy forbids inline styles), and the chart scales to its container.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 600, 160
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 8, 8, 22


@dataclass(frozen=True)
class Point:
    label: str  # shown on the axis and in the tooltip (already localized)
    value: float | None
    tooltip: str = ""  # the full text of the <title>; defaults to "label: value"


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[Point]
    css_class: str = "series-0"


def _scale_max(values: Sequence[float], fixed_max: float | None) -> float:
    if fixed_max is not None:
        return fixed_max
    top = max(values, default=0.0)
    return top * 1.1 if top > 0 else 1.0


def _axis(top: float, unit: str, label_every: int, labels: Sequence[str]) -> list[str]:
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = [
        f'<line class="axis" x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" '
        f'x2="{WIDTH - PAD_RIGHT}" y2="{HEIGHT - PAD_BOTTOM}"/>'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = PAD_TOP + plot_h * (1 - fraction)
        value = top * fraction
        text = f"{value:.0f}{unit}" if top >= 10 or value == 0 else f"{value:.1f}{unit}"
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" y1="{y:.1f}" '
            f'x2="{WIDTH - PAD_RIGHT}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(text)}</text>"
        )
    step = (WIDTH - PAD_LEFT - PAD_RIGHT) / max(len(labels), 1)
    for index, label in enumerate(labels):
        if label_every and index % label_every == 0:
            x = PAD_LEFT + step * (index + 0.5)
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    return parts


def _open(title: str, css_class: str) -> str:
    return (
        f'<svg class="chart {css_class}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'preserveAspectRatio="none" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    )


def bar_chart(
    title: str,
    points: Sequence[Point],
    *,
    unit: str = "",
    fixed_max: float | None = None,
    label_every: int = 0,
    css_class: str = "series-0",
) -> Markup:
    """One bar per point; a missing value draws no bar but keeps its slot."""
    values = [p.value for p in points if p.value is not None]
    top = _scale_max(values, fixed_max)
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    step = plot_w / max(len(points), 1)
    parts = [_open(title, "bar"), *_axis(top, unit, label_every, [p.label for p in points])]
    for index, point in enumerate(points):
        if point.value is None:
            continue
        h = plot_h * min(point.value, top) / top
        x = PAD_LEFT + step * index + step * 0.1
        tooltip = point.tooltip or f"{point.label}: {point.value:g}{unit}"
        parts.append(
            f'<rect class="{css_class}" x="{x:.1f}" y="{PAD_TOP + plot_h - h:.1f}" '
            f'width="{step * 0.8:.1f}" height="{h:.1f}"><title>{escape(tooltip)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    unit: str = "",
    fixed_max: float | None = None,
    label_every: int = 0,
) -> Markup:
    """One polyline per series over shared x slots; gaps (None) break the line."""
    labels = [p.label for p in series[0].points] if series else []
    values = [p.value for s in series for p in s.points if p.value is not None]
    top = _scale_max(values, fixed_max)
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    step = plot_w / max(len(labels), 1)
    parts = [_open(title, "line"), *_axis(top, unit, label_every, labels)]
    for line in series:
        runs: list[list[str]] = [[]]
        dots: list[str] = []
        for index, point in enumerate(line.points):
            if point.value is None:
                runs.append([])
                continue
            x = PAD_LEFT + step * (index + 0.5)
            y = PAD_TOP + plot_h * (1 - min(point.value, top) / top)
            runs[-1].append(f"{x:.1f},{y:.1f}")
            tooltip = point.tooltip or f"{line.name} · {point.label}: {point.value:g}{unit}"
            dots.append(
                f'<circle class="{line.css_class}" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                f"<title>{escape(tooltip)}</title></circle>"
            )
        parts += [
            f'<polyline class="{line.css_class}" points="{" ".join(run)}"/>' for run in runs if run
        ]
        parts += dots
    parts.append("</svg>")
    return Markup("".join(parts))
