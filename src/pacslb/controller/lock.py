"""One controller per state directory: an exclusive flock on StatePaths.controller_lock.

Taking it is the controller's start: a state directory that another user could change is refused
there (statedir.py), and a missing one is made, mode 0750.

The kernel drops the lock when the holder dies, even by SIGKILL, so a stale lock file never blocks
a new controller. The holder writes its PID into the lock file (and StatePaths.controller_pid), so a
refused second controller can name the one that runs.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..paths import StatePaths
from ..statedir import trusted


class LockHeld(Exception):
    """Another controller holds the lock of this state directory."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.state_dir = state_dir
        self.pid = pid
        who = f"PID {pid}" if pid else "a process whose PID is not recorded"
        super().__init__(
            f"another pacslb controller ({who}) already runs on {state_dir}; "
            f"stop it with 'pacslb stop --state-dir {state_dir}', or choose another --state-dir"
        )


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class ControllerLock:
    """The lock of one state directory. `acquire` raises LockHeld; `release` (or process exit) frees it."""

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises LockHeld, UntrustedStateDir (the state directory could be changed by another user: statedir.py)
        or OSError. A missing state directory is made, mode 0750."""
        trusted(self.paths.root, create=True)
        fd = os.open(self.paths.controller_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(self.paths.root, holder_pid(self.paths)) from None
        pid = str(os.getpid()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, pid + b"\n", 0)
        self.paths.controller_pid.write_text(f"{os.getpid()}\n")
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        for path in (self.paths.controller_pid,):
            if _read_pid(path) == os.getpid():
                path.unlink(missing_ok=True)
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    def __enter__(self) -> "ControllerLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_pid(paths: StatePaths) -> int | None:
    """The PID the lock holder recorded (it may be stale if nobody holds the lock; see `is_locked`)."""
    return _read_pid(paths.controller_lock) or _read_pid(paths.controller_pid)


def is_locked(paths: StatePaths) -> bool:
    """Whether a controller holds the lock now. Probes with a non-blocking shared lock, released at once."""
    try:
        fd = os.open(paths.controller_lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
