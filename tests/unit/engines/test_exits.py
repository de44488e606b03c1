"""engines/exits.py: the supervisors wake when their daemon ends, not at their next look."""

from __future__ import annotations

import asyncio
import subprocess
import time

from pacslb.engines.exits import process_exit


async def test_it_returns_as_soon_as_the_process_ends_long_before_the_timeout():
    child = subprocess.Popen(["sleep", "30"])
    try:
        started = time.monotonic()
        asyncio.get_running_loop().call_later(0.2, child.kill)
        await process_exit(child.pid, timeout=20)
        assert time.monotonic() - started < 10, "it waited for the timeout instead of the exit"
        assert child.wait(5) == -9
    finally:
        child.kill()
        child.wait()


async def test_it_returns_when_stopping_is_set_or_after_the_timeout():
    child = subprocess.Popen(["sleep", "30"])
    try:
        stopping = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, stopping.set)
        started = time.monotonic()
        await process_exit(child.pid, timeout=20, stopping=stopping)
        assert time.monotonic() - started < 10 and child.poll() is None
        started = time.monotonic()
        await process_exit(child.pid, timeout=0.2)
        assert 0.15 < time.monotonic() - started and child.poll() is None
    finally:
        child.kill()
        child.wait()


async def test_a_process_that_is_gone_already_waits_the_timeout():
    child = subprocess.Popen(["true"])
    child.wait()
    started = time.monotonic()
    await process_exit(child.pid, timeout=0.2)
    assert time.monotonic() - started >= 0.15
