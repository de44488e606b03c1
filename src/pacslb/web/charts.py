"""Line charts as SVG, drawn on the server: a pure function from points to markup.

No JavaScript and no library: the graphs page puts one `line_chart` per metric and virtual service.
A gap longer than `gap` seconds between two points (the appliance was stopped) breaks the line
rather than drawing a straight line across it.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

Point = tuple[float, float]  # (epoch seconds, value)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n that is >= value (a readable top of the y axis); 1 for 0."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exponent
        if top >= value * (1 - 1e-9):
            return float(top)
    return float(10 ** (exponent + 1))


def format_number(value: float) -> str:
    """Axis labels: 0, 2.5, 40, 1.2k, 3M."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:.3g}"


def path_data(points: Sequence[Point], start: float, end: float, top: float, width: float, height: float, gap: float) -> str:
    """The `d` attribute of an SVG path through `points`, x from start..end, y from 0..top (pure)."""
    if end <= start:
        return ""
    parts: list[str] = []
    previous: float | None = None
    for ts, value in sorted(points):
        if ts < start or ts > end:
            continue
        x = (ts - start) / (end - start) * width
        y = height - min(max(value, 0.0), top) / top * height
        command = "L" if previous is not None and ts - previous <= gap else "M"
        parts.append(f"{command}{x:.1f},{y:.1f}")
        previous = ts
    return " ".join(parts)


def line_chart(
    points: Sequence[Point],
    *,
    start: float,
    end: float,
    title: str,
    unit: str = "",
    width: int = 220,
    height: int = 110,
    gap: float = 35.0,
    css_class: str = "line",
) -> str:
    """A small line chart as an inline SVG element: the title and last value above, 0 and the top of the
    y axis on the left, the time span below (e.g. '-60 min' ... 'now')."""
    left, right, top_margin, bottom = 28, 4, 18, 14
    plot_w, plot_h = width - left - right, height - top_margin - bottom
    values = [v for ts, v in points if start <= ts <= end]
    top = nice_ceiling(max(values, default=0.0))
    d = path_data(points, start, end, top, plot_w, plot_h, gap)
    # the latest point as a dot: visible even when the history is still a few seconds long
    last_point = d.rsplit(" ", 1)[-1][1:].split(",") if d else None
    dot = f'<circle class="{escape(css_class)}" cx="{last_point[0]}" cy="{last_point[1]}" r="2.2"/>' if last_point else ""
    last = f"{format_number(values[-1])}{unit}" if values else "no data"
    minutes = round((end - start) / 60)
    grid = "".join(f'<line class="grid" x1="0" x2="{plot_w}" y1="{plot_h * f:.1f}" y2="{plot_h * f:.1f}"/>' for f in (0, 0.5))
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" role="img" '
        f'aria-label="{escape(title)}: {escape(last)}">'
        f'<text class="title" x="{left}" y="12">{escape(title)}</text>'
        f'<text class="value" x="{width - right}" y="12" text-anchor="end">{escape(last)}</text>'
        f'<text class="axis" x="{left - 4}" y="{top_margin + 4}" text-anchor="end">{format_number(top)}</text>'
        f'<text class="axis" x="{left - 4}" y="{top_margin + plot_h}" text-anchor="end">0</text>'
        f'<text class="axis" x="{left}" y="{height - 3}">-{minutes} min</text>'
        f'<text class="axis" x="{width - right}" y="{height - 3}" text-anchor="end">now</text>'
        f'<g transform="translate({left},{top_margin})">'
        f'<rect class="frame" width="{plot_w}" height="{plot_h}"/>{grid}'
        f'<line class="base" x1="0" x2="{plot_w}" y1="{plot_h}" y2="{plot_h}"/>'
        f'<path class="{escape(css_class)}" d="{d}"/>{dot}'
        "</g></svg>"
    )
