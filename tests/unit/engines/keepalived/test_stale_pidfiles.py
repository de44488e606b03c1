"""A keepalived pidfile naming a dead or zombie process is removed before a start (keepalived would refuse to start)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pacslb.engines.daemon import proc_state
from pacslb.engines.keepalived.process import remove_stale_pidfiles
from pacslb.engines.keepalived.render import KeepalivedPaths


def test_dead_and_zombie_pids_go_and_a_live_one_stays(tmp_path: Path) -> None:
    paths = KeepalivedPaths(tmp_path)
    paths.dir.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while proc_state(zombie.pid) != "Z":  # exited, not yet waited for: what a killed keepalived is until reaped
            assert time.monotonic() < deadline, proc_state(zombie.pid)
            time.sleep(0.01)
        paths.pid.write_text(f"{zombie.pid}\n")
        paths.vrrp_pid.write_text(f"{live.pid}\n")
        remove_stale_pidfiles(paths)
        assert not paths.pid.exists()
        assert paths.vrrp_pid.read_text() == f"{live.pid}\n"
        paths.pid.write_text("4194303\n")  # beyond pid_max: no such process
        remove_stale_pidfiles(paths)
        assert not paths.pid.exists()
    finally:
        live.kill()
        live.wait(10)
        zombie.wait(10)
