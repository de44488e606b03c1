"""keepalived as an engine of the appliance (engines/contract.py): the floating IPs of an HA pair (VRRPv3).

Wanted only when the configuration has an `ha` section (adding or removing it takes a restart: the
change transaction refuses it before any engine plans).

  start      render keepalived.conf, `keepalived -t`, adopt the keepalived that already runs on this state
             directory (reloaded with SIGHUP when its file differs), or start one
  supervise  a dead keepalived is started again (growing pause between attempts that fail); `on_event`
             hears of it, so the HA record shows why the node left MASTER
  plan       the new keepalived.conf; changed when it differs from the one that runs
  check      `keepalived -t` on it in a temporary file
  commit     the file swapped in and keepalived reloaded (SIGHUP)
  undo       the previous file back and keepalived reloaded again
  stop       SIGTERM: a master sends a priority-0 advert, so the peer takes over at once

The split-brain bonus (a file keepalived's track script reads) is the HA pair's (ha/pair.py) decision;
it is kept here because it is one of keepalived's inputs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ... import files
from ...model.config import Config
from ...paths import StatePaths
from ..contract import EngineError, EngineState, Prepared, discard_temp
from ..supervisor import keep_running
from . import process
from .render import KeepalivedPaths, RenderError, render, render_scripts

log = logging.getLogger("pacslb.ha")


@dataclass
class Work:
    text: str
    temp: Path | None = None
    previous: str | None = None
    swapped: bool = False


class KeepalivedEngine:
    name = "keepalived"

    def __init__(self, paths: StatePaths, gate: asyncio.Lock, on_event: Callable[[str, str], None] | None = None,
                 binary: str = process.DEFAULT_BINARY) -> None:  # fmt: skip
        self.paths = KeepalivedPaths(paths.root)  # the files of StatePaths.keepalived_dir
        self.gate = gate
        self.on_event = on_event or (lambda state, reason: None)
        self.binary = binary
        self.pid: int | None = None
        self.restarts = 0
        self.error: str | None = None
        self.bonus = 0
        self.config: Config | None = None
        self._stopping = asyncio.Event()

    def wanted(self, config: Config) -> bool:
        return config.ha is not None

    # --- the file ------------------------------------------------------------------------------------

    def _render(self, config: Config) -> str:
        try:
            return render(config, self.paths)
        except RenderError as exc:
            raise EngineError("keepalived.conf cannot be rendered", [str(exc)]) from None

    def _checked_temp(self, text: str) -> Path:
        process.write_scripts(render_scripts(self.paths))
        self.paths.dir.mkdir(parents=True, exist_ok=True)
        temp = files.temp_file(self.paths.dir, ".keepalived.conf.", text)
        result = process.check(temp, self.binary)
        if not result.ok:
            temp.unlink(missing_ok=True)
            raise EngineError("keepalived refuses the rendered keepalived.conf (keepalived -t)", [result.output], refused=True)
        return temp

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        if new.ha is None:
            return Prepared(self.name, False)
        text = self._render(new)
        changed = text != files.read_text(self.paths.config)
        return Prepared(self.name, changed, files.sha256(text),
                        ["keepalived: keepalived.conf replaced and reloaded (SIGHUP)"] if changed else [], data=Work(text))  # fmt: skip

    async def check(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        work.temp = await asyncio.to_thread(self._checked_temp, work.text)

    async def commit(self, prepared: Prepared) -> None:
        await asyncio.to_thread(self._commit, prepared.data)

    def _commit(self, work: Work) -> None:
        assert work.temp is not None, "check before commit"
        work.previous = files.read_text(self.paths.config)
        files.replace(work.temp, self.paths.config)
        work.temp, work.swapped = None, True
        self._reload()

    def _reload(self) -> None:
        if self.pid is None or not process.alive(self.pid):
            raise EngineError(f"keepalived is not running ({self.error or 'unknown reason'})")
        try:
            process.reload(self.pid)
        except (process.KeepalivedError, OSError) as exc:
            raise EngineError("keepalived could not be reloaded", [str(exc)]) from None
        log.info("keepalived reloaded (PID %d)", self.pid)

    async def undo(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if not work.swapped:
            return
        if work.previous is not None:
            await asyncio.to_thread(files.atomic_write, self.paths.config, work.previous)
        await asyncio.to_thread(self._reload)

    def discard(self, prepared: Prepared) -> None:
        discard_temp(prepared.data)

    def applied_digest(self) -> str | None:
        return files.digest_of(self.paths.config)

    # --- start, supervise, stop ----------------------------------------------------------------------

    async def start(self, config: Config, base_dir: Path) -> None:
        if config.ha is None:
            self.config = config
            return
        try:
            await asyncio.to_thread(self._start, config)
        except (process.KeepalivedError, OSError) as exc:
            raise EngineError("keepalived could not be started", [str(exc)]) from None
        self.config = config

    def _start(self, config: Config) -> None:
        text = self._render(config)
        temp = self._checked_temp(text)
        running = process.adopt(self.paths)
        same = files.read_text(self.paths.config) == text
        files.replace(temp, self.paths.config)
        if running is not None:
            # the split-brain bonus of a keepalived that keeps running stays as it was
            bonus = (files.read_text(self.paths.bonus) or "0").strip()
            self.bonus = int(bonus) if bonus.isdigit() else 0
            self.pid = running
            if not same:
                process.reload(running)
                log.info("adopted keepalived (PID %d) and reloaded it on the new keepalived.conf", running)
            else:
                log.info("adopted keepalived (PID %d): it runs this keepalived.conf", running)
            return
        # a keepalived that starts afresh starts without the bonus: it holds no floating IP yet
        files.atomic_write(self.paths.bonus, "0\n")
        self.bonus = 0
        process.mark(self.paths.events, "START")
        self.pid = process.start(self.paths, self.binary)
        ha = config.ha
        log.info("keepalived started (PID %d): VRRPv3, %s, priority %d, %s", self.pid, ha.transport,
                 ha.effective_priority, "preempt" if ha.preempt else "nopreempt")  # fmt: skip

    def set_bonus(self, value: int) -> None:
        """The split-brain bonus keepalived's track script adds to this node's priority (ha/pair.py decides)."""
        if value != self.bonus:
            self.bonus = value
            files.atomic_write(self.paths.bonus, f"{value}\n")

    async def supervise(self) -> None:
        await keep_running(self, "keepalived", self._stopping, (EngineError, process.KeepalivedError, OSError), log)

    # what engines/supervisor.py asks of it
    def should_run(self) -> bool:
        return self.config is not None and self.config.ha is not None

    def is_running(self) -> bool:
        return self.pid is not None and process.alive(self.pid)

    async def start_again(self) -> None:
        assert self.config is not None
        self.on_event("UNKNOWN", "keepalived died; the controller starts it again")
        await asyncio.to_thread(self._start, self.config)

    async def stop(self) -> None:
        self._stopping.set()
        if self.pid is not None:
            pid = self.pid
            if process.alive(pid):
                process.mark(self.paths.events, "STOP")  # before SIGTERM: this node is master no longer than this
            await asyncio.to_thread(process.stop, pid)
            log.info("keepalived stopped (PID %d): the peer takes the floating IPs over", pid)
            self.pid = None

    def observe(self) -> EngineState:
        running = self.pid is not None and process.alive(self.pid)
        return EngineState(self.name, running, self.pid, self.restarts, self.error)

    def orphans(self) -> list[str]:
        found = process.adopt(self.paths)
        return [f"keepalived PID {found}"] if found is not None and found != self.pid else []
