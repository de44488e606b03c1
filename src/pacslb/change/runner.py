"""The thin I/O shell around the transaction's decisions: perform each step on its engine, report it back.

    record = await run(engines_and_artefacts, begin=..., checkpoint=...)

The runner decides nothing (change/transaction.py does); it turns each engine's exception into a
Failure, and passes the named checkpoints (`before-engine`: every artefact checked, nothing committed;
`engine-confirmed`: every engine committed, nothing recorded) to the checkpoint it was given. The
appliance passes a no-op; the crash tests pass a pause (pacslb up --pause-at) so that they can kill
the controller there.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Mapping, Sequence

from ..engines.contract import Engine, EngineError, Prepared
from .transaction import Begin, Check, Commit, Failure, Record, Transaction, Undo

log = logging.getLogger("pacslb.controller")

Checkpoint = Callable[[str], Awaitable[None]]
BeforeCommit = Callable[[Mapping[str, str]], Awaitable[None]]


async def no_checkpoint(stage: str) -> None:
    return None


async def _nothing(digests: Mapping[str, str]) -> None:
    return None


async def run(
    parts: Sequence[tuple[Engine, Prepared]],
    begin: BeforeCommit = _nothing,
    checkpoint: Checkpoint = no_checkpoint,
) -> Record:
    """Check, begin, commit in the order of `parts`; undo on failure. Returns the transaction's Record."""
    engines = {engine.name: (engine, prepared) for engine, prepared in parts}
    tx = Transaction([engine.name for engine, _ in parts])
    try:
        while True:
            step = tx.next_step()
            if step is None or isinstance(step, Record):
                if isinstance(step, Record) and step.applied:
                    await checkpoint("engine-confirmed")
                return step if step is not None else Record(True)
            error: Failure | None = None
            try:
                if isinstance(step, Check):
                    engine, prepared = engines[step.engine]
                    await engine.check(prepared)
                elif isinstance(step, Begin):
                    await begin({name: p.digest for name, (_, p) in engines.items() if p.digest})
                    await checkpoint("before-engine")
                elif isinstance(step, Commit):
                    engine, prepared = engines[step.engine]
                    await engine.commit(prepared)
                elif isinstance(step, Undo):
                    engine, prepared = engines[step.engine]
                    await engine.undo(prepared)
                    log.warning("%s set back to the previous configuration", step.engine)
            except EngineError as exc:
                error = Failure(exc.summary, tuple(exc.messages))
            except Exception as exc:
                log.exception("%s failed unexpectedly", step)
                name = step.engine if isinstance(step, (Check, Commit, Undo)) else "the revision store"
                error = Failure(f"{name} failed: {type(exc).__name__}: {exc}")
            tx.done(step, error)
    finally:
        for engine, prepared in parts:
            engine.discard(prepared)  # temporary files of artefacts that were never swapped in
