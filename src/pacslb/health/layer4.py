"""The appliance's checks of Layer 4 real servers: the same probes as Layer 7 (health/service.py), with the
results sent to the nftables engine, which takes a down real server out of its service's maps.

    checks = Layer4Checks(on_change)   # on_change(service, down) -> awaitable; the composition root wires it
    checks.replace(config)             # after every applied configuration: changed watches restart
    await checks.close()
"""

from __future__ import annotations

from typing import Awaitable, Callable

from ..model.config import Config
from .base import Target
from .probes import probe_for
from .runner import Checker, Watch
from .service import context

OnChange = Callable[[str, frozenset[tuple[str, str]]], Awaitable[None]]


def layer4_watches(config: Config) -> list[Watch]:
    """One watch per real server of every checked Layer 4 service (the check port: health_check.port, the
    real server's port, else the service's first port)."""
    watches = []
    for vs in config.virtual_services:
        if not vs.mode.is_layer4:
            continue
        probe = probe_for(vs.health_check, context(vs))
        if probe is None:
            continue
        check = vs.health_check
        for rs in vs.real_servers:
            port = check.port or rs.port or vs.listen[0].port.first
            watches.append(Watch((vs.name, rs.name), Target(rs.address, port), probe, check.interval.seconds,
                                 check.rise, check.fall))  # fmt: skip
    return watches


class Layer4Checks:
    def __init__(self, on_change: OnChange) -> None:
        self.on_change = on_change
        self.checker = Checker(self._changed)
        self.config: Config | None = None

    async def _changed(self, watch: Watch) -> None:
        await self.on_change(watch.key[0], self.checker.down())

    def replace(self, config: Config) -> None:
        self.config = config
        self.checker.replace(layer4_watches(config))

    def check_results(self) -> dict[tuple[str, str], dict]:
        """The last result of every watched Layer 4 real server, for `pacslb status` (safe from a thread)."""
        results: dict[tuple[str, str], dict] = {}
        for key, watch in list(self.checker.watches.items()):
            vs = self.config.service(key[0]) if self.config else None
            results[key] = {
                "type": vs.health_check.type if vs else None,
                "up": watch.up if watch.decided else None,
                "reason": watch.last.reason if watch.last else None,
                "changed_at": watch.changed_at,
            }
        return results

    async def close(self) -> None:
        await self.checker.close()
