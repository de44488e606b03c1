"""PowerDNS Authoritative as an engine of the appliance (engines/contract.py): the GSLB answers (issue 19).

Wanted only when the configuration has a `gslb` section; adding or removing the section starts or stops it
within the change, like any other step.

  start      render pdns.conf and zones.yaml, check the data with PowerDNS's own parser, adopt the pdns_server
             that already runs this state directory (reloaded, or restarted when pdns.conf differs), or start one
  supervise  a dead pdns_server is started again (growing pause between attempts that fail)
  plan       both files; changed when the gslb section or pdns.conf differs from what runs
  check      `pdnsutil list-all-zones` on the new data (in a scratch folder)
  commit     the files swapped in; data only: `pdns_control reload`; pdns.conf changed: restart
  undo       the previous files back, reloaded (or restarted, or stopped when the commit started it)
  health     `health_changed(site -> up)` renders the data again and reloads it: the answers change without a
             restart, well within one check interval plus 1 s (a reload takes about 60 ms here)

The digest of a revision covers pdns.conf and the gslb section, not the health-dependent data: health moves
the answers between revisions, and a restarted controller must still recognise what it committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ... import files as atomic
from ...model.config import Config
from ...paths import StatePaths
from ..contract import EngineError, EngineState, Prepared
from ..supervisor import keep_running
from . import process
from .answers import NameAnswers, decide
from .render import render_conf, render_zones

log = logging.getLogger("pacslb.gslb")


@dataclass
class Work:
    action: str  # start, restart, reload, stop
    conf: str | None = None
    zones: str | None = None
    digest: str | None = None
    checked: bool = False
    previous: tuple[str | None, str | None, str | None] = (None, None, None)  # conf, zones, applied digest
    was_running: bool = False
    swapped: bool = False
    zone_names: list[str] = field(default_factory=list)
    config: Config | None = None  # the configuration this change makes run (the data follows its gslb section)
    before: Config | None = None


def digest_of(config: Config, conf: str) -> str:
    section = config.gslb.model_dump(mode="json") if config.gslb is not None else None
    return atomic.sha256(conf + json.dumps(section, sort_keys=True))


class PowerDNSEngine:
    name = "powerdns"

    def __init__(self, paths: StatePaths, gate: asyncio.Lock, binary: str = process.DEFAULT_BINARY,
                 user: str = "pdns") -> None:  # fmt: skip
        self.files = process.Files(paths.powerdns_dir)
        self.gate = gate
        self.binary = binary
        self.user = user
        self.pid: int | None = None
        self.restarts = 0
        self.reloads = 0
        self.error: str | None = None
        self.config: Config | None = None
        self.health: dict[str, bool] = {}  # site -> up, as the GSLB checks last said (absent: up)
        self.health_changed_at: float | None = None
        self._serial = 0
        self._data = asyncio.Lock()  # one writer of zones.yaml at a time: a commit or a health change
        self._stopping = asyncio.Event()

    def wanted(self, config: Config) -> bool:
        return config.gslb is not None

    # --- the files -----------------------------------------------------------------------------------

    def _next_serial(self) -> int:
        """SOA serial: the time, kept increasing (resolvers and tools compare serials)."""
        self._serial = max(self._serial + 1, int(time.time()))
        return self._serial

    def _render(self, config: Config) -> tuple[str, str]:
        assert config.gslb is not None
        conf = render_conf(config.gslb, PurePosixPath(self.files.dir), self.user)
        return conf, render_zones(config.gslb, self.health, self._next_serial())

    def _running(self) -> bool:
        return self.pid is not None and process.alive(self.pid)

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        if new.gslb is None:
            if not self._running() and atomic.read_text(self.files.config) is None:
                return Prepared(self.name, False)
            work = Work("stop", config=new)
            return Prepared(self.name, True, None, ["powerdns: the gslb section is gone: pdns_server stopped"], data=work)
        conf, zones = self._render(new)
        digest = digest_of(new, conf)
        running = self._running()
        if running and digest == self.applied_digest():
            self.config = new  # the same section: the data stays as it is
            return Prepared(self.name, False, digest)
        if not running:
            action, step = "start", "powerdns: pdns_server started on the new pdns.conf and zones.yaml"
        elif conf != atomic.read_text(self.files.config):
            action, step = "restart", "powerdns: pdns.conf replaced, pdns_server restarted (a new listen address)"
        else:
            action, step = "reload", "powerdns: zones.yaml replaced and reloaded (pdns_control reload, no restart)"
        work = Work(action, conf, zones, digest, zone_names=[z.name for z in new.gslb.zones], config=new)
        return Prepared(self.name, True, digest, [step], data=work)

    async def check(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if work.zones is None:
            return
        result = await asyncio.to_thread(process.check_zones, work.zones, work.zone_names)
        if not result.ok:
            raise EngineError("PowerDNS refuses the rendered zone data (pdnsutil list-all-zones)", [result.output], refused=True)
        work.checked = True

    async def commit(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        async with self._data:
            await asyncio.to_thread(self._commit, work)

    def _commit(self, work: Work) -> None:
        f = self.files
        work.previous = (atomic.read_text(f.config), atomic.read_text(f.zones), atomic.read_text(f.applied))
        work.was_running = self._running()
        work.swapped = True
        work.before, self.config = self.config, work.config
        if work.action == "stop":
            self._stop_now()
            f.applied.unlink(missing_ok=True)
            return
        assert work.checked and work.conf is not None and work.zones is not None, "check before commit"
        self._write(work.conf, work.zones)
        try:
            if work.action == "reload":
                process.reload(f)
                self.reloads += 1
            else:
                self._stop_now()
                self.pid = process.start(f, self.binary)
                log.info("pdns_server started (PID %d)", self.pid)
        except (process.PowerDNSError, OSError) as exc:
            raise EngineError(f"pdns_server could not {work.action}", [str(exc)]) from None
        atomic.atomic_write(f.applied, (work.digest or "") + "\n")

    def _write(self, conf: str, zones: str) -> None:
        self.files.dir.mkdir(parents=True, exist_ok=True)
        self.files.dir.chmod(0o755)  # the chroot: pdns_server, no longer root, reads zones.yaml in it
        process.write_public(self.files.config, conf)
        process.write_public(self.files.zones, zones)

    def _stop_now(self) -> None:
        if self.pid is not None:
            process.stop(self.pid)
            log.info("pdns_server stopped (PID %d)", self.pid)
            self.pid = None

    async def undo(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if not work.swapped:
            return
        async with self._data:
            await asyncio.to_thread(self._undo, work)

    def _undo(self, work: Work) -> None:
        conf, zones, applied = work.previous
        self.config = work.before
        if conf is None or zones is None or not work.was_running:
            self._stop_now()  # nothing ran before this commit
            self.files.applied.unlink(missing_ok=True)
            return
        self._write(conf, zones)
        if applied is not None:
            atomic.atomic_write(self.files.applied, applied)
        try:
            if self._running() and work.action == "reload":
                process.reload(self.files)
            else:
                self._stop_now()
                self.pid = process.start(self.files, self.binary)
        except (process.PowerDNSError, OSError) as exc:
            raise EngineError("pdns_server could not be put back on its previous files", [str(exc)]) from None

    def discard(self, prepared: Prepared) -> None:
        return None  # the check works in a scratch folder it removes itself

    def applied_digest(self) -> str | None:
        text = atomic.read_text(self.files.applied)
        return text.strip() if text else None

    # --- health: the answers follow the sites' checks without a restart ------------------------------

    async def health_changed(self, health: dict[str, bool]) -> None:
        """The GSLB checks decided a site's state changed: render the data again and reload it."""
        self.health = dict(health)
        self.health_changed_at = time.time()
        config = self.config
        if config is None or config.gslb is None:
            return
        async with self._data:
            if not self._running():
                return  # supervise starts it again on these files, rendered with this health
            zones = render_zones(config.gslb, self.health, self._next_serial())
            try:
                await asyncio.to_thread(self._reload_zones, zones)
            except (process.PowerDNSError, OSError) as exc:
                self.error = f"the new answers could not be loaded: {exc}"
                log.error("%s", self.error)

    def _reload_zones(self, zones: str) -> None:
        process.write_public(self.files.zones, zones)
        process.reload(self.files)
        self.reloads += 1
        down = sorted(site for site, up in self.health.items() if not up)
        log.warning("GSLB answers reloaded: sites down: %s", ", ".join(down) or "none")

    def answers(self) -> list[NameAnswers]:
        """What every name answers now, to which clients and why (status, API, WebUI)."""
        config = self.config
        if config is None or config.gslb is None:
            return []
        return decide(config.gslb, self.health)

    # --- start, supervise, stop ----------------------------------------------------------------------

    async def start(self, config: Config, base_dir: Path) -> None:
        self.config = config
        if config.gslb is None:
            return
        try:
            async with self._data:
                await asyncio.to_thread(self._start, config)
        except (process.PowerDNSError, OSError) as exc:
            raise EngineError("pdns_server could not be started", [str(exc)]) from None

    def _start(self, config: Config) -> None:
        conf, zones = self._render(config)
        result = process.check_zones(zones, [z.name for z in config.gslb.zones])
        if not result.ok:
            raise EngineError("PowerDNS refuses the rendered zone data (pdnsutil list-all-zones)", [result.output], refused=True)
        running = process.adopt(self.files)
        same_conf = atomic.read_text(self.files.config) == conf
        self._write(conf, zones)
        if running is not None and same_conf:
            self.pid = running
            process.reload(self.files)
            log.info("adopted pdns_server (PID %d) and reloaded its zone data", running)
        else:
            if running is not None:
                process.stop(running)
            self.pid = process.start(self.files, self.binary)
            log.info("pdns_server started (PID %d) on %s port %d", self.pid, config.gslb.listen.address, config.gslb.listen.port)
        atomic.atomic_write(self.files.applied, digest_of(config, conf) + "\n")

    async def supervise(self) -> None:
        await keep_running(self, "pdns_server", self._stopping, (EngineError, process.PowerDNSError, OSError), log)

    # what engines/supervisor.py asks of it
    def should_run(self) -> bool:
        config = self.config  # never started, or stopped by a change: nothing to keep alive
        return config is not None and config.gslb is not None and self.pid is not None

    def is_running(self) -> bool:
        return self._running()

    async def start_again(self) -> None:
        assert self.config is not None
        async with self._data:
            await asyncio.to_thread(self._start, self.config)

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.to_thread(self._stop_now)

    def observe(self) -> EngineState:
        detail = {"reloads": self.reloads}
        if self.config is not None and self.config.gslb is not None:
            detail["listen"] = f"{self.config.gslb.listen.address}:{self.config.gslb.listen.port}"
        return EngineState(self.name, self._running(), self.pid, self.restarts, self.error, detail)

    def orphans(self) -> list[str]:
        found = process.adopt(self.files)
        return [f"pdns_server PID {found}"] if found is not None and found != self.pid else []
