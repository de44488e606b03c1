"""Child processes of a benchmark: started so that they end with it, bounded in time, waited for, stopped by PID."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from lib.procfs import descendants

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child if this process dies (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def pinned(cpu: int | None) -> Callable[[], None]:
    """preexec_fn: the child runs on this one CPU (None: anywhere) and dies with this process."""

    def preexec() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        die_with_parent()

    return preexec


def bounded(cmd: list[str], seconds: int) -> list[str]:
    """The command, killed by timeout(1) after `seconds` should nobody stop it earlier."""
    return ["timeout", "-s", "KILL", str(seconds), *cmd]


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM by PID, then SIGKILL after `timeout` seconds; nothing if it has ended already."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to the process group a child leads (started with start_new_session=True)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def wait_until(ready: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ready() until it is true (True) or `timeout` seconds have passed (False); ready() may raise to give up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(interval)
    return False


def log_tail(path: Path | None, n: int = 20) -> str:
    """The last n lines of a log file ("" if there is none)."""
    if path is None:
        return ""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    return ""


class Child:
    """One engine process in the foreground, its output in a log file; dies with this process, stopped by PID."""

    def __init__(self, name: str, cmd: list[str], log: Path):
        self.name = name
        self.cmd = cmd
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Child":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """This process and its descendants (nginx workers), for CPU accounting."""
        return [self.pid, *descendants(self.pid)] if self.alive() else []

    def log_tail(self, n: int = 20) -> str:
        return log_tail(self.log, n)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout)
