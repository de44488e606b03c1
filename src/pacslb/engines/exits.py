"""Wait for a process to end without polling: a pidfd (Linux 5.3+) becomes readable when the process exits.

The supervisors of the engines used to look every 0.5 s whether their daemon still ran, so a daemon killed
just after a look left clients without service for half a second before anyone noticed (bench/faults.py).
With a pidfd the supervisor wakes when the process ends; the interval stays as the fallback where pidfds
are missing (an old kernel, or a PID that is already gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os


async def process_exit(pid: int, timeout: float, stopping: asyncio.Event | None = None) -> None:
    """Return when process `pid` ends, when `stopping` is set, or after `timeout` seconds, whichever comes first.

    Whether the process really ended is for the caller to look at: this only says when to look."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):  # gone already, or no pidfds here: wait the interval
        fd = None
    loop = asyncio.get_running_loop()
    waiters: list[asyncio.Future] = []
    if fd is not None:
        ended = loop.create_future()
        loop.add_reader(fd, lambda: ended.done() or ended.set_result(None))
        waiters.append(ended)
    if stopping is not None:
        waiters.append(asyncio.ensure_future(stopping.wait()))
    try:
        if waiters:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(timeout)
    finally:
        for waiter in waiters:
            waiter.cancel()
        if fd is not None:
            loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
