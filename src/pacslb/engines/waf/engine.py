"""Apache with ModSecurity and the OWASP CRS as an engine of the appliance (engines/contract.py): the WAF tier.

Wanted only when a layer7-http service or rule has a WAF policy that is not off (model/waf.py), so that
nothing changes for a configuration without one. It comes first in the commit order: a policy added is
served by Apache before HAProxy sends requests to it (engines/haproxy/waf.py).

  start      render apache.conf, `apache2 -t`, adopt the Apache that already runs on this state directory
             (a graceful restart when its file differs), or start one
  supervise  a dead Apache is started again (growing pause between attempts that fail)
  plan       the new apache.conf; changed when it differs from the one that runs (or Apache must stop)
  check      `apache2 -t` on it in a temporary file
  commit     the file swapped in and a graceful restart (SIGUSR1) confirmed by the log; Apache started
             when it did not run; stopped when no policy is left
  undo       the previous file back, and Apache restarted on it (or stopped, if it did not run before)
  stop       SIGTERM
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from ... import files
from ...model.config import Config
from ...model.waf import policies, policy_ports
from ..contract import EngineError, EngineState, Prepared, discard_temp
from ..supervisor import keep_running
from . import process
from .paths import WafPaths
from .render import WafEnv, render

log = logging.getLogger("pacslb.waf")


@dataclass
class Work:
    text: str | None  # None: no policy is left, Apache stops
    temp: Path | None = None
    previous: str | None = None
    was_running: bool = False
    swapped: bool = False
    new_ports: tuple[int, ...] = ()  # loopback ports Apache does not hold yet: they must be free


class WafEngine:
    name = "waf"

    def __init__(self, state_dir: Path, gate: asyncio.Lock, binary: str = process.DEFAULT_BINARY) -> None:
        self.state_dir = state_dir
        self.paths = WafPaths(state_dir)
        self.gate = gate
        self.binary = binary
        self.pid: int | None = None
        self.restarts = 0
        self.error: str | None = None
        self.config: Config | None = None
        self._stopping = asyncio.Event()

    def wanted(self, config: Config) -> bool:
        return bool(policies(config))

    def _render(self, config: Config) -> str:
        try:
            return render(config, WafEnv(self.state_dir))
        except ValueError as exc:
            raise EngineError("the WAF's apache.conf cannot be rendered", [str(exc)]) from None

    def _checked_temp(self, text: str) -> Path:
        process.prepare(self.paths)
        temp = files.temp_file(self.paths.dir, ".apache.conf.", text)
        result = process.check(temp, self.binary)
        if not result.ok:
            temp.unlink(missing_ok=True)
            raise EngineError("Apache refuses the rendered WAF configuration (apache2 -t)", [result.output], refused=True)
        return temp

    def _running(self) -> bool:
        return self.pid is not None and process.alive(self.pid)

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        if not self.wanted(new):
            if not self._running():
                return Prepared(self.name, False)
            return Prepared(self.name, True, None, ["waf: Apache stopped (no service has a WAF policy)"], data=Work(None))
        text = self._render(new)
        changed = text != files.read_text(self.paths.config) or not self._running()
        names = ", ".join(name for name, _, _ in policies(new))
        steps = [f"waf: apache.conf replaced and Apache restarted gracefully (policies: {names})"] if changed else []
        held = set(policy_ports(old)) if self._running() else set()
        new_ports = tuple(p for p in policy_ports(new) if p not in held)
        return Prepared(self.name, changed, files.sha256(text), steps, data=Work(text, new_ports=new_ports))

    async def check(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if work.text is not None:
            # a graceful restart that cannot bind a port makes Apache's parent exit: refuse before anything changes
            taken = [port for port in work.new_ports if not process.port_free(port)]
            if taken:
                raise EngineError(
                    f"the WAF tier needs 127.0.0.1 port(s) {', '.join(map(str, taken))}, which another program holds",
                    ["choose settings.waf.first_port so that one port per WAF policy is free"],
                    refused=True,
                )
            work.temp = await asyncio.to_thread(self._checked_temp, work.text)

    async def commit(self, prepared: Prepared) -> None:
        try:
            await asyncio.to_thread(self._commit, prepared.data)
        except (process.ApacheError, OSError) as exc:
            raise EngineError("the WAF tier (Apache) did not take the new configuration", [str(exc)]) from None

    def _commit(self, work: Work) -> None:
        work.previous = files.read_text(self.paths.config)
        work.was_running = self._running()
        if work.text is None:
            self._stop_apache()
            self.paths.config.unlink(missing_ok=True)
            work.swapped = True
            return
        assert work.temp is not None, "check before commit"
        files.replace(work.temp, self.paths.config)
        work.temp, work.swapped = None, True
        self._serve()

    def _serve(self) -> None:
        """Apache on the file that is in place: a graceful restart, or a start when it does not run."""
        if self._running():
            assert self.pid is not None
            process.reload(self.pid, self.paths)
            log.info("Apache (WAF, PID %d) restarted gracefully", self.pid)
            return
        self.pid = process.start(self.paths, self.binary)
        log.info("Apache (WAF) started (PID %d)", self.pid)

    def _stop_apache(self) -> None:
        if self.pid is not None:
            process.stop(self.pid)
            log.info("Apache (WAF, PID %d) stopped", self.pid)
            self.pid = None

    async def undo(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if not work.swapped:
            return
        await asyncio.to_thread(self._undo, work)

    def _undo(self, work: Work) -> None:
        try:
            if work.previous is None or not work.was_running:
                self._stop_apache()
                if work.previous is None:
                    self.paths.config.unlink(missing_ok=True)
                else:
                    files.atomic_write(self.paths.config, work.previous)
                return
            files.atomic_write(self.paths.config, work.previous)
            self._serve()
        except (process.ApacheError, OSError) as exc:
            raise EngineError("the WAF tier could not be put back on its previous configuration", [str(exc)]) from None

    def discard(self, prepared: Prepared) -> None:
        discard_temp(prepared.data)

    def applied_digest(self) -> str | None:
        return files.digest_of(self.paths.config)

    # --- start, supervise, stop ----------------------------------------------------------------------

    async def start(self, config: Config, base_dir: Path) -> None:
        self.config = config
        try:
            await asyncio.to_thread(self._start, config)
        except (process.ApacheError, OSError) as exc:
            raise EngineError("the WAF tier (Apache) could not be started", [str(exc)]) from None

    def _start(self, config: Config) -> None:
        running = process.adopt(self.paths)
        if not self.wanted(config):
            if running is not None:  # a WAF left by the previous controller, no longer configured
                process.stop(running)
            self.paths.config.unlink(missing_ok=True)
            return
        text = self._render(config)
        temp = self._checked_temp(text)
        same = files.read_text(self.paths.config) == text
        files.replace(temp, self.paths.config)
        if running is not None:
            self.pid = running
            if not same:
                process.reload(running, self.paths)
                log.info("adopted Apache (WAF, PID %d) and restarted it on the new apache.conf", running)
            else:
                log.info("adopted Apache (WAF, PID %d): it runs this apache.conf", running)
            return
        taken = [port for port in policy_ports(config) if not process.port_free(port)]
        if taken:
            raise process.ApacheError(
                f"127.0.0.1 port(s) {', '.join(map(str, taken))} are held by another program: choose settings.waf.first_port "
                "so that one port per WAF policy is free"
            )
        self.pid = process.start(self.paths, self.binary)
        log.info("Apache (WAF) started (PID %d)", self.pid)

    async def supervise(self) -> None:
        await keep_running(self, "Apache (WAF)", self._stopping, (process.ApacheError, OSError), log)

    # what engines/supervisor.py asks of it
    def should_run(self) -> bool:
        return self.paths.config.exists()  # the configuration file is the truth: it exists while some policy is applied

    def is_running(self) -> bool:
        return self._running()

    async def start_again(self) -> None:
        self.pid = await asyncio.to_thread(process.start, self.paths, self.binary)

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.to_thread(self._stop_apache)
        await asyncio.to_thread(process.remove_run, self.paths)

    def observe(self) -> EngineState:
        return EngineState(self.name, self._running(), self.pid, self.restarts, self.error)

    def orphans(self) -> list[str]:
        found = process.adopt(self.paths)
        return [f"Apache (WAF) PID {found}"] if found is not None and found != self.pid else []
