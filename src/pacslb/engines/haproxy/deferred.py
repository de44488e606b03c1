"""haproxy.cfg written after a runtime-only change, in the background and coalesced.

A drain, halt, online or weight is a runtime operation on HAProxy's stats socket: HAProxy runs the new
state as soon as the operation is answered, and the change's revision is recorded before the API
answers. The file on disk only matters to the next HAProxy that reads it (a reload, a restart of a dead
master, the next start), so rendering and checking the whole file (hundreds of milliseconds at 1,000
services) is moved off the change's path:

    due(config, base_dir)    a runtime-only change committed: the file must become `config`'s; a thread
                             renders, checks (`haproxy -c`) and swaps it in once no change came for `QUIET`
                             seconds (at most `LONGEST` after the first one due), so a burst of operations
                             costs one render
    swap_in(action)          a change that writes the file itself (a reload, added or removed servers): it
                             supersedes what was due (its model is the newer one), under the same lock, so
                             a background render that finishes later never overwrites it
    flush()                  before anything reads the file (a reload, a restart of HAProxy, the engine's
                             stop): what is due is rendered and written now, in the caller's thread

The invariant: before HAProxy reads haproxy.cfg, the file is the rendering of the latest model the
controller committed. A controller killed between a runtime change and its write leaves the previous file
on disk; the next start renders the current revision, finds the running file differs and reloads HAProxy
on the new one (docs/architecture.md, "Runtime changes and the file on disk").
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from ...model import Config

log = logging.getLogger("pacslb.controller")

QUIET = 0.2  # seconds without a new runtime change before the file is written
LONGEST = 2.0  # seconds a due file may wait under a steady stream of changes
RETRY = 5.0  # seconds before a render or check that failed is tried again

# render + check (slow); returns (install, discard): swap the checked file in, or forget it (a newer change came)
Write = Callable[[Config, Path], tuple[Callable[[], None], Callable[[], None]]]


class DeferredFile:
    """The one pending write of haproxy.cfg (the latest runtime-only change's model), and its worker thread.

    `write(config, base_dir)` renders and checks (slow, outside the lock) and returns the actions that swap
    the checked file in (fast, run under the lock only when nothing newer was committed meanwhile) or
    forget it."""

    def __init__(
        self, write: Write, quiet: float = QUIET, longest: float = LONGEST, after: Callable[[], None] | None = None
    ) -> None:
        self._write = write
        self._after = after or (lambda: None)  # after a background write (give the render's memory back)
        self.quiet, self.longest = quiet, longest
        self._cond = threading.Condition()
        self._due: tuple[Config, Path] | None = None
        self._generation = 0
        self._first = self._last = 0.0
        self._not_before = 0.0  # after a failed render or check: when to try again
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.written = 0  # background writes done (tests and the benchmark read it)

    @property
    def pending(self) -> bool:
        with self._cond:
            return self._due is not None

    def due(self, config: Config, base_dir: Path) -> None:
        """The file must become `config`'s (a runtime-only change committed)."""
        with self._cond:
            now = time.monotonic()
            if self._due is None:
                self._first = now
            self._due, self._last = (config, base_dir), now
            self._generation += 1
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="haproxy.cfg writer", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def swap_in(self, action: Callable[[], None]) -> None:
        """Run `action` (which writes the file from the newest model) under the lock; nothing due remains."""
        with self._cond:
            self._generation += 1
            self._due = None
            action()

    def flush(self) -> None:
        """Write what is due now, in this thread (blocking). Raises what the render or check raised."""
        with self._cond:
            if self._due is None:
                return
            config, base_dir = self._due
            install, _ = self._write(config, base_dir)
            install()
            self._generation += 1
            self._due = None

    def stop(self) -> None:
        """The worker thread ends (call flush first to keep the file current)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=60)

    def _wait_quiet(self) -> tuple[int, Config, Path] | None:
        """Under the lock: wait until something is due and quiet; the snapshot to write, or None (stopped)."""
        while not self._stopped:
            if self._due is None:
                self._cond.wait()
                continue
            wait = max(min(self._last + self.quiet, self._first + self.longest), self._not_before) - time.monotonic()
            if wait > 0:
                self._cond.wait(wait)
                continue
            config, base_dir = self._due
            return self._generation, config, base_dir
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                snapshot = self._wait_quiet()
            if snapshot is None:
                return
            generation, config, base_dir = snapshot
            try:
                install, discard = self._write(config, base_dir)  # the slow part, outside the lock
            except Exception as exc:  # noqa: BLE001 - any failure is logged and retried: the thread must live
                log.error("haproxy.cfg could not be written after a runtime change (%s): trying again in %gs", exc, RETRY)
                with self._cond:
                    self._not_before = time.monotonic() + RETRY
                continue
            with self._cond:
                current = generation == self._generation
                if current:
                    try:
                        install()
                    except OSError as exc:  # a full or read-only state directory: keep it due, try again
                        log.error(
                            "haproxy.cfg could not be swapped in after a runtime change (%s): trying again in %gs", exc, RETRY
                        )
                        self._not_before = time.monotonic() + RETRY
                        discard()
                        continue
                    self._due = None
                    self.written += 1
            if not current:
                discard()  # a newer change came, or the file was written meanwhile: this render is stale
            _trim()


def _trim() -> None:
    """The render's transient memory back to the system: this thread's malloc arena keeps it otherwise (glibc's
    malloc_trim; no full collection here, which would hold the GIL while changes run)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
