"""The controller's check workers: the health service's watches sharded over N processes (settings.health.workers).

One asyncio event loop runs at most one core's worth of checks (about 0.35 ms of CPU a dicom-echo check:
some 2,800 checks/s on a free core), so the watches are shared out (health/shards.py: a stable assignment by
watch key) over worker processes, each running `runner.Checker`, the same code as in the controller, on its
shard (health/worker.py). The controller keeps everything else: the agent port, the pushes to HAProxy, the
status; it learns the watches' states from the workers (health/worker_protocol.py).

Why processes started with asyncio's subprocess and a small JSON-lines protocol over their stdin and stdout,
rather than multiprocessing:
  - a fresh interpreter (`python -m pacslb.health.worker`), never a fork of the controller, whose threads
    (uvicorn, SQLite, to_thread) may hold locks at fork time; multiprocessing's spawn re-runs the main module
    (the CLI), and its forkserver forks a server that would be one more process to keep alive;
  - asyncio reads and writes the pipes in the controller's own loop: no thread per worker, no blocking
    Connection.recv, and the child's exit is awaited like any other;
  - the worker's life is its stdin: the controller's end closes when it stops or dies (even by SIGKILL), and
    the worker ends; no PID file, no parent polling;
  - the messages are JSON checked field by field, not pickles: a worker never makes the controller run code.

A worker that dies is started again after 1, 2, 4 ... up to 30 s (back to 1 s once one ran for a minute),
counted in `status()`; meanwhile its real servers are undecided: the agent answers nothing about them, and
HAProxy keeps their states (and its own connect check), as after a restart of the controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from .base import Result
from .runner import Watch
from .shards import shard_of
from .worker_protocol import MAX_STATE_LINE, ProtocolError, State, decode_state, encode_watches

log = logging.getLogger("pacslb.health")

Key = tuple[str, str]
Pushed = Callable[[Key, bool], Awaitable[None]]

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STEADY = 60.0  # a worker that ran this long before it died is started again after BACKOFF_FIRST
STOP_WAIT = 5.0  # a worker whose stdin closed has this long to end (its checks are cancelled) before SIGKILL
MAX_LOG_LINE = 4000  # a worker's log line, as written into the controller's log


def worker_command() -> list[str]:
    """`python -m pacslb.health.worker`, with the interpreter and the pacslb of the controller itself."""
    return [sys.executable, "-m", "pacslb.health.worker"]


def _environment() -> dict[str, str]:
    # the worker imports the same pacslb as the controller, wherever that was found (an editable install,
    # a source tree on sys.path in tests)
    source = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class Seen:
    """What the controller knows of a watch a worker runs; read like a runner.Watch (agent_reply, status)."""

    worker: "Worker"
    since: int  # the generation of the shard message that gave this watch, as it is now, to its worker
    decided: bool = False
    up: bool = True
    last: Result | None = None
    changed_at: float | None = None


@dataclass
class Worker:
    """One worker slot: its shard, and the process running it (None between lives)."""

    index: int
    specs: dict[Key, tuple] = field(default_factory=dict)  # key -> (target, probe, interval, rise, fall)
    watches: list[Watch] = field(default_factory=list)
    gen: int = 0
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    last_exit: str | None = None
    retired: bool = False  # no longer wanted (fewer workers, or the pool closes)
    released: bool = False  # its stdin was closed on purpose (empty shard): its end is not a death
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


def _spec(watch: Watch) -> tuple:
    return (watch.target, watch.probe, watch.interval, watch.rise, watch.fall)


class WorkerPool:
    """The check workers of the health service. `pushed(key, up)` is awaited when a watch's state changes."""

    def __init__(self, pushed: Pushed, command: list[str] | None = None) -> None:
        self.pushed = pushed
        self.command = command or worker_command()
        self.workers: list[Worker] = []
        self.seen: dict[Key, Seen] = {}
        self._slot_of: dict[Key, int] = {}  # shard_of is a few hashes per worker: kept between changes
        self._closing = asyncio.Event()
        self._pushes: set[asyncio.Task] = set()
        self._retired: list[Worker] = []  # ending after a change to fewer workers: awaited by close

    # --- the shards ----------------------------------------------------------------------------------

    def replace(self, watches: list[Watch], count: int) -> None:
        """Run exactly these watches over `count` workers; a watch whose worker and spec did not change keeps
        its state (its worker's Checker.replace), the others start undecided."""
        if count != len(self.workers):
            self._slot_of = {}
        slot_of = {}
        shards: list[list[Watch]] = [[] for _ in range(count)]
        for w in watches:
            index = self._slot_of.get(w.key)
            if index is None:
                index = shard_of(w.key, count)
            slot_of[w.key] = index
            shards[index].append(w)
        self._slot_of = slot_of
        for worker in self.workers[count:]:  # fewer workers: these end (their watches moved)
            worker.retired = True
            worker.wake.set()
            self._retired.append(worker)
        self.workers = self.workers[:count]
        while len(self.workers) < count:
            self.workers.append(self._start(Worker(len(self.workers))))
        for worker, shard in zip(self.workers, shards, strict=True):
            specs = {w.key: _spec(w) for w in shard}
            if specs == worker.specs:
                continue
            worker.gen += 1
            for key, spec in specs.items():
                seen = self.seen.get(key)
                if seen is None or seen.worker is not worker or worker.specs.get(key) != spec:
                    self.seen[key] = Seen(worker, worker.gen)  # new to this worker: undecided
            worker.specs, worker.watches = specs, shard
            worker.wake.set()
        for key in [k for k in self.seen if k not in slot_of]:
            del self.seen[key]

    def _start(self, worker: Worker) -> Worker:
        worker.task = asyncio.get_running_loop().create_task(self._supervise(worker))
        return worker

    # --- a worker's lives ----------------------------------------------------------------------------

    async def _supervise(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_FIRST
        try:
            while not worker.retired:
                if not worker.specs:  # nothing to check: no process
                    worker.wake.clear()
                    await worker.wake.wait()
                    continue
                started = loop.time()
                ended = await self._live(worker)
                if worker.retired or worker.released:
                    worker.released = False
                    continue
                worker.restarts += 1
                worker.last_exit = ended
                for seen in self.seen.values():
                    if seen.worker is worker:
                        seen.decided = False  # its successor checks them anew: HAProxy keeps what it has meanwhile
                backoff = BACKOFF_FIRST if loop.time() - started >= STEADY else backoff
                log.error("check worker %d %s: %d real servers undecided; started again in %gs (restart %d)",
                          worker.index, ended, len(worker.specs), backoff, worker.restarts)  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            await self._end(worker)

    async def _live(self, worker: Worker) -> str:
        """One life of the worker's process; how it ended."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command, str(worker.index), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=MAX_STATE_LINE, env=_environment(),
            )  # fmt: skip
        except OSError as exc:
            return f"could not be started: {exc}"
        worker.process, worker.released = process, False
        log.info("check worker %d started (PID %d): %d real servers", worker.index, process.pid, len(worker.specs))
        worker.wake.set()  # its shard is sent at once
        assert process.stdout is not None and process.stderr is not None
        tasks = [asyncio.ensure_future(self._send(worker, process)), asyncio.ensure_future(self._relay(worker, process.stderr))]
        try:
            await self._read(worker, process.stdout)
            try:
                await asyncio.wait_for(process.wait(), STOP_WAIT)
            except TimeoutError:
                process.kill()
                await process.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tasks[1], STOP_WAIT)  # the rest of its log
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if process.returncode is None:  # cancelled (the pool closes): no worker outlives it
                process.kill()
                await process.wait()
            worker.process = None
        code = process.returncode
        return (
            f"(PID {process.pid}) ended with status {code}" if code >= 0 else f"(PID {process.pid}) was killed by signal {-code}"
        )

    async def _send(self, worker: Worker, process: asyncio.subprocess.Process) -> None:
        """Give the worker its shard at start and after every change; close its stdin when it has none."""
        assert process.stdin is not None
        try:
            while True:
                await worker.wake.wait()
                worker.wake.clear()
                if worker.retired or not worker.specs:
                    worker.released = not worker.retired
                    process.stdin.close()
                    return
                process.stdin.write(encode_watches(worker.gen, worker.watches))
                await process.stdin.drain()
        except (ConnectionError, OSError):
            return  # it died: the reader sees the end
        except ProtocolError as exc:  # a shard too large for one message
            log.error("check worker %d: %s", worker.index, exc)
            process.kill()

    async def _read(self, worker: Worker, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:
                log.error("check worker %d sent a message longer than %d bytes: stopped", worker.index, MAX_STATE_LINE)
                worker.process and worker.process.kill()
                return
            if not line:
                return
            try:
                state = decode_state(line)
            except ProtocolError as exc:
                log.error("check worker %d broke the protocol (%s): stopped", worker.index, exc)
                worker.process and worker.process.kill()
                return
            self._apply(worker, state)

    def _apply(self, worker: Worker, state: State) -> None:
        seen = self.seen.get(state.key)
        if seen is None or seen.worker is not worker or state.gen < seen.since:
            return  # a watch it no longer runs, or the state of its previous spec
        seen.decided, seen.up, seen.changed_at = state.decided, state.up, state.changed_at
        seen.last = Result(state.passed, state.reason) if state.passed is not None and state.reason is not None else None
        if state.changed:
            task = asyncio.get_running_loop().create_task(self.pushed(state.key, state.up))
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)

    async def _relay(self, worker: Worker, stream: asyncio.StreamReader) -> None:
        """The worker's log lines ('<level number> <message>') into the controller's log."""
        level = logging.WARNING
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # an overlong line: its start was dropped by the reader
                continue
            if not line:
                return
            text = line.decode("utf-8", errors="replace").rstrip()
            head, _, rest = text.partition(" ")
            if head.isdigit():
                level, text = int(head), rest
            log.log(level, "check worker %d: %s", worker.index, text[:MAX_LOG_LINE])

    async def _end(self, worker: Worker) -> None:
        process = worker.process
        if process is not None and process.returncode is None:
            process.kill()
            with contextlib.suppress(Exception):
                await process.wait()

    # --- the pool ------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every worker: stdin closed, STOP_WAIT to end, then SIGKILL (idempotent)."""
        self._closing.set()
        workers, self.workers, self._retired = self.workers + self._retired, [], []
        for worker in workers:
            worker.retired = True
            worker.wake.set()
        tasks = [w.task for w in workers if w.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_WAIT + 1)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in list(self._pushes):
            task.cancel()
        await asyncio.gather(*self._pushes, return_exceptions=True)
        self.seen = {}
        self._slot_of = {}

    def status(self) -> list[dict]:
        """Each worker: its index, PID (None between lives), real servers, restarts and how its last life ended."""
        return [
            {
                "index": w.index,
                "pid": w.process.pid if w.process else None,
                "real_servers": len(w.specs),
                "restarts": w.restarts,
                "last_exit": w.last_exit,
            }  # fmt: skip
            for w in self.workers
        ]
