"""What the engines' daemons have in common, by PID: whether one still runs (a zombie does not), its command
line, its parent and children, its pidfile, and whether it is the one this appliance runs on its own file.
HAProxy, keepalived, PowerDNS and Apache each start, adopt and stop theirs in their own process module."""

from __future__ import annotations

import os
from pathlib import Path


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, Z, ...), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    rest = stat[stat.rfind(")") + 2 :].split()
    return rest[0] if rest else None


def is_running(pid: int) -> bool:
    """A live process: it exists and is not a zombie waiting to be reaped."""
    return proc_state(pid) not in (None, "Z", "X", "x")


def proc_ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = stat[stat.rfind(")") + 2 :].split()
    return int(rest[1]) if len(rest) > 1 else None


def proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int) -> list[int]:
    """Live child processes of PID (HAProxy's workers, for a master)."""
    return [p for p in all_pids() if proc_ppid(p) == pid and is_running(p)]


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return None
    first = text.split()[0] if text else ""
    return int(first) if first.isdigit() and int(first) > 0 else None


def runs(pid: int, program: str, marker: str) -> bool:
    """PID is a live `program` whose command line holds `marker` (this appliance's file or folder)."""
    argv = proc_cmdline(pid)
    return bool(argv) and program in Path(argv[0]).name and marker in argv and is_running(pid)


def adopt(pidfile: Path, program: str, marker: str) -> int | None:
    """The PID in `pidfile` when it is a live `program` run on `marker`, else None (a stale pidfile names
    nothing or, after a reboot, somebody else's process)."""
    pid = read_pidfile(pidfile)
    return pid if pid is not None and runs(pid, program, marker) else None
