"""The asyncio health-check runner: one loop per watched real server, rise/fall, a callback on each change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from .probes import Probe, Result, Target

log = logging.getLogger("pacslb.health")


@dataclass
class Watch:
    """One real server to check: `key` names it to the callback, e.g. (service, real server)."""

    key: tuple[str, str]
    target: Target
    probe: Probe
    interval: float
    rise: int
    fall: int
    up: bool = True  # a new server counts as up until it fails `fall` times (as HAProxy does)
    last: Result | None = None
    # True once `rise` passes or `fall` failures in a row were seen: until then this watch knows
    # nothing HAProxy does not (a restarted controller must not bring a down server up, or take an
    # up one down, on its first results)
    decided: bool = False
    changed_at: float | None = None  # time.time() of the last change of state (None: none seen)
    _passes: int = field(default=0, repr=False)
    _failures: int = field(default=0, repr=False)

    def record(self, result: Result) -> bool:
        """Count a result; True when the state changed."""
        self.last = result
        if result.up:
            self._passes, self._failures = self._passes + 1, 0
            reached = self._passes >= self.rise
        else:
            self._failures, self._passes = self._failures + 1, 0
            reached = self._failures >= self.fall
        if not reached:
            return False
        self.decided = True
        if self.up != result.up:
            self.up = result.up
            self.changed_at = time.time()
            return True
        return False


Changed = Callable[[Watch], Awaitable[None]]


Checked = Callable[[Watch, bool], None]


class Checker:
    """Runs watches until stopped; `on_change(watch)` is awaited after each change of a server's state, and
    `on_result(watch, changed)`, when given, is called after every check (a check worker reports from it)."""

    def __init__(self, on_change: Changed, on_result: Checked | None = None) -> None:
        self.on_change = on_change
        self.on_result = on_result
        self.watches: dict[tuple[str, str], Watch] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}

    def down(self) -> frozenset[tuple[str, str]]:
        return frozenset(key for key, w in self.watches.items() if not w.up)

    def replace(self, watches: list[Watch]) -> None:
        """Watch exactly these (a new configuration); states of unchanged watches carry over."""
        wanted = {w.key: w for w in watches}
        for key in list(self._tasks):
            old, new = self.watches[key], wanted.get(key)
            if new is None or (old.target, old.probe, old.interval, old.rise, old.fall) != (
                new.target,
                new.probe,
                new.interval,
                new.rise,
                new.fall,
            ):
                self._tasks.pop(key).cancel()
                del self.watches[key]
        for key, watch in wanted.items():
            if key not in self._tasks:
                self.watches[key] = watch
                self._tasks[key] = asyncio.get_running_loop().create_task(self._run(watch))

    @staticmethod
    def first_check_delay(key: tuple[str, str], interval: float) -> float:
        """Pure: when a new watch's first check starts, in [0, interval). A fixed offset per key spreads
        the first checks of a configuration over one interval (as HAProxy's spread-checks does), so that
        hundreds of real servers are not checked in the same instant and keep their spacing afterwards;
        being fixed, it is the same on every restart and on both appliances of an HA pair."""
        import zlib  # here, not at the top: keeps this edit of a shared file to one place

        return interval * (zlib.crc32("\x00".join(key).encode()) / 2**32)

    async def _run(self, watch: Watch) -> None:
        await asyncio.sleep(self.first_check_delay(watch.key, watch.interval))
        while True:
            started = asyncio.get_running_loop().time()
            try:
                result = await watch.probe.probe(watch.target)
            except Exception as exc:
                log.exception("health check of %s failed in pacslb itself", watch.key)
                result = Result(False, f"check error: {exc}")
            changed = watch.record(result)
            if self.on_result is not None:
                self.on_result(watch, changed)
            if changed:
                log.warning("real server %s/%s is %s: %s", *watch.key, "UP" if watch.up else "DOWN", result.reason)
                try:
                    await self.on_change(watch)
                except Exception:
                    log.exception("acting on the health of %s failed", watch.key)
            elapsed = asyncio.get_running_loop().time() - started
            await asyncio.sleep(max(0.0, watch.interval - elapsed))

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
