"""The VRRP record: the controller's STOP and START lines beside notify.sh's, read back with their reasons."""

from __future__ import annotations

import time
from pathlib import Path

from pacslb.engines.keepalived import process
from pacslb.engines.keepalived.render import KeepalivedPaths
from pacslb.ha.vrrp import reason


def test_the_controllers_marks_are_read_back_between_notify_lines(tmp_path: Path):
    events = KeepalivedPaths(tmp_path).events
    process.mark(events, "START")  # makes the folder too
    with open(events, "a") as f:
        f.write("1796620000.5 BACKUP 150\n1796620001.5 MASTER 150\n")
    process.mark(events, "STOP")
    found, offset = process.read_events(events)
    assert [(t.state, t.priority) for t in found] == [("START", None), ("BACKUP", 150), ("MASTER", 150), ("STOP", None)]
    assert abs(found[0].at - time.time()) < 60 and found[3].at >= found[0].at  # the marks carry the time they were written
    assert offset == events.stat().st_size


def test_a_fresh_start_after_master_says_the_keepalived_before_it_left_no_trace():
    assert "ended without a trace" in reason("MASTER", "START")
    assert "ended without a trace" not in reason("STOP", "START")  # a graceful stop came first
    assert "ended without a trace" not in reason("UNKNOWN", "START")  # the first start, or the supervisor saw it die
    assert reason("START", "BACKUP").startswith("keepalived started")
    assert "`pacslb stop`" in reason("MASTER", "STOP")
