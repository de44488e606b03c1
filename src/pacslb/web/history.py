"""The metrics sampler: a subsystem of the appliance (pacslb.appliance) that feeds the WebUI's graphs.

Every SAMPLE_INTERVAL seconds it reads HAProxy's `show stat` on the admin socket and writes one Sample
per virtual service into <state>/metrics.sqlite (pacslb.store.metrics), which keeps 24 hours. It never
holds the controller's change lock: reading stats is independent of changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..engines.haproxy.runtime import RuntimeAPI, RuntimeAPIError
from ..model import Config
from ..paths import StatePaths
from ..store.metrics import SAMPLE_INTERVAL, Counters, MetricsStore, rates
from .counters import counters_from_rows

log = logging.getLogger("pacslb.web")


def metrics_path(state_dir: Path) -> Path:
    """<state>/metrics.sqlite"""
    return StatePaths(Path(state_dir)).metrics_db


class Sampler:
    """Reads HAProxy's counters and stores rates; `sample_once` is one step (blocking), `run` loops."""

    name = "metrics history"

    def __init__(self, appliance: Any, interval: float = SAMPLE_INTERVAL, clock=time.time) -> None:
        self.appliance = appliance  # the facade (pacslb.appliance.Facade): paths and the running model
        self.interval = interval
        self.clock = clock
        self.store: MetricsStore | None = None
        self._previous: dict[str, Counters] | None = None
        self._previous_at: float | None = None
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    async def start(self, config: Config) -> None:
        path = metrics_path(self.appliance.paths.root)
        try:
            self.store = await asyncio.to_thread(MetricsStore, path)
        except (sqlite3.Error, OSError) as exc:  # graphs are not worth stopping the appliance for
            log.error("no metrics history: %s cannot be used (%s); the graphs stay empty", path, exc)
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def applied(self, config: Config) -> None:
        pass  # the next sample reads the new configuration from the controller

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.sample_once)
            except Exception:
                log.exception("taking a metrics sample failed; the next one follows")
            await asyncio.to_thread(_trim)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)

    def sample_once(self) -> int:
        """Read the counters and store one sample per virtual service; returns how many (0 when HAProxy does not answer)."""
        assert self.store is not None
        try:
            # frontend and backend rows are all it counts: no server rows to parse (11,000 at 1,000 x 10)
            rows = RuntimeAPI(self.appliance.paths.haproxy_admin_socket, timeout=3.0).show_stat(proxies_only=True)
        except RuntimeAPIError as exc:
            log.debug("no metrics sample: %s", exc)
            self._previous = None
            return 0
        now, mono = self.clock(), time.monotonic()
        current = counters_from_rows(self.appliance.config, rows)
        seconds = mono - self._previous_at if self._previous_at is not None else 0.0
        samples = rates(self._previous, current, seconds, now)
        self._previous, self._previous_at = current, mono
        self.store.add(samples)
        return len(samples)


def _trim() -> None:
    """Give a sample's transient memory back to the system (glibc's malloc_trim).

    A sample parses `show stat` (a row per real server: 11,000 at 1,000 services x 10) in a worker
    thread; freed, that memory stays in the thread's malloc arena, and without this the controller's
    resident size grew by about 90 MB at rest at that size (bench/README.md, runtime_ops). The objects
    are freed by reference counting, so no collection is needed: the trim alone takes milliseconds.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
