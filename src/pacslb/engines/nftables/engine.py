"""nftables as an engine of the appliance (engines/contract.py): the Layer 4 tables (NAT, SNAT, DR).

  start      render, `nft -c`, apply the tables, or adopt the tables that already run this ruleset
             (persistence and DR flow entries survive a controller restart); tables left by an earlier
             run whose configuration had Layer 4 services are removed
  plan       element updates when only real servers' states or weights changed, the whole ruleset in
             one nft transaction when anything else of a Layer 4 service changed, or removal
  check      render with what the host has (routes, VIP devices, neighbours) and `nft -c`
  commit     element updates, or the ruleset in one transaction
  undo       the previous configuration's ruleset again
  stop       pacslb's tables deleted

The appliance's own checks of Layer 4 real servers (health/layer4.py) report here through
`health_changed`: a real server that is down leaves its service's scheduling and availability maps
(map-element updates); established flows are untouched (conntrack keeps NAT flows, the flow map DR flows).

The applied ruleset is kept in <state>/nftables/ruleset.nft with its SHA-256 (principle 3).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from ... import files
from ...model.config import Config, Mode, RealServerState
from ...paths import StatePaths
from ..contract import EngineError, EngineState, Prepared
from . import process
from .render import Layer4Env, RenderError, layer4_services, render

log = logging.getLogger("pacslb.layer4")

NFT_ERRORS = (process.NftError, OSError, RenderError)


def _structure(config: Config) -> tuple:
    """The Layer 4 services with every real server online at weight 1, and the settings: what needs a whole new
    table when it changes (Layer 7 services are HAProxy's and change nothing here)."""
    services = []
    for vs in layer4_services(config):
        servers = [rs.model_copy(update={"state": RealServerState.ONLINE, "weight": 1}) for rs in vs.real_servers]
        services.append(vs.model_copy(update={"real_servers": servers}))
    return tuple(services), config.settings


def _set_forwarding(config: Config) -> None:
    """NAT and SNAT route packets: turn on forwarding for the families they use (in this namespace)."""
    families = {":" in lis.address for vs in layer4_services(config) if vs.mode is not Mode.LAYER4_DR for lis in vs.listen}
    for v6, path in ((False, "/proc/sys/net/ipv4/ip_forward"), (True, "/proc/sys/net/ipv6/conf/all/forwarding")):
        if v6 in families:
            p = Path(path)
            if p.read_text().strip() != "1":
                p.write_text("1\n")
                log.info("turned on %s for Layer 4 NAT", path)


@dataclass
class Work:
    """nftables' part of one change (Prepared.data): `how` is update, whole or remove."""

    how: str
    old: Config
    new: Config
    services: list[str]
    env: Layer4Env | None = None
    text: str | None = None


class NftablesEngine:
    name = "nftables"

    def __init__(self, paths: StatePaths) -> None:
        self.dir = paths.nftables_dir
        self.ruleset = paths.nftables_ruleset
        self.digest_file = paths.nftables_applied
        self.config: Config | None = None
        self.env = Layer4Env()
        self.down: frozenset[tuple[str, str]] = frozenset()  # real servers the Layer 4 checks found down
        self._lock = asyncio.Lock()  # one nft transaction at a time (changes and health updates)
        self._stopping = asyncio.Event()

    def wanted(self, config: Config) -> bool:
        return bool(layer4_services(config))

    # --- the ruleset ---------------------------------------------------------------------------------

    def _env(self, config: Config) -> Layer4Env:
        return process.discover_env(config, down=self.down, probe=True)

    def _render(self, config: Config, env: Layer4Env) -> str:
        try:
            return render(config, env)
        except RenderError as exc:
            raise EngineError("the Layer 4 ruleset cannot be rendered", [str(exc)]) from None

    def _keep(self, text: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        files.atomic_write(self.ruleset, text)
        files.atomic_write(self.digest_file, files.sha256(text) + "\n")

    def _apply_whole(self, config: Config, adopt: bool, env: Layer4Env | None = None, text: str | None = None) -> None:
        env = env or self._env(config)
        text = text if text is not None else self._render(config, env)
        checked = process.check(text)
        if not checked.ok:
            raise EngineError("nft refuses the rendered Layer 4 ruleset (nothing was changed)", [checked.output], refused=True)
        digest = files.sha256(text)
        running = {t for t in process.tables() if t[1] == "pacslb"}
        wanted = {(f, "pacslb") for f, marker in (("inet", "table inet pacslb {"), ("netdev", "table netdev pacslb {"))
                  if marker in text}  # fmt: skip
        if adopt and wanted and running == wanted and self.applied_digest() == digest:
            log.info("the nftables tables already run this configuration: adopted")
        else:
            _set_forwarding(config)
            process.apply(text)
            log.info("nftables: Layer 4 ruleset applied (%d services)", len(layer4_services(config)))
        self._keep(text)
        self.env = env

    def _update(self, config: Config, names: list[str]) -> None:
        for name in names:
            process.update_service(config, self.env, name)
        self._keep(render(config, self.env))  # the file on disk says the same as the running table

    def _remove(self) -> None:
        """Delete pacslb's tables, when this state directory applied them (another appliance's are left alone)."""
        if not self.digest_file.exists() and not (self.config is not None and layer4_services(self.config)):
            return
        if any(t[1] == "pacslb" for t in process.tables()):
            process.remove()
            log.info("nftables: pacslb's tables removed")
        self.ruleset.unlink(missing_ok=True)
        self.digest_file.unlink(missing_ok=True)

    # --- the contract --------------------------------------------------------------------------------

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        before, after = layer4_services(old), layer4_services(new)
        changed = sorted({vs.name for vs in after if vs != old.service(vs.name)}
                         | {vs.name for vs in before if new.service(vs.name) is None or not new.service(vs.name).mode.is_layer4})  # fmt: skip
        if not changed and not (before and not after):
            return Prepared(self.name, False)
        if not after:
            work = Work("remove", old, new, changed)
            steps = ["nftables: pacslb's tables removed (no Layer 4 service is left)"]
        elif self.config is not None and _structure(old) == _structure(new):
            work = Work("update", old, new, changed)
            steps = [f"nftables: real servers of {', '.join(changed)} updated in place (map elements)"]
        else:
            work = Work("whole", old, new, changed)
            steps = [f"nftables: the Layer 4 ruleset replaced in one transaction ({', '.join(changed)})"]
        return Prepared(self.name, True, steps=steps, data=work)

    async def check(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        if work.how == "remove":
            return
        try:
            await asyncio.to_thread(self._check, work, prepared)
        except NFT_ERRORS as exc:
            raise EngineError("Layer 4 (nftables) refused the change", [str(exc)]) from None

    def _check(self, work: Work, prepared: Prepared) -> None:
        work.env = self.env if work.how == "update" else self._env(work.new)
        work.text = self._render(work.new, work.env)
        if work.how == "whole":
            checked = process.check(work.text)
            if not checked.ok:
                raise EngineError(
                    "nft refuses the rendered Layer 4 ruleset (nothing was changed)", [checked.output], refused=True
                )
        prepared.digest = files.sha256(work.text)

    async def commit(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        async with self._lock:
            try:
                if work.how == "update":
                    await asyncio.to_thread(self._update, work.new, work.services)
                    log.info("nftables: real servers of %s updated in place", ", ".join(work.services))
                elif work.how == "whole":
                    await asyncio.to_thread(self._apply_whole, work.new, False, work.env, work.text)
                else:
                    await asyncio.to_thread(self._remove)
            except NFT_ERRORS as exc:
                raise EngineError("Layer 4 (nftables) refused the change", [str(exc)]) from None
            self.config = work.new

    async def undo(self, prepared: Prepared) -> None:
        work: Work = prepared.data
        async with self._lock:
            try:
                if work.how == "update":
                    await asyncio.to_thread(self._update, work.old, work.services)
                elif layer4_services(work.old):
                    await asyncio.to_thread(self._apply_whole, work.old, False)
                else:
                    await asyncio.to_thread(self._remove)
            except NFT_ERRORS as exc:
                raise EngineError("Layer 4 (nftables) could not be set back", [str(exc)]) from None
            self.config = work.old

    def discard(self, prepared: Prepared) -> None:
        return None  # nothing was written before commit

    def applied_digest(self) -> str | None:
        return (files.read_text(self.digest_file) or "").strip() or None

    async def start(self, config: Config, base_dir: Path) -> None:
        async with self._lock:
            try:
                if layer4_services(config):
                    await asyncio.to_thread(self._apply_whole, config, True)
                else:  # tables left by an earlier run whose configuration had Layer 4 services
                    await asyncio.to_thread(self._remove)
            except NFT_ERRORS as exc:
                raise EngineError("Layer 4 (nftables) could not be started", [str(exc)]) from None
            self.config = config

    async def supervise(self) -> None:
        await self._stopping.wait()  # the kernel keeps the tables: nothing to restart

    async def health_changed(self, service: str, down: frozenset[tuple[str, str]]) -> None:
        """A Layer 4 real server of `service` went down or came back (health/layer4.py): update its maps."""
        async with self._lock:
            self.down = down
            if self.config is None or self._stopping.is_set():
                return
            self.env = Layer4Env(vip_devices=self.env.vip_devices, routes=self.env.routes, link_macs=self.env.link_macs,
                                 neighbours=self.env.neighbours, down=down)  # fmt: skip
            await asyncio.to_thread(self._update, self.config, [service])

    async def stop(self) -> None:
        self._stopping.set()
        async with self._lock:
            try:
                await asyncio.to_thread(self._remove)
            except (process.NftError, OSError) as exc:
                log.error("removing pacslb's nftables tables failed: %s", exc)
            self.config = None

    def observe(self) -> EngineState:
        services = len(layer4_services(self.config)) if self.config is not None else 0
        return EngineState(self.name, self.config is not None and services > 0, detail={"services": services})

    def orphans(self) -> list[str]:
        if self.config is not None and layer4_services(self.config):
            return []
        try:
            return [f"nftables table {f} {n}" for f, n in process.tables() if n == "pacslb"]
        except (process.NftError, OSError):
            return []
