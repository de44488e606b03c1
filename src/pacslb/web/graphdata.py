"""The graphs page's samples as the browser's charts (static/graphs.js, uPlot) take them: columns, gaps as null.

The same samples the server-drawn SVG charts use (pacslb.web.charts), from the same metrics store: only the shape
changes. A gap longer than `gap` seconds (the appliance was stopped) gets a null, so the line breaks there.
"""

from __future__ import annotations

from typing import Sequence

from ..store.metrics import Sample

METRICS = ("requests", "sessions", "errors")


def columns(samples: Sequence[Sample], start: float, end: float, gap: float = 35.0) -> dict[str, object]:
    """{'start', 'end', 't': [epoch s], 'requests': [...], 'sessions': [...], 'errors': [...]} (pure)."""
    t: list[float] = []
    values: dict[str, list[float | None]] = {name: [] for name in METRICS}
    previous: float | None = None
    for s in sorted((s for s in samples if start <= s.ts <= end), key=lambda s: s.ts):
        if previous is not None and s.ts - previous > gap:
            t.append((previous + s.ts) / 2)  # a point without values: the line stops here
            for name in METRICS:
                values[name].append(None)
        t.append(round(s.ts, 3))
        for name in METRICS:
            values[name].append(getattr(s, name))
        previous = s.ts
    return {"start": start, "end": end, "t": t, **values}
