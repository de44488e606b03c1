"""The cluster node's routing: keep what BIRD announces equal to what announce.py decides (the I/O shell around it).

A subsystem of the appliance (appliance.py builds it with narrow callables, like the others):

    look(config, drained) -> Facts      the node's facts now (HAProxy, the real servers' states, the controller),
                                        blocking: run in a thread
    announce(vips, withheld)            the BIRD engine makes the routes run (`birdc configure`)
    sessions()                          refresh BIRD's BGP and BFD session state (blocking)

It re-evaluates when something that changes the answer happens: a configuration applied, a drain set or
cleared, HAProxy dying or running again (`haproxy_event`, awaited by HAProxy's supervisor before it restarts
the master, so that the VIPs are withdrawn before the node is found unable to serve them), the cluster's state
finding the node cut off from the others or back (`wake`), and otherwise every `interval`, or ten times the
last look's cost when that is longer (the real servers' states come from HAProxy's checks and the appliance's own,
read from its status, which has no event of its own).

A drained node announces nothing (the routers send it no new flow) and leaves HAProxy alone: the connections it
holds are served until they end, and counted by cluster/established.py in the routing status. Whether they still
reach the node after the withdraw is the router's affair (docs/cluster.md, "Drain and established connections").

The drained flag is this node's, persisted as a file in the state directory (StatePaths.cluster_drained) so a
restarted controller keeps it; the etcd half of the cluster sets it through `set_drained` (the facade's
`cluster_drain`) when the node's drain key changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Awaitable, Callable

from .. import files as atomic
from ..model.config import Config
from .announce import Announcement, Facts, decide

log = logging.getLogger("pacslb.cluster")

INTERVAL = 0.5  # how often the real servers' states are read again (one `show stat` on HAProxy's socket)
# ... at the most: a look that costs more (the status of 1,000 services x 10 real servers takes tens of ms) waits
# this many times its own cost before the next, so the safety net never takes more than a tenth of a core
COST_FACTOR = 10


class Routing:
    name = "cluster routing"

    def __init__(
        self,
        drained_file: Path,
        look: Callable[[Config, bool], Facts],
        announce: Callable[[list[str], dict[str, str]], Awaitable[bool]],
        sessions: Callable[[], dict],
        keep_on_stop: Callable[[], bool] = lambda: False,
        interval: float = INTERVAL,
    ) -> None:
        self.drained_file = drained_file
        self._look = look
        self._announce = announce
        self._sessions = sessions
        self._keep_on_stop = keep_on_stop  # a hand-over: BIRD keeps announcing for the next controller
        self.interval = interval
        self.config: Config | None = None
        self.last: Announcement | None = None
        self.haproxy_down: str | None = None  # HAProxy's supervisor said it died (and has not said it runs again)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one evaluation at a time
        self._task: asyncio.Task | None = None
        self.look_cost = 0.0  # seconds the latest look took (the next one waits at least COST_FACTOR times that)

    # --- the drained flag ----------------------------------------------------------------------------

    @property
    def drained(self) -> bool:
        return self.drained_file.exists()

    async def set_drained(self, drained: bool) -> dict:
        """Drain this node (announce nothing) or return it; kept across restarts. Answers the routing status once
        BIRD runs the result."""
        if drained != self.drained:
            if drained:
                self.drained_file.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
                atomic.atomic_write(self.drained_file, "drained\n")
            else:
                self.drained_file.unlink(missing_ok=True)
            log.warning("this node is %s", "drained: every VIP is withdrawn (the routers send it no new flow; HAProxy "
                        "keeps the established connections: GET /api/v1/cluster/routing counts them)"
                        if drained else "no longer drained")  # fmt: skip
        await self.evaluate()
        return self.status()

    # --- evaluating ----------------------------------------------------------------------------------

    async def evaluate(self) -> Announcement | None:
        """Decide now and make BIRD run it; the decision (None without a cluster section)."""
        async with self._lock:
            config = self.config
            if config is None or config.cluster is None:
                return None
            started = time.monotonic()
            facts = await asyncio.to_thread(self._look, config, self.drained)
            self.look_cost = time.monotonic() - started
            if self.haproxy_down is not None:
                facts = replace(facts, haproxy_running=False, haproxy_reason=self.haproxy_down)
            decision = decide(config, facts)
            await self._announce(list(decision.announced), decision.withheld)
            self.last = decision
            await asyncio.to_thread(self._sessions)
            return decision

    def wake(self) -> None:
        """Evaluate now rather than at the next interval (the cluster's state says the node is cut off, or no longer)."""
        self._wake.set()

    async def haproxy_event(self, event: str, detail: str) -> None:
        """HAProxy's supervisor: 'died' (before it starts HAProxy again) or 'running' (after)."""
        self.haproxy_down = f"HAProxy died ({detail})" if event == "died" else None
        try:
            await self.evaluate()
        except Exception:
            log.exception("the announcement could not follow HAProxy's %s", event)

    def status(self) -> dict:
        """What the node announces and withholds (with reasons), and whether it is drained."""
        last = self.last
        return {
            "configured": self.config is not None and self.config.cluster is not None,
            "drained": self.drained,
            "announced": list(last.announced) if last else [],
            "withheld": dict(last.withheld) if last else {},
        }

    def pause(self) -> float:
        """Seconds until the next look unless something wakes it: `interval`, or more after a costly look."""
        return max(self.interval, COST_FACTOR * self.look_cost)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.pause())
            self._wake.clear()
            try:
                await self.evaluate()
            except Exception:
                log.exception("the announcement could not be evaluated; next look in %.1fs", self.pause())

    # --- the subsystem -------------------------------------------------------------------------------

    async def start(self, config: Config) -> None:
        self.config = config
        await self.evaluate()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def applied(self, config: Config) -> None:
        self.config = config
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        config = self.config
        if config is None or config.cluster is None or self._keep_on_stop():
            return
        # withdraw every VIP before HAProxy stops: the routers move the flows away, then BIRD closes its sessions
        withheld = {vip: "controller stopping" for vip in (self.last.announced if self.last else ())}
        await self._announce([], withheld)
