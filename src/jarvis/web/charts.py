"""Server-rendered SVG charts: pure functions from numbers and labels to SVG markup.

Every piece of text is escaped before it joins the markup; colours come from CSS classes
(``.chart .series-ok`` and friends in app.css), never from attributes, so the persona
theme and the dark mode apply. The SVG is an image with a title and a description; pages
show the same figures as a table next to it for those who cannot see it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from jarvis.web.rendering import markup

WIDTH = 600
HEIGHT = 220
# Room for the y-axis labels (left), the x-axis labels (bottom) and the top tick label.
LEFT, RIGHT, TOP, BOTTOM = 46, 8, 14, 26
BAR_SHARE = 0.72  # of each slot's width; the rest is the gap between bars
SERIES_CLASSES = frozenset({"series-ok", "series-fail", "series-other", "series-main", "bar"})


@dataclass(frozen=True)
class Series:
    """One stacked series: its name (legend, tooltips), its CSS class, a value per label."""

    name: str
    css_class: str
    values: Sequence[float]


def nice_ceiling(value: float) -> float:
    """The smallest 'round' number (1, 2, 4, 5, 6, 8 times a power of ten) >= ``value``:
    the top of a y axis whose halves and quarters read well."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for multiple in (1, 2, 4, 5, 6, 8, 10):
        if multiple * power >= value - 1e-9:
            return float(multiple * power)
    return 10.0 * power  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    """A coordinate or a figure without float noise (12.0 -> 12, 0.3333 -> 0.33)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _plot_box(width: int, height: int) -> tuple[float, float, float, float]:
    """(left, top, plot width, plot height)."""
    return LEFT, TOP, width - LEFT - RIGHT, height - TOP - BOTTOM


def _open(chart_id: str, title: str, description: str, width: int, height: int) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg class="chart" id="{cid}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" focusable="false" '
        f'preserveAspectRatio="xMidYMid meet">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(description)}</desc>',
    ]


def _y_axis(top_value: float, unit: str, *, integer: bool, width: int, height: int) -> list[str]:
    """Grid lines and labels at 0, a quarter, a half, three quarters and the top."""
    left, top, plot_w, plot_h = _plot_box(width, height)
    parts = ['<g class="y-axis" aria-hidden="true">']
    for step in range(5):
        value = top_value * step / 4
        if integer and value != int(value):
            continue
        y = top + plot_h - plot_h * step / 4
        css = "axis" if step == 0 else "grid-line"
        parts.append(
            f'<line class="{css}" x1="{left}" x2="{_number(left + plot_w)}" '
            f'y1="{_number(y)}" y2="{_number(y)}"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{_number(y + 4)}" text-anchor="end">'
            f"{escape(_number(value) + unit)}</text>"
        )
    parts.append("</g>")
    return parts


def _x_labels(labels: Sequence[str], *, label_every: int, width: int, height: int) -> list[str]:
    """Every ``label_every``-th label under its slot (the others are 'minor': CSS may hide
    some of those on narrow screens)."""
    left, top, plot_w, plot_h = _plot_box(width, height)
    slot = plot_w / max(len(labels), 1)
    parts = ['<g class="x-axis" aria-hidden="true">']
    for i, label in enumerate(labels):
        if i % label_every:
            continue
        major = (i // label_every) % 2 == 0
        x = left + slot * (i + 0.5)
        parts.append(
            f'<text class="{"tick-major" if major else "tick-minor"}" x="{_number(x)}" '
            f'y="{_number(top + plot_h + 17)}" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append("</g>")
    return parts


def _empty_note(message: str, width: int, height: int) -> str:
    left, top, plot_w, plot_h = _plot_box(width, height)
    return (
        f'<text class="chart-empty" x="{_number(left + plot_w / 2)}" '
        f'y="{_number(top + plot_h / 2)}" text-anchor="middle">{escape(message)}</text>'
    )


def _css_class(name: str) -> str:
    # Classes are chosen by the server; refuse anything else rather than escape it.
    if name not in SERIES_CLASSES:
        raise ValueError(f"unknown chart series class {name!r}")
    return name


def stacked_bars(
    chart_id: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    description: str,
    unit: str = "",
    label_every: int = 1,
    empty_message: str = "No data yet",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """A bar per label, the series stacked bottom-up in the order given; heights are
    proportional to the values on a shared axis from 0 to a round number above the
    tallest stack. Each bar segment carries a tooltip (``<title>``) with its figure."""
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)}")
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    peak = max(totals, default=0)
    top_value = nice_ceiling(peak)
    integer = all(float(v).is_integer() for s in series for v in s.values)
    left, top, plot_w, plot_h = _plot_box(width, height)
    slot = plot_w / max(len(labels), 1)
    bar_w = slot * BAR_SHARE
    parts = _open(chart_id, title, description, width, height)
    parts += _y_axis(top_value, unit, integer=integer, width=width, height=height)
    parts.append('<g class="bars">')
    for i, label in enumerate(labels):
        base = top + plot_h
        x = left + slot * i + (slot - bar_w) / 2
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            bar_h = plot_h * value / top_value
            base -= bar_h
            tip = f"{label}: {_number(value)}{unit} {s.name}"
            parts.append(
                f'<rect class="{_css_class(s.css_class)}" x="{_number(x)}" y="{_number(base)}" '
                f'width="{_number(bar_w)}" height="{_number(bar_h)}" data-value="{_number(value)}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    parts.append("</g>")
    parts += _x_labels(labels, label_every=label_every, width=width, height=height)
    if peak <= 0:
        parts.append(_empty_note(empty_message, width, height))
    parts.append("</svg>")
    return markup("".join(parts))


def line_chart(
    chart_id: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    description: str,
    unit: str = "",
    max_value: float | None = None,
    label_every: int = 1,
    empty_message: str = "No data yet",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """A line through the values (None: no figure for that label, the line breaks there),
    a shaded area under it and a dot per figure with its tooltip. The axis runs from 0 to
    ``max_value`` (e.g. 100 for percentages), or to a round number above the largest."""
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} values for {len(labels)} labels")
    known = [v for v in values if v is not None]
    top_value = max_value if max_value is not None else nice_ceiling(max(known, default=0))
    left, top, plot_w, plot_h = _plot_box(width, height)
    slot = plot_w / max(len(labels), 1)
    base = top + plot_h

    def point(i: int, value: float) -> tuple[str, str]:
        y = base - plot_h * min(max(value, 0), top_value) / top_value
        return _number(left + slot * (i + 0.5)), _number(y)

    # Runs of consecutive figures: each is one stretch of line (and of area).
    runs: list[list[tuple[int, float]]] = []
    for i, value in enumerate(values):
        if value is None:
            continue
        if runs and runs[-1][-1][0] == i - 1:
            runs[-1].append((i, value))
        else:
            runs.append([(i, value)])
    parts = _open(chart_id, title, description, width, height)
    parts += _y_axis(top_value, unit, integer=False, width=width, height=height)
    parts.append('<g class="lines">')
    for run in runs:
        coords = [point(i, v) for i, v in run]
        line = " L ".join(f"{x} {y}" for x, y in coords)
        first_x, last_x = coords[0][0], coords[-1][0]
        parts.append(
            f'<path class="series-area" d="M {first_x} {_number(base)} L {line} '
            f'L {last_x} {_number(base)} Z"/>'
        )
        if len(run) > 1:
            parts.append(f'<path class="series-main" d="M {line}"/>')
    for i, value in enumerate(values):
        if value is None:
            continue
        x, y = point(i, value)
        tip = f"{labels[i]}: {_number(value)}{unit}"
        parts.append(
            f'<circle class="series-dot" cx="{x}" cy="{y}" r="3.5" data-value="{_number(value)}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    parts.append("</g>")
    parts += _x_labels(labels, label_every=label_every, width=width, height=height)
    if not known:
        parts.append(_empty_note(empty_message, width, height))
    parts.append("</svg>")
    return markup("".join(parts))
