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

Commit, undo, the applied digest, start/adopt and supervision are the shared ones of engines/rendered_daemon.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar

from ... import files as atomic
from ...model.config import Config
from ...paths import StatePaths
from ..contract import EngineError, EngineState, Prepared
from ..rendered_daemon import DaemonWork, RenderedDaemonEngine
from . import process
from .answers import NameAnswers, decide
from .render import render_conf, render_zones

log = logging.getLogger("pacslb.gslb")


@dataclass
class Work(DaemonWork):
    # action: start, restart, reload, stop; previous (the commit's snapshot): pdns.conf, zones.yaml;
    # config: the configuration this change makes run (the data follows its gslb section)
    conf: str | None = None
    zones: str | None = None
    zone_names: list[str] = field(default_factory=list)


def digest_of(config: Config, conf: str) -> str:
    section = config.gslb.model_dump(mode="json") if config.gslb is not None else None
    return atomic.sha256(conf + json.dumps(section, sort_keys=True))


class PowerDNSEngine(RenderedDaemonEngine):
    """The shared transaction (engines/rendered_daemon.py) over pdns.conf and zones.yaml. Unlike BIRD, undo
    reloads only after a commit that reloaded: `pdns_control reload` reads the zone data again, not pdns.conf, so
    a commit that restarted (a new pdns.conf) is put back by a restart on the previous one."""

    name = "powerdns"
    label = "pdns_server"
    reload_action = "reload"
    failures: ClassVar[tuple[type[BaseException], ...]] = (process.PowerDNSError,)
    log = log
    process = process
    undo_reloads_only_after_reload = True

    def __init__(self, paths: StatePaths, gate: asyncio.Lock, binary: str = process.DEFAULT_BINARY,
                 user: str = "pdns") -> None:  # fmt: skip
        super().__init__(gate)  # its `_data` lock: one writer of zones.yaml at a time, a commit or a health change
        self.files = process.Files(paths.powerdns_dir)
        self.binary = binary
        self.user = user
        self.health: dict[str, bool] = {}  # site -> up, as the GSLB checks last said (absent: up)
        self.health_changed_at: float | None = None
        self._serial = 0

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
        work = Work(action, digest, conf=conf, zones=zones, zone_names=[z.name for z in new.gslb.zones], config=new)
        return Prepared(self.name, True, digest, [step], data=work)

    async def check(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if work.zones is None:
            return
        result = await asyncio.to_thread(process.check_zones, work.zones, work.zone_names)
        if not result.ok:
            raise EngineError("PowerDNS refuses the rendered zone data (pdnsutil list-all-zones)", [result.output], refused=True)
        work.checked = True

    # --- what the shared transaction asks of it (engines/rendered_daemon.py) -------------------------

    def _read_files(self) -> tuple[str | None, str | None]:
        return atomic.read_text(self.files.config), atomic.read_text(self.files.zones)

    def _restorable(self, previous: tuple[str | None, str | None]) -> bool:
        return previous[0] is not None and previous[1] is not None

    def _write_new(self, work: DaemonWork) -> None:
        assert isinstance(work, Work) and work.conf is not None and work.zones is not None
        self._write(work.conf, work.zones)

    def _write_back(self, previous: tuple[str | None, str | None]) -> None:
        conf, zones = previous
        assert conf is not None and zones is not None
        self._write(conf, zones)

    def _write(self, conf: str, zones: str) -> None:
        self.files.dir.mkdir(parents=True, exist_ok=True)
        self.files.dir.chmod(0o755)  # the chroot: pdns_server, no longer root, reads zones.yaml in it
        process.write_public(self.files.config, conf)
        process.write_public(self.files.zones, zones)

    def _reload(self) -> None:
        process.reload(self.files)

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

    def _start(self, config: Config) -> None:
        conf, zones = self._render(config)
        result = process.check_zones(zones, [z.name for z in config.gslb.zones])
        if not result.ok:
            raise EngineError("PowerDNS refuses the rendered zone data (pdnsutil list-all-zones)", [result.output], refused=True)
        running = process.adopt(self.files)
        same_conf = atomic.read_text(self.files.config) == conf
        self._write(conf, zones)
        if self._serve(running, same_conf, digest_of(config, conf)):  # a new pdns.conf takes a restart
            log.info("adopted pdns_server (PID %d) and reloaded its zone data", running)
        else:
            log.info("pdns_server started (PID %d) on %s port %d", self.pid, config.gslb.listen.address, config.gslb.listen.port)

    def observe(self) -> EngineState:
        detail = {"reloads": self.reloads}
        if self.config is not None and self.config.gslb is not None:
            detail["listen"] = f"{self.config.gslb.listen.address}:{self.config.gslb.listen.port}"
        return EngineState(self.name, self._running(), self.pid, self.restarts, self.error, detail)
