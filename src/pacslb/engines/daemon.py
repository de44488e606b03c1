"""What the engines' daemons have in common, by PID: whether one still runs (a zombie does not), its command
line, its parent and children, its pidfile, and whether it is the one this appliance runs on its own file;
starting one in a session of its own, keeping its Popen so that its exit is reaped, and stopping it
(SIGTERM, then SIGKILL). HAProxy, keepalived, PowerDNS, Apache, bird and etcd each start, adopt and stop theirs in their
own process module, with these."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

KILL_WAIT = 5.0  # after SIGKILL: how long stopping waits for the end (a process in uninterruptible sleep)


@dataclass(frozen=True)
class CheckResult:
    """An engine's own checker on a file (keepalived -t, apache2 -t, pdnsutil): accepted or not, in its words."""

    ok: bool
    output: str


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


def spawn(argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a daemon in the foreground, in a session of its own (a controller killed with SIGKILL leaves it
    running: fail static), its output appended to `log`, with `env` (None: this process's environment). The
    caller waits for it to be ready, then keeps it."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            env=env,
        )


def tail(path: Path, lines: int = 5, limit: int | None = None) -> str:
    """The last `lines` lines of a daemon's log, joined on one line (at most `limit` characters, the end kept)
    for an error message; or where to look when it cannot be read."""
    try:
        text = " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"see {path}"
    return text if limit is None else text[-limit:]


_popens: dict[int, subprocess.Popen] = {}


def keep(popen: subprocess.Popen) -> None:
    """Keep the Popen of a daemon this process started, so that its exit is reaped (a zombie child would look
    alive to a PID check)."""
    _popens[popen.pid] = popen


def alive(pid: int) -> bool:
    """A live daemon: its exit is reaped first when this process started it."""
    popen = _popens.get(pid)
    if popen is not None:
        popen.poll()
    return is_running(pid)


def terminate(pid: int, grace: float, kill: Literal["process", "session", "children"] = "process") -> None:
    """Stop a daemon: SIGTERM, then SIGKILL when it has not ended within `grace` seconds, to what `kill` names:
    the process alone, its session (it leads one: Apache's workers), or the process and the children it had
    before the SIGTERM (keepalived's VRRP child, which must end too). Waits at most KILL_WAIT seconds more for
    the end, and forgets its Popen."""
    try:
        if not alive(pid):
            return
        kids = children(pid) if kill == "children" else []
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not alive(pid) and not any(is_running(c) for c in kids):
                return
            time.sleep(0.05)
        for target in [pid, *kids]:
            try:
                if kill == "session":
                    os.killpg(target, signal.SIGKILL)
                else:
                    os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while alive(pid) and time.monotonic() < deadline + KILL_WAIT:
            time.sleep(0.05)
    finally:
        _popens.pop(pid, None)
