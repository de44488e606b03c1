"""balance/web.py: the page shows readers on shift with open effort against capacity, waiting exams by priority and
age band, and the fairness chart."""

from __future__ import annotations

import re

from pacslb.balance.config import load_text
from pacslb.balance.service import BalanceService
from pacslb.balance.store import Store
from pacslb.balance.web import page
from support.hl7feed import orm

T0 = 1_796_637_600.0  # 2026-12-07 10:00 UTC, a Monday


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


CONFIG = """
readers:
  - {name: ada, max_queued: 1}
  - {name: bo, max_queued: 1}
shifts:
  - {reader: ada, start: "08:00", end: "16:00", capacity: 6}
  - {reader: bo, start: "17:00", end: "23:00", capacity: 6}
"""


def test_the_page_counts_waiting_exams_by_priority_and_age(tmp_path):
    config, problems = load_text(CONFIG)
    assert not problems
    clock = Clock(T0 - 3 * 3600)  # 07:00: nobody works yet, every order waits
    store = Store(tmp_path / "b.sqlite")
    service = BalanceService(config, store, clock)
    for i, priority in enumerate(["STAT", "routine", "routine"]):
        service.handle_hl7(orm(f"o{i}", f"A{i}", f"P{i}", priority=priority).encode())
    clock.t = T0 - 3 * 3600 + 45 * 60
    service.handle_hl7(orm("o9", "A9", "P9", priority="routine").encode())
    html = page(service)
    rows = dict(re.findall(r"<tr><td>(\w+)</td>((?:<td>\d+</td>)+)</tr>", html))
    assert rows["STAT"] == "<td>0</td><td>1</td><td>0</td><td>0</td>"  # waited 45 min: the 30 min - 2 h band
    assert rows["routine"] == "<td>1</td><td>2</td><td>0</td><td>0</td>"
    assert "Waiting exams (4, 1 escalated)" in html  # the STAT, past half its 60 min
    assert ">ada<" not in html  # off shift with nothing open: not listed
    clock.t = T0  # 10:00: ada works; her list fills as she pulls
    service.next_case("ada")
    html = page(service)
    assert re.search(r"<td>ada</td><td>on shift</td><td>6.0</td>", html)
    assert "<meter" in html and "<svg" in html
    store.close()
