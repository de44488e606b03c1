"""Keep one engine daemon running: wake when it exits, start it again under the engine's gate, back off.

keepalived, PowerDNS and the WAF tier's Apache are each one daemon that the controller started (or adopted)
and must keep alive while the configuration wants it. The loop is the same for the three; what differs
(whether the daemon is wanted now, how to start it again, which errors a failed start raises) is asked of
the engine through `Supervised`. HAProxy's master-worker supervisor (engines/haproxy/engine.py) has more to
do (workers, the master's own restarts) and keeps its own loop, waking the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from . import exits

SUPERVISE_INTERVAL = 0.5  # the fallback look, where the process cannot be waited for (no pidfd)
RESTART_BACKOFF_MAX = 30.0


class Supervised(Protocol):
    """What the supervisor needs of an engine that runs one daemon."""

    gate: asyncio.Lock  # the engine's lock against changes: a restart never races a commit or an undo
    pid: int | None
    restarts: int
    error: str | None

    def should_run(self) -> bool:
        """The configuration applied wants the daemon: a dead one must be started again."""
        ...

    def is_running(self) -> bool:
        """The daemon (`pid`) runs now."""
        ...

    async def start_again(self) -> None:
        """Start the daemon after it died; raise on failure (one of the errors given to `keep_running`)."""
        ...


async def keep_running(
    daemon: Supervised,
    label: str,
    stopping: asyncio.Event,
    failures: tuple[type[BaseException], ...],
    log: logging.Logger,
    interval: float = SUPERVISE_INTERVAL,
    backoff_max: float = RESTART_BACKOFF_MAX,
) -> None:
    """Until `stopping` is set: when the daemon ends while it should run, start it again.

    `label` names the daemon in the log and in `daemon.error` ("pdns_server", "Apache (WAF)"). A start that fails
    is tried again after 1, 2, 4 ... up to `backoff_max` seconds, outside the gate, so that changes are not held up.
    """
    backoff = 1.0
    while not stopping.is_set():
        if daemon.pid is not None:  # wake as soon as it ends, not at the next look
            await exits.process_exit(daemon.pid, interval, stopping)
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=interval)
        if stopping.is_set():
            return
        failed = False
        async with daemon.gate:
            if stopping.is_set() or not daemon.should_run() or daemon.is_running():
                continue
            log.error("%s (PID %s) died: starting it again", label, daemon.pid)
            try:
                await daemon.start_again()
            except failures as exc:
                daemon.error = f"{label} could not be started again: {exc}"
                log.error("%s; next attempt in %gs", daemon.error, backoff)
                failed = True
            else:
                daemon.restarts += 1
                daemon.error = None
                backoff = 1.0
        if failed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, backoff_max)
