"""The change transaction of an engine that runs one daemon on files pacslb renders (BIRD, PowerDNS, etcd).

Such an engine renders its files (plan, pure), checks them with the daemon's own parser in a scratch folder
(check), then commit swaps them in and makes the daemon take them, and undo puts the previous ones back. That
transaction is the same for each of them and lives here, template-method style: `RenderedDaemonEngine` does
the transaction; a subclass says how to read and write its files and how to reload, start, stop and adopt its
daemon (the abstract methods below), and renders, checks and observes in its own way.

  commit     snapshot the files and the applied digest, remember whether the daemon ran; action "stop": stop it,
             forget the digest; else write the new files, then reload (`reload_action`) or (re)start the
             daemon, and record the applied digest
  undo       the previous files and digest back, then reload or start; stop when nothing ran before the commit
  start      (the subclass renders and checks) `_serve`: adopt the daemon that runs this state directory and
             reload it, or start one; record the applied digest
  supervise  a dead daemon is started again (engines/supervisor.py)

The applied digest is a file of its own (`files.applied`), not the digest of the files: the files carry data
that moves between revisions (health, announced routes), and a restarted controller must still recognise
what it committed.

Not for keepalived (its commit only reloads: adding or removing the `ha` section takes a restart) nor the WAF
(its checked file is swapped in from a temporary file, its digest is that of the file, and the file itself
says whether Apache should run); see docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from .. import files as atomic
from ..model.config import Config
from .contract import EngineError, Prepared
from .supervisor import keep_running


class DaemonFiles(Protocol):
    """The files of the engine's folder that the transaction needs (each engine's `process.Files`)."""

    @property
    def dir(self) -> Path: ...

    @property
    def applied(self) -> Path:
        """The digest the last commit (or start) made run."""
        ...


class DaemonProcess(Protocol):
    """The engine's process module, where its functions have these shapes (engines/bird/process.py,
    engines/powerdns/process.py): the default daemon hooks call them."""

    def start(self, files: Any, binary: str) -> int: ...

    def stop(self, pid: int) -> None: ...

    def alive(self, pid: int) -> bool: ...

    def adopt(self, files: Any) -> int | None: ...


@dataclass
class DaemonWork:
    """What one change does to the daemon, and what undo needs to put back (a subclass adds its new files)."""

    action: str  # "stop", the engine's `reload_action`, or a (re)start under any other name ("start", "restart")
    digest: str | None = None
    checked: bool = False
    previous: Any = None  # the files as they were (the engine's `_read_files`), None until the commit snapshots them
    previous_applied: str | None = None
    was_running: bool = False
    swapped: bool = False
    config: Config | None = None  # the configuration this change makes run
    before: Config | None = None


class RenderedDaemonEngine(ABC):
    """The shared commit, undo, start and supervision of a daemon on rendered files (see the module's docstring).

    A subclass sets `name`, `label`, `reload_action`, `failures`, `log`, `process` (or overrides the daemon hooks
    that use it), `files` (a `DaemonFiles`) and `binary`, calls `super().__init__(gate)`, and implements the
    abstract methods.
    """

    name: ClassVar[str]
    label: ClassVar[str]  # the daemon in the log and in errors: "bird", "pdns_server"
    reload_action: ClassVar[str]  # the action whose commit reloads the daemon in place ("configure", "reload")
    failures: ClassVar[tuple[type[BaseException], ...]]  # what the daemon's process module raises (and OSError)
    log: ClassVar[logging.Logger]
    process: ClassVar[DaemonProcess]  # the engine's process module: start, stop, alive, adopt
    # Whether undo reloads only when the commit itself reloaded (else: a restart on the previous files). A daemon
    # whose reload does not read everything the commit may have changed (pdns_control reload reads the zone data,
    # not pdns.conf) must be restarted to put a restarted commit back.
    undo_reloads_only_after_reload: ClassVar[bool] = False

    files: DaemonFiles
    binary: str

    def __init__(self, gate: asyncio.Lock) -> None:
        self.gate = gate
        self.pid: int | None = None
        self.restarts = 0
        self.reloads = 0  # reloads a commit made (observe)
        self.error: str | None = None
        self.config: Config | None = None
        self._data = asyncio.Lock()  # one writer of the files at a time: a commit, an undo, or the engine's own updates
        self._stopping = asyncio.Event()

    # --- what the engine says --------------------------------------------------------------------------

    @abstractmethod
    def wanted(self, config: Config) -> bool:
        """Whether this configuration needs the daemon."""

    @abstractmethod
    def _read_files(self) -> Any:
        """The engine's files as they are now (None for a file that is absent): what undo puts back."""

    @abstractmethod
    def _restorable(self, previous: Any) -> bool:
        """Whether `previous` (from `_read_files`) is a whole set of files the daemon can run on again."""

    @abstractmethod
    def _write_new(self, work: DaemonWork) -> None:
        """Write the new files of `work` (checked) in place."""

    @abstractmethod
    def _write_back(self, previous: Any) -> None:
        """Write `previous` (restorable) back in place."""

    @abstractmethod
    def _reload(self) -> None:
        """Make the running daemon read its files again, keeping its sessions; raise one of `failures`."""

    # the daemon, through the engine's process module (an engine whose module differs overrides these)

    def _start_daemon(self) -> int:
        """Start the daemon on the files in place; its PID once it answers. Raise one of `failures`."""
        return self.process.start(self.files, self.binary)

    def _stop_daemon(self, pid: int) -> None:
        """Stop the daemon PID (SIGTERM, then SIGKILL); for a PID that already ended, only forget it."""
        self.process.stop(pid)

    def _alive(self, pid: int) -> bool:
        """Whether PID still runs (its exit reaped first)."""
        return self.process.alive(pid)

    def _adopt(self) -> int | None:
        """The PID of the daemon that already runs this state directory, or None."""
        return self.process.adopt(self.files)

    @abstractmethod
    def _start(self, config: Config) -> None:
        """Render and check `config`'s files, then `_serve` them (blocking; under `_data`)."""

    def _stopped_note(self) -> str:
        """What the log says after the daemon stopped (an engine adds what its stop means)."""
        return ""

    # --- the transaction -------------------------------------------------------------------------------

    def _running(self) -> bool:
        return self.pid is not None and self._alive(self.pid)

    async def commit(self, prepared: Prepared) -> None:
        work: DaemonWork = prepared.data
        async with self._data:
            await asyncio.to_thread(self._commit, work)

    def _commit(self, work: DaemonWork) -> None:
        f = self.files
        work.previous, work.previous_applied = self._read_files(), atomic.read_text(f.applied)
        work.was_running = self._running()
        work.swapped = True
        work.before, self.config = self.config, work.config
        if work.action == "stop":
            self._stop_now()
            f.applied.unlink(missing_ok=True)
            return
        assert work.checked, "check before commit"
        self._write_new(work)
        try:
            if work.action == self.reload_action:
                self._reload()
                self.reloads += 1
            else:
                self._stop_now()
                self.pid = self._start_daemon()
                self.log.info("%s started (PID %d)", self.label, self.pid)
        except (*self.failures, OSError) as exc:
            raise EngineError(f"{self.label} could not {work.action}", [str(exc)]) from None
        atomic.atomic_write(f.applied, (work.digest or "") + "\n")

    def _stop_now(self) -> None:
        if self.pid is not None:
            self._stop_daemon(self.pid)
            self.log.info("%s stopped (PID %d)%s", self.label, self.pid, self._stopped_note())
            self.pid = None

    async def undo(self, prepared: Prepared) -> None:
        work: DaemonWork = prepared.data
        if not work.swapped:
            return
        async with self._data:
            await asyncio.to_thread(self._undo, work)

    def _undo(self, work: DaemonWork) -> None:
        self.config = work.before
        if not work.was_running or not self._restorable(work.previous):
            self._stop_now()  # nothing ran before this commit
            self.files.applied.unlink(missing_ok=True)
            return
        self._write_back(work.previous)
        if work.previous_applied is not None:
            atomic.atomic_write(self.files.applied, work.previous_applied)
        try:
            if self._running() and (work.action == self.reload_action or not self.undo_reloads_only_after_reload):
                self._reload()
            else:
                self._stop_now()  # a restart, or the PID of a daemon that died: forgotten
                self.pid = self._start_daemon()
        except (*self.failures, OSError) as exc:
            raise EngineError(f"{self.label} could not be put back on its previous files", [str(exc)]) from None

    def discard(self, prepared: Prepared) -> None:
        return None  # the check works in a scratch folder it removes itself

    def applied_digest(self) -> str | None:
        text = atomic.read_text(self.files.applied)
        return text.strip() if text else None

    # --- start, supervise, stop ------------------------------------------------------------------------

    def _serve(self, running: int | None, adopt: bool, digest: str) -> bool:
        """Make the daemon run the files in place: adopt `running` and reload it (when `adopt`), or start one
        (stopping `running` first); then record `digest` as applied. True when it adopted."""
        if running is not None and adopt:
            self.pid = running
            self._reload()
        else:
            if running is not None:
                self._stop_daemon(running)
            self.pid = self._start_daemon()
        atomic.atomic_write(self.files.applied, digest + "\n")
        return running is not None and adopt

    async def start(self, config: Config, base_dir: Path) -> None:
        self.config = config
        if not self.wanted(config):
            return
        try:
            async with self._data:
                await asyncio.to_thread(self._start, config)
        except (*self.failures, OSError) as exc:
            raise EngineError(f"{self.label} could not be started", [str(exc)]) from None

    async def supervise(self) -> None:
        await keep_running(self, self.label, self._stopping, (EngineError, *self.failures, OSError), self.log)

    # what engines/supervisor.py asks of it
    def should_run(self) -> bool:
        config = self.config  # never started, or stopped by a change: nothing to keep alive
        return config is not None and self.wanted(config) and self.pid is not None

    def is_running(self) -> bool:
        return self._running()

    async def start_again(self) -> None:
        assert self.config is not None
        async with self._data:
            await asyncio.to_thread(self._start, self.config)

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.to_thread(self._stop_now)

    def orphans(self) -> list[str]:
        found = self._adopt()
        return [f"{self.label} PID {found}"] if found is not None and found != self.pid else []
