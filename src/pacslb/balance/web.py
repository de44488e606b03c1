"""The balance service's own page: readers on shift with effort against capacity, waiting exams by priority and age,
fairness over the day (web/charts.py's SVG line chart). It lives in the service, not in the appliance's WebUI: the
service runs on its own (often on another host than the appliance) and its data is in its own SQLite file.
The same data is JSON under /api/.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import TYPE_CHECKING

from ..web.charts import line_chart

if TYPE_CHECKING:
    from .service import BalanceService

AGE_BANDS = ((30, "< 30 min"), (120, "30 min - 2 h"), (480, "2 - 8 h"), (float("inf"), "> 8 h"))


def _band(age: float) -> str:
    for limit, label in AGE_BANDS:
        if age < limit:
            return label
    return AGE_BANDS[-1][1]


def page(service: BalanceService) -> str:
    """The whole page as HTML (pure over the service's views)."""
    now = service.clock()
    readers = service.readers_view()
    waiting = service.waiting_view()
    fairness = service.fairness_view(24)
    rows = []
    for r in readers:
        if not r["working"] and not r["list"]:
            continue
        capacity = r["capacity"]
        bar = ""
        if capacity:
            hours = r["outstanding"] / capacity
            bar = f'<meter min="0" max="2" value="{min(hours, 2):.2f}" title="{hours:.2f} h of declared capacity open"></meter> {hours:.2f} h'
        lag = "" if r["lag_hours"] is None else f"{r['lag_hours']:+.2f} h"
        rows.append(
            f"<tr><td>{escape(r['name'])}</td><td>{'on shift' if r['working'] else 'off'}</td>"
            f"<td>{capacity if capacity is not None else '-'}</td><td>{r['assigned']:.2f} / {r['earned']:.2f}</td>"
            f"<td>{lag}</td><td>{r['outstanding']:.2f} {bar}</td>"
            f"<td>{len(r['list'])}</td></tr>"
        )
    counts = Counter((e["priority"], _band(e["age_minutes"])) for e in waiting)
    priorities = [c.name for c in service.policy.classes]
    grid = "".join(
        f"<tr><td>{escape(p)}</td>" + "".join(f"<td>{counts.get((p, label), 0)}</td>" for _, label in AGE_BANDS) + "</tr>"
        for p in priorities
    )
    escalated = sum(1 for e in waiting if e["escalated"])
    chart = line_chart(
        fairness, start=now - 24 * 3600, end=now, title="Jain's index of effort per hour", gap=3700, width=520, height=160
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pacslb balance</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25em .6em}}
svg .line{{fill:none;stroke:#2a6;stroke-width:1.5}} svg .grid{{stroke:#ddd}} svg text{{font-size:9px}}</style></head>
<body><h1>Reading balance</h1>
<p>Capacity is the declared schedule's. JSON: <a href="/api/readers">readers</a>, <a href="/api/waiting">waiting</a>,
<a href="/api/assignments">assignments</a>, <a href="/api/fairness">fairness</a>.</p>
<h2>Readers</h2>
<table id="readers"><tr><th>reader</th><th>now</th><th>declared capacity /h</th><th>assigned / earned</th><th>ahead (+) or behind (-)</th>
<th>open effort</th><th>exams on list</th></tr>{"".join(rows)}</table>
<h2>Waiting exams ({len(waiting)}, {escalated} escalated)</h2>
<table id="waiting"><tr><th>priority</th>{"".join(f"<th>{escape(label)}</th>" for _, label in AGE_BANDS)}</tr>{grid}</table>
<h2>Fairness over the day</h2>
{chart}
</body></html>
"""
