"""The Layer 4 part of the appliance: the nftables tables, and the health checks of Layer 4 real servers.

The controller (appliance.py) calls four things, and nothing else here knows about HAProxy:

    layer4 = Layer4(paths)
    await layer4.start(config)     # render, `nft -c`, apply (or adopt a table that already runs it), start checks
    await layer4.apply(config)     # a new configuration: element updates when only real-server states or
                                   # weights changed, else the whole table in one transaction
    await layer4.set_server(vs, rs, state=..., weight=...)   # runtime control: drain / halt / online / weight
    await layer4.stop()            # stop the checks, delete pacslb's tables

A real server that fails its check `fall` times in a row leaves its service's scheduling and
availability maps (map-element updates, `nftables.process.update_service`); `rise` passes bring it
back. Established flows are untouched: conntrack keeps NAT flows, the flow map keeps DR flows.

The applied ruleset is kept in <state>/nftables/ruleset.nft with its SHA-256 (principle 3): a restarted
controller whose rendering equals what runs adopts the tables instead of replacing them, so that
persistence and DR flow entries survive a controller restart. A killed controller leaves them serving.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..engines.nftables import process
from ..engines.nftables.render import Layer4Env, RenderError, layer4_services, render
from ..health import Checker, Target, Watch, probe_for
from ..health.service import context
from ..model.config import Config, Mode, RealServerState
from ..paths import StatePaths
from . import files

log = logging.getLogger("pacslb.layer4")


class Layer4Error(Exception):
    """The Layer 4 configuration could not be applied; what runs was left as it was."""


LAYER4_ERRORS = (Layer4Error, process.NftError, OSError)


def _structure(config: Config) -> Config:
    """The configuration with every Layer 4 real server online at weight 1: what needs a whole new table when it changes."""
    services = []
    for vs in config.virtual_services:
        if vs.mode.is_layer4:
            servers = [rs.model_copy(update={"state": RealServerState.ONLINE, "weight": 1}) for rs in vs.real_servers]
            vs = vs.model_copy(update={"real_servers": servers})
        services.append(vs)
    return config.model_copy(update={"virtual_services": services})


def _set_forwarding(config: Config) -> None:
    """NAT and SNAT route packets: turn on forwarding for the families they use (in this namespace)."""
    families = {":" in l.address for vs in layer4_services(config) if vs.mode is not Mode.LAYER4_DR for l in vs.listen}
    for v6, path in ((False, "/proc/sys/net/ipv4/ip_forward"), (True, "/proc/sys/net/ipv6/conf/all/forwarding")):
        if v6 in families:
            p = Path(path)
            if p.read_text().strip() != "1":
                p.write_text("1\n")
                log.info("turned on %s for Layer 4 NAT", path)


class Layer4:
    def __init__(self, paths: StatePaths) -> None:
        self.dir = paths.root / "nftables"
        self.ruleset = self.dir / "ruleset.nft"
        self.digest_file = self.dir / "ruleset.sha256"
        self.config: Config | None = None
        self.env = Layer4Env()
        self.checker = Checker(self._health_changed)
        self._lock = asyncio.Lock()

    # --- applying ---------------------------------------------------------------------------------------

    def _env(self, config: Config) -> Layer4Env:
        return process.discover_env(config, down=self.checker.down(), probe=True)

    def _apply_whole(self, config: Config, adopt: bool) -> None:
        env = self._env(config)
        try:
            text = render(config, env)
        except RenderError as exc:
            raise Layer4Error(f"the Layer 4 ruleset cannot be rendered: {exc}") from None
        checked = process.check(text)
        if not checked.ok:
            raise Layer4Error(f"nft refuses the rendered Layer 4 ruleset (nothing was changed):\n{checked.output}")
        digest = files.sha256(text)
        running = {t for t in process.tables() if t[1] == "pacslb"}
        wanted = {(f, "pacslb") for f, marker in (("inet", "table inet pacslb {"), ("netdev", "table netdev pacslb {")) if marker in text}
        if adopt and wanted and running == wanted and (files.read_text(self.digest_file) or "").strip() == digest:
            log.info("the nftables tables already run this configuration: adopted")
        else:
            _set_forwarding(config)
            process.apply(text)
            log.info("nftables: Layer 4 ruleset applied (%d services)", len(layer4_services(config)))
        self.dir.mkdir(parents=True, exist_ok=True)
        files.atomic_write(self.ruleset, text)
        files.atomic_write(self.digest_file, digest + "\n")
        self.env = env

    def _update(self, config: Config, names: list[str]) -> None:
        for name in names:
            process.update_service(config, self.env, name)
        # the file on disk says the same as the running table (states and weights included)
        text = render(config, self.env)
        files.atomic_write(self.ruleset, text)
        files.atomic_write(self.digest_file, files.sha256(text) + "\n")

    def _watches(self, config: Config) -> list[Watch]:
        watches = []
        for vs in layer4_services(config):
            probe = probe_for(vs.health_check, context(vs))  # the same probes as Layer 7 (health/service.py)
            if probe is None:
                continue
            check = vs.health_check
            for rs in vs.real_servers:
                port = check.port or rs.port or vs.listen[0].port.first
                watches.append(
                    Watch((vs.name, rs.name), Target(rs.address, port), probe, check.interval.seconds, check.rise, check.fall)
                )
        return watches

    async def start(self, config: Config) -> None:
        async with self._lock:
            if layer4_services(config):
                await asyncio.to_thread(self._apply_whole, config, True)
            else:
                try:  # tables left by an earlier run whose configuration had Layer 4 services
                    if any(t[1] == "pacslb" for t in await asyncio.to_thread(process.tables)):
                        await asyncio.to_thread(process.remove)
                except (process.NftError, OSError) as exc:
                    log.warning("cannot look for leftover pacslb nftables tables: %s", exc)
            self.config = config
            self.checker.replace(self._watches(config))

    async def apply(self, config: Config) -> None:
        """Apply a new configuration: element updates when only states and weights changed."""
        async with self._lock:
            old = self.config
            if old is not None and _structure(old) == _structure(config) and layer4_services(config):
                changed = [
                    vs.name for vs in layer4_services(config) if vs != old.service(vs.name)
                ]
                if changed:
                    await asyncio.to_thread(self._update, config, changed)
                    log.info("nftables: real servers of %s updated in place", ", ".join(changed))
            elif layer4_services(config):
                await asyncio.to_thread(self._apply_whole, config, False)
            else:
                await asyncio.to_thread(process.remove)
            self.config = config
            self.checker.replace(self._watches(config))

    async def set_server(self, service: str, server: str, state: RealServerState | None = None, weight: int | None = None) -> None:
        """Runtime control of one Layer 4 real server (drain, halt, online, weight): map-element updates only."""
        if self.config is None:
            raise Layer4Error("Layer 4 is not running")
        vs = self.config.service(service)
        if vs is None or not vs.mode.is_layer4 or not any(rs.name == server for rs in vs.real_servers):
            raise Layer4Error(f"no Layer 4 real server {service}/{server}")
        update = {k: v for k, v in (("state", state), ("weight", weight)) if v is not None}
        servers = [rs.model_copy(update=update) if rs.name == server else rs for rs in vs.real_servers]
        services = [v.model_copy(update={"real_servers": servers}) if v.name == service else v for v in self.config.virtual_services]
        await self.apply(self.config.model_copy(update={"virtual_services": services}))

    async def _health_changed(self, watch: Watch) -> None:
        async with self._lock:
            if self.config is None:
                return
            self.env = Layer4Env(
                vip_devices=self.env.vip_devices,
                routes=self.env.routes,
                link_macs=self.env.link_macs,
                neighbours=self.env.neighbours,
                down=self.checker.down(),
            )
            await asyncio.to_thread(self._update, self.config, [watch.key[0]])

    async def stop(self) -> None:
        await self.checker.close()
        async with self._lock:
            if self.config is not None and layer4_services(self.config):
                try:
                    await asyncio.to_thread(process.remove)
                    log.info("nftables: pacslb's tables removed")
                except process.NftError as exc:
                    log.error("removing pacslb's nftables tables failed: %s", exc)
            self.config = None
