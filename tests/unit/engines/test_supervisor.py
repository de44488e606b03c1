"""engines/supervisor.py: a daemon that dies is started again at once, a failing start backs off outside the gate."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from pacslb.engines.supervisor import keep_running

LOG = logging.getLogger("test.supervisor")


class StartFailed(Exception):
    pass


class Daemon:
    """A stand-in engine whose daemon is a real child process (so that the supervisor can wait on its pidfd)."""

    def __init__(self, fail_starts: int = 0) -> None:
        self.gate = asyncio.Lock()
        self.restarts = 0
        self.error: str | None = None
        self.wanted = True
        self.fail_starts = fail_starts
        self.started: list[float] = []
        self.procs: list[subprocess.Popen] = []
        self.pid: int | None = self._spawn()

    def _spawn(self) -> int:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.procs.append(proc)
        return proc.pid

    def should_run(self) -> bool:
        return self.wanted

    def is_running(self) -> bool:
        if self.pid is None:
            return False
        for proc in self.procs:
            if proc.pid == self.pid:
                return proc.poll() is None
        return False

    async def start_again(self) -> None:
        self.started.append(time.monotonic())
        if self.fail_starts:
            self.fail_starts -= 1
            raise StartFailed("port 53 is taken")
        self.pid = self._spawn()

    def kill(self) -> float:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        return time.monotonic()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


async def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_daemon_that_dies_is_started_again_without_waiting_for_the_interval():
    daemon, stopping = Daemon(), asyncio.Event()
    task = asyncio.create_task(keep_running(daemon, "sleeper", stopping, (StartFailed,), LOG, interval=30.0))
    try:
        await asyncio.sleep(0.1)
        old = daemon.pid
        daemon.kill()
        await _until(lambda: daemon.restarts == 1)
        assert daemon.pid != old and daemon.is_running() and daemon.error is None
        # the interval is 30 s: only the exit itself can have woken the supervisor this soon
        assert len(daemon.started) == 1
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)
        daemon.close()


@pytest.mark.asyncio
async def test_a_failing_start_is_retried_with_a_back_off_and_does_not_hold_the_gate():
    daemon, stopping = Daemon(fail_starts=2), asyncio.Event()
    task = asyncio.create_task(keep_running(daemon, "sleeper", stopping, (StartFailed,), LOG, interval=0.05, backoff_max=2.0))
    try:
        daemon.kill()
        await _until(lambda: len(daemon.started) == 1)
        assert daemon.error == "sleeper could not be started again: port 53 is taken"
        # during the back-off a change can take the gate at once
        await asyncio.wait_for(daemon.gate.acquire(), 0.5)
        daemon.gate.release()
        await _until(lambda: daemon.restarts == 1, 15)
        assert daemon.error is None and daemon.is_running()
        first, second, third = daemon.started
        assert second - first >= 0.9 and third - second >= 1.9  # 1 s, then 2 s
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)
        daemon.close()


@pytest.mark.asyncio
async def test_a_daemon_that_should_not_run_is_left_dead_and_stopping_ends_the_loop():
    daemon, stopping = Daemon(), asyncio.Event()
    daemon.wanted = False
    task = asyncio.create_task(keep_running(daemon, "sleeper", stopping, (StartFailed,), LOG, interval=0.05))
    try:
        daemon.kill()
        await asyncio.sleep(0.5)
        assert daemon.started == [] and daemon.restarts == 0
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)  # ends at once, though the back-off or the interval were long
        daemon.close()
