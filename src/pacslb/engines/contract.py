"""The engine contract: the one shape every engine of the appliance has (HAProxy, nftables, keepalived, ...).

The change transaction (pacslb.change) and the composition root (pacslb.appliance) drive engines only
through this interface, so adding an engine is one package under engines/ and one line in the root.

The life of an engine, in the order the appliance calls it:

    start(config, base_dir)       adopt what already serves this state directory (a controller restart),
                                  or start afresh; render, check and swap the artefact first
    supervise()                   a long-running task: restart the engine when it dies
    plan(old, new, base_dir)      render the new artefact (pure) and decide the steps: runtime
                                  operations, element updates, a reload, or nothing
    check(prepared)               let the engine's own checker accept the artefact (haproxy -c, nft -c,
                                  keepalived -t); nothing that runs is touched
    commit(prepared)              make it run; on failure the engine says why (EngineError)
    undo(prepared)                put back what ran before `commit` (also after a commit that failed half-way)
    discard(prepared)             forget an artefact that was never committed (temporary files)
    applied_digest()              the SHA-256 of the artefact the engine runs now: a restarted controller
                                  settles revisions left pending by comparing it with the revision's
    observe()                     what the engine reports about itself (running, PID, restarts, error)
    stop()                        stop the engine and remove what it installed
    orphans()                     what of this state directory runs without being the engine's own

Rendering is pure (engines/<engine>/render.py); the I/O is in process.py and runtime.py; engine.py
is the thin adapter to this contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..model import Config


class EngineError(Exception):
    """An engine refused or failed a step; `summary` is one sentence, `messages` the engine's own words.
    `refused`: the engine's checker refused the artefact (a configuration problem, exit status 2), rather
    than the engine failing to run it."""

    def __init__(self, summary: str, messages: list[str] | None = None, refused: bool = False) -> None:
        self.summary = summary
        self.refused = refused
        self.messages = list(messages or [])
        super().__init__(summary + "".join(f"\n  {m}" for m in self.messages))


@dataclass
class Prepared:
    """One engine's part of one change: the rendered artefact and the steps that make it run."""

    engine: str
    changed: bool  # False: the engine has nothing to do for this change and stays out of the transaction
    digest: str | None = None  # SHA-256 of the artefact it runs once committed (None: it runs nothing)
    steps: list[str] = field(default_factory=list)  # what commit does, as a person reads it
    warnings: list[str] = field(default_factory=list)
    data: Any = None  # the engine's own payload (its plan, temporary file, previous artefact)
    shown_plan: Any = None  # the plan the change's answer shows (HAProxy's: the model diff and its method)
    timings: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)  # what commit reports (method, workers, ...)


@dataclass
class EngineState:
    """What `observe` reports: enough for `pacslb status` and the health endpoint."""

    name: str
    running: bool
    pid: int | None = None
    restarts: int = 0
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    name: str

    def wanted(self, config: Config) -> bool:
        """Whether `config` needs this engine at all (keepalived only with an `ha` section, ...)."""
        ...

    async def start(self, config: Config, base_dir: Path) -> None: ...

    async def supervise(self) -> None: ...

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared: ...

    async def check(self, prepared: Prepared) -> None: ...

    async def commit(self, prepared: Prepared) -> None: ...

    async def undo(self, prepared: Prepared) -> None: ...

    def discard(self, prepared: Prepared) -> None: ...

    def applied_digest(self) -> str | None: ...

    def observe(self) -> EngineState: ...

    async def stop(self) -> None: ...

    def orphans(self) -> list[str]: ...


class RenderedWork(Protocol):
    """The work of an engine that renders its artefact to a temporary file before the swap."""

    temp: Path | None


def discard_temp(work: RenderedWork | None) -> None:
    """`discard` for an engine that renders to a temporary file: remove the one an artefact never committed
    left, once (keepalived.conf, apache.conf)."""
    if work is not None and work.temp is not None:
        work.temp.unlink(missing_ok=True)
        work.temp = None
