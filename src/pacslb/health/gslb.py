"""The health of GSLB sites: the appliance's own probes against each site's address (every check type the
appliance runs itself: http/https, connect, dicom-echo, hl7, amqp, external), and, for a site that is this
appliance, the state of its local virtual service. The result goes to the PowerDNS engine, which reloads the
answers (engines/powerdns/engine.py `health_changed`).

    checks = GslbChecks(on_change, local_up)   # on_change(site -> up) -> awaitable; local_up() -> {service: up}
    checks.replace(config)                     # after every applied configuration
    await checks.close()

A site is up when its check passes (a site without one counts as up) and, with `virtual_service`, while that
service is up. A new watch counts as up until `fall` failures (as HAProxy counts a new server), so a
restarted controller does not move every client on its first results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

from ..model.config import Config
from .base import CheckContext, Target
from .probes import probe_for
from .runner import Checker, Watch

log = logging.getLogger("pacslb.gslb")

OnChange = Callable[[dict[str, bool]], Awaitable[None]]
LocalUp = Callable[[], Awaitable[dict[str, bool]]]

LOCAL_POLL_INTERVAL = 0.5  # how often a site that is this appliance asks its virtual service's state


def site_watches(config: Config) -> list[Watch]:
    """One watch per checked site, keyed ("gslb", site)."""
    if config.gslb is None:
        return []
    found = []
    for site in config.gslb.sites:
        check = site.health_check
        probe = probe_for(check, CheckContext(vip=site.checked_address, vip_port=getattr(check, "port", None)))
        if probe is None:
            continue
        port = check.port or 0  # validation: checks that connect have a port
        found.append(Watch(("gslb", site.name), Target(site.checked_address, port), probe, check.interval.seconds,
                           check.rise, check.fall))  # fmt: skip
    return found


def site_health(config: Config, checked: dict[str, bool], local: dict[str, bool]) -> dict[str, bool]:
    """Pure: every site's state from its check (absent: up) and its local virtual service (absent: up)."""
    if config.gslb is None:
        return {}
    health = {}
    for site in config.gslb.sites:
        up = checked.get(site.name, True)
        if site.virtual_service is not None:
            up = up and local.get(site.virtual_service, True)
        health[site.name] = up
    return health


class GslbChecks:
    def __init__(self, on_change: OnChange, local_up: LocalUp) -> None:
        self.on_change = on_change
        self.local_up = local_up
        self.checker = Checker(self._checked)
        self.config: Config | None = None
        self.local: dict[str, bool] = {}
        self.health: dict[str, bool] = {}
        self._poll: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()  # publications under way (a task nobody holds may be collected)

    def _checked_states(self) -> dict[str, bool]:
        return {key[1]: watch.up for key, watch in self.checker.watches.items()}

    async def _checked(self, watch: Watch) -> None:
        await self._publish()

    async def _publish(self) -> None:
        if self.config is None:
            return
        health = site_health(self.config, self._checked_states(), self.local)
        if health != self.health:
            self.health = health
            await self.on_change(dict(health))

    def replace(self, config: Config) -> None:
        """Watch the sites of this configuration (unchanged watches keep their state)."""
        self.config = config
        self.checker.replace(site_watches(config))
        local = config.gslb is not None and any(s.virtual_service for s in config.gslb.sites)
        if local and self._poll is None:
            self._poll = asyncio.get_running_loop().create_task(self._poll_local())
        elif not local and self._poll is not None:
            self._poll.cancel()
            self._poll, self.local = None, {}
        task = asyncio.get_running_loop().create_task(self._publish())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _poll_local(self) -> None:
        while True:
            try:
                self.local = await self.local_up()
                await self._publish()
            except Exception:
                log.exception("the local virtual services' state could not be read for GSLB")
            await asyncio.sleep(LOCAL_POLL_INTERVAL)

    def check_results(self) -> dict[str, dict]:
        """Every site's state and why, for status (safe from a thread)."""
        results: dict[str, dict] = {}
        if self.config is None or self.config.gslb is None:
            return results
        watches = {key[1]: w for key, w in list(self.checker.watches.items())}
        for site in self.config.gslb.sites:
            watch = watches.get(site.name)
            row: dict = {"up": self.health.get(site.name, True), "check": site.health_check.type,
                         "checked": None, "reason": None, "changed_at": None, "virtual_service": site.virtual_service}  # fmt: skip
            if watch is not None:
                row.update(checked=watch.up if watch.decided else None, reason=watch.last.reason if watch.last else None,
                           changed_at=watch.changed_at)  # fmt: skip
            if site.virtual_service is not None:
                row["local_up"] = self.local.get(site.virtual_service)
            results[site.name] = row
        return results

    async def close(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poll
            self._poll = None
        await self.checker.close()
