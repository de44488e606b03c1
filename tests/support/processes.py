"""Processes by PID, read from /proc: what tests started, what is left of it, and stopping it by PID.

  pid_gone(pid) -> bool                     no such process, or a zombie (PID 1 reaps orphans late)
  cmdline(pid) -> list[str]                 its argv, [] when gone
  processes_of(path) -> list[int]           live processes whose command line names that path
  haproxy_masters(state_dir) -> list[int]   live HAProxy masters of that state dir
  kill_pids(pids) -> list[int]              SIGKILL each PID still alive; the ones signalled
  stop_group(process, grace)                SIGTERM the process group of a Popen started with
                                            start_new_session, SIGKILL after `grace`, reap it

Never by name (no pkill -f, no killall): other people's processes run on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Iterable


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def pid_gone(pid: int) -> bool:
    """No such process, or a zombie (PID 1 reaps orphans late)."""
    return proc_state(pid) in (None, "Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        return [p.decode(errors="replace") for p in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if p]
    except (FileNotFoundError, ProcessLookupError):
        return []


def ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def live_pids() -> Iterable[int]:
    for name in os.listdir("/proc"):
        if name.isdigit() and not pid_gone(int(name)):
            yield int(name)


def processes_of(path: Path | str) -> list[int]:
    """Live processes whose command line names `path` (controllers, HAProxy master and workers of a state dir)."""
    needle = str(path)
    return sorted(p for p in live_pids() if p != os.getpid() and any(needle in arg for arg in cmdline(p)))


def haproxy_masters(state_dir: Path) -> list[int]:
    """Live HAProxy masters of a state directory: haproxy processes naming its master socket, whose parent is not one."""
    from pacslb.paths import StatePaths  # the product only when asked: bench may import this module without it

    sock = str(StatePaths(state_dir).haproxy_master_socket)
    ours = {
        p for p in live_pids()
        if (argv := cmdline(p)) and Path(argv[0]).name == "haproxy" and any(a.split(",")[0] == sock for a in argv)
    }  # fmt: skip
    return sorted(p for p in ours if ppid(p) not in ours)


def kill_pids(pids: Iterable[int]) -> list[int]:
    """SIGKILL every PID of `pids` that is still alive; returns those signalled."""
    killed = []
    for pid in pids:
        if pid_gone(pid):
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


def stop_group(process: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group of `process` (started with start_new_session), SIGKILL after `grace`."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
