"""BIRD 2 as an engine of the appliance (engines/contract.py): a cluster node's VIPs announced over BGP with BFD.

Wanted only when the configuration has a `cluster` section; adding or removing the section starts or stops it
within the change, like any other step.

  start      render bird.conf, check it with `bird -p`, adopt the bird that already runs this state directory
             (reconfigured, its announced routes kept) or start one announcing nothing yet
  supervise  a dead bird is started again (growing pause between attempts that fail)
  plan       bird.conf (pure); changed when it differs from what runs; a VIP the new configuration drops is
             withdrawn in the same commit
  check      `bird -p` on a scratch copy of bird.conf and the route files
  commit     the files swapped in, `birdc configure` (sessions stay up), or a start; the section gone: stop
  undo       the previous files back, `birdc configure` (or stop, when the commit started it)
  announce   `announce(vips, withheld)`: the VIPs to announce now (cluster/announce.py decides, the appliance
             calls): the route files rewritten and `birdc configure`, nothing else touched

The digest of a revision covers bird.conf only: the announced routes move with health and drain between
revisions, and a restarted controller must still recognise what it committed.

Commit, undo, the applied digest, start/adopt and supervision are the shared ones of engines/rendered_daemon.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar

from ... import files as atomic
from ...model.config import Config
from ...model.network import vip_addresses
from ...paths import StatePaths
from ..contract import EngineError, EngineState, Prepared
from ..rendered_daemon import DaemonWork, RenderedDaemonEngine
from . import process
from .render import neighbor_protocol, render_all_routes, render_conf
from .status import bfd_sessions, bgp_sessions

log = logging.getLogger("pacslb.bird")


@dataclass
class Work(DaemonWork):
    # action: start, configure, stop; previous (the commit's snapshot): bird.conf, {route file: text}
    conf: str | None = None
    routes: dict[str, str] = field(default_factory=dict)
    announced: list[str] = field(default_factory=list)
    previous_announced: list[str] = field(default_factory=list)


class BirdEngine(RenderedDaemonEngine):
    """The shared transaction (engines/rendered_daemon.py) over bird.conf and the route files it includes; undo
    always reconfigures a bird that runs (`birdc configure` reads bird.conf again whole: neighbours and timers
    too), and the announced VIPs go back with the route files."""

    name = "bird"
    label = "bird"
    reload_action = "configure"
    failures: ClassVar[tuple[type[BaseException], ...]] = (process.BirdError,)
    log = log
    process = process

    def __init__(self, paths: StatePaths, gate: asyncio.Lock, binary: str = process.DEFAULT_BINARY) -> None:
        super().__init__(gate)  # its `_data` lock: one writer of the route files at a time, a commit or an announcement
        self.files = process.Files(paths.bird_dir)
        self.binary = binary
        self.announced: list[str] = []  # what the route files say now
        self.withheld: dict[str, str] = {}  # VIP -> why it is not announced (cluster/announce.py)
        self.announced_at: float | None = None
        self.session_state: dict = {"bgp": [], "bfd": []}  # refresh_sessions()

    def wanted(self, config: Config) -> bool:
        return config.cluster is not None

    # --- the files -----------------------------------------------------------------------------------

    def _conf(self, config: Config, folder: PurePosixPath | None = None) -> str:
        assert config.cluster is not None
        return render_conf(config.cluster, folder or PurePosixPath(self.files.dir))

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        if new.cluster is None:
            if not self._running() and atomic.read_text(self.files.config) is None:
                return Prepared(self.name, False)
            return Prepared(self.name, True, None, ["bird: the cluster section is gone: bird stopped, every VIP withdrawn"],
                            data=Work("stop", config=new))  # fmt: skip
        conf = self._conf(new)
        digest = atomic.sha256(conf)
        vips = set(vip_addresses(new))
        announced = [a for a in self.announced if a in vips]  # a VIP dropped by this change is withdrawn with it
        running = self._running()
        if running and digest == self.applied_digest() and announced == self.announced:
            self.config = new
            return Prepared(self.name, False, digest)
        if running:
            step = "bird: bird.conf and the announced VIPs replaced, `birdc configure` (the BGP sessions stay up)"
        else:
            step = "bird: bird started on the new bird.conf (announcing once the node can serve)"
        action = "configure" if running else "start"
        work = Work(action, digest, conf=conf, routes=render_all_routes(announced), announced=announced, config=new)
        return Prepared(self.name, True, digest, [step], data=work)

    async def check(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if work.conf is None:
            return
        config = work.config
        assert config is not None
        result = await asyncio.to_thread(process.check, lambda folder: self._conf(config, folder), work.routes, self.binary)
        if not result.ok:
            raise EngineError("BIRD refuses the rendered configuration (bird -p)", [result.output], refused=True)
        work.checked = True

    def _read_routes(self) -> dict[str, str | None]:
        return {name: atomic.read_text(self.files.routes(name)) for name in render_all_routes([])}

    # --- what the shared transaction asks of it (engines/rendered_daemon.py) -------------------------

    def _commit(self, work: DaemonWork) -> None:
        assert isinstance(work, Work)
        work.previous_announced = list(self.announced)
        super()._commit(work)
        if work.action == "stop":
            self.announced, self.withheld = [], {}

    def _undo(self, work: DaemonWork) -> None:
        assert isinstance(work, Work)
        self.announced = list(work.previous_announced)
        super()._undo(work)

    def _read_files(self) -> tuple[str | None, dict[str, str | None]]:
        return atomic.read_text(self.files.config), self._read_routes()

    def _restorable(self, previous: tuple[str | None, dict[str, str | None]]) -> bool:
        return previous[0] is not None

    def _write_new(self, work: DaemonWork) -> None:
        assert isinstance(work, Work) and work.conf is not None
        self._write(work.conf, work.routes)
        self.announced = list(work.announced)

    def _write_back(self, previous: tuple[str | None, dict[str, str | None]]) -> None:
        conf, routes = previous
        self._write(conf, {name: text for name, text in routes.items() if text is not None})

    def _write(self, conf: str | None, routes: dict[str, str]) -> None:
        self.files.dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        for name, text in routes.items():
            process.write(self.files.routes(name), text)
        if conf is not None:
            process.write(self.files.config, conf)

    def _reload(self) -> None:
        process.configure(self.files)

    def _stopped_note(self) -> str:
        return ": its sessions closed, the routers withdraw every VIP of this node"

    # --- the announcement: what cluster/announce.py decided, made to run -----------------------------

    async def announce(self, vips: list[str], withheld: dict[str, str]) -> bool:
        """Announce exactly `vips` (withdraw the others; `withheld` says why, for observe and the log). True when the
        announced set changed and BIRD took it."""
        async with self._data:
            self.withheld = dict(withheld)
            wanted = sorted(set(vips))
            if wanted == self.announced or self.config is None or self.config.cluster is None:
                return False
            gone = [a for a in self.announced if a not in wanted]
            new = [a for a in wanted if a not in self.announced]
            try:
                await asyncio.to_thread(self._announce, wanted)
            except (process.BirdError, OSError) as exc:
                self.error = f"the announced VIPs could not be changed: {exc}"
                log.error("%s", self.error)
                return False
            for address in gone:
                log.warning("VIP %s withdrawn: %s", address, withheld.get(address, "no longer configured"))
            for address in new:
                log.warning("VIP %s announced", address)
            return True

    def _announce(self, wanted: list[str]) -> None:
        self._write(None, render_all_routes(wanted))
        self.announced = wanted
        self.announced_at = time.time()
        if self._running():
            process.configure(self.files)
            self.reloads += 1
        # not running: supervise starts it again on these files

    # --- start, supervise, stop ----------------------------------------------------------------------

    def _start(self, config: Config) -> None:
        conf = self._conf(config)
        running = process.adopt(self.files)
        if running is not None:  # a restarted controller: keep announcing what it announces until asked otherwise
            vips = set(vip_addresses(config))
            self.announced = [a for a in _announced_in(self._read_routes()) if a in vips]
        routes = render_all_routes(self.announced)
        result = process.check(lambda folder: self._conf(config, folder), routes, self.binary)
        if not result.ok:
            raise EngineError("BIRD refuses the rendered configuration (bird -p)", [result.output], refused=True)
        self._write(conf, routes)
        if self._serve(running, True, atomic.sha256(conf)):
            log.info("adopted bird (PID %d) and reconfigured it", running)
        else:
            log.info("bird started (PID %d): %d BGP session(s)", self.pid, len(config.cluster.bgp.neighbors))

    # --- observing -----------------------------------------------------------------------------------

    def refresh_sessions(self) -> dict:
        """BGP session state per neighbour and BFD session state, as BIRD reports them now (blocking: asks birdc);
        kept for `observe`, which must not block (the appliance refreshes it as it re-evaluates the announcement)."""
        self.session_state = self._sessions()
        return self.session_state

    def _sessions(self) -> dict:
        config = self.config
        if config is None or config.cluster is None or not self._running():
            return {"bgp": [], "bfd": []}
        try:
            protocols = bgp_sessions(process.birdc(self.files, "show", "protocols"))
            bfd = bfd_sessions(process.birdc(self.files, "show", "bfd", "sessions")) if config.cluster.bgp.bfd.enabled else []
        except process.BirdError as exc:
            return {"bgp": [], "bfd": [], "error": str(exc)}
        by_protocol = {s.protocol: s for s in protocols}
        bgp = []
        for index, neighbor in enumerate(config.cluster.bgp.neighbors):
            session = by_protocol.get(neighbor_protocol(index))
            row = {"neighbor": neighbor.address, "remote_as": neighbor.remote_as, "protocol": neighbor_protocol(index)}
            bgp.append({**row, **(session.as_dict() if session else {"state": "unknown", "established": False})})
        return {"bgp": bgp, "bfd": [s.as_dict() for s in bfd]}

    def observe(self) -> EngineState:
        detail: dict = {"configures": self.reloads, "announced": list(self.announced),
                        "withheld": dict(sorted(self.withheld.items())), "announced_at": self.announced_at}  # fmt: skip
        if self.config is not None and self.config.cluster is not None:
            detail.update(self.session_state)
        return EngineState(self.name, self._running(), self.pid, self.restarts, self.error, detail)


def _announced_in(routes: dict[str, str | None]) -> list[str]:
    """The VIPs the route files announce (what an adopted bird runs)."""
    found = []
    for text in routes.values():
        for line in (text or "").splitlines():
            if line.startswith("route "):
                found.append(line.split()[1].split("/")[0])
    return sorted(found)
