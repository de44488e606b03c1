"""The decisions of one change transaction, without I/O (as h11 keeps HTTP apart from sockets).

A `Transaction` is told which engines take part, in the fixed commit order, and hands out one step
at a time; the runner (change/runner.py) performs the step and reports back with `done(step, error)`.
The rules, which the unit tests walk one failure path at a time:

  1. Check every engine's artefact first. A refusal ends the transaction before anything runs:
     record it failed; nothing is undone because nothing was committed.
  2. Begin: the revision learns every engine's digest (so that a controller killed from here on can be
     settled at the next start). If that fails, nothing was committed: record failed.
  3. Commit engine by engine, in order.
  4. A commit that fails: undo that engine (its commit may have been half done) and every engine
     committed before it, in reverse order, then record failed. An undo that fails does not stop the
     other undos; the record names the engines that may still run the new configuration.
  5. Every commit done: record applied. Only then does the caller answer.

`settle` decides, at startup, what became of the revisions a killed controller left pending, and
`stale` is the one check of a write's base revision that every front door uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Check:
    engine: str


@dataclass(frozen=True)
class Begin:
    """Checks passed: store the digests in the revision (and pass the test checkpoint `before-engine`)."""


@dataclass(frozen=True)
class Commit:
    engine: str


@dataclass(frozen=True)
class Undo:
    engine: str


@dataclass(frozen=True)
class Record:
    """The last step: the revision is `applied` or `failed`, with why."""

    applied: bool
    summary: str = ""
    messages: tuple[str, ...] = ()
    committed: tuple[str, ...] = ()  # engines that run the new configuration (applied: all of them)
    undo_failed: tuple[str, ...] = ()  # engines that could not be set back: they may run the new one


Step = Check | Begin | Commit | Undo | Record


@dataclass(frozen=True)
class Failure:
    """What an engine (or the store, at Begin) said when a step failed."""

    summary: str
    messages: tuple[str, ...] = ()


class TransactionError(Exception):
    """The runner reported a step that was not the one handed out: a bug in the caller, not an engine failure."""


@dataclass
class Transaction:
    engines: Sequence[str]
    _queue: list[Step] = field(default_factory=list, init=False)
    _current: Step | None = field(default=None, init=False)
    _committed: list[str] = field(default_factory=list, init=False)
    _undo_failed: list[str] = field(default_factory=list, init=False)
    _failure: Failure | None = field(default=None, init=False)
    _undo_messages: list[str] = field(default_factory=list, init=False)
    _finished: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if len(set(self.engines)) != len(self.engines):
            raise TransactionError(f"an engine is named twice: {list(self.engines)}")
        self._queue = [Check(e) for e in self.engines] + [Begin()] + [Commit(e) for e in self.engines]

    @property
    def committed(self) -> tuple[str, ...]:
        return tuple(self._committed)

    def next_step(self) -> Step | None:
        """The step to perform now; None once the Record was handed out."""
        if self._current is not None:
            raise TransactionError(f"{self._current} was handed out and not reported done")
        if self._finished:
            return None
        if not self._queue:
            self._finished = True
            return self._record()
        self._current = self._queue.pop(0)
        return self._current

    def done(self, step: Step, error: Failure | None = None) -> None:
        """Report the outcome of `step` (the one `next_step` handed out)."""
        if step != self._current:
            raise TransactionError(f"reported {step}, but {self._current} was handed out")
        self._current = None
        if isinstance(step, (Check, Begin)):
            if error is not None:
                self._fail(error, undo=[])
        elif isinstance(step, Commit):
            if error is None:
                self._committed.append(step.engine)
            else:
                # The failed engine first (its commit may be half done), then the others in reverse order.
                self._fail(error, undo=[step.engine, *reversed(self._committed)])
        elif isinstance(step, Undo):
            if error is None:
                if step.engine in self._committed:
                    self._committed.remove(step.engine)
            else:
                self._undo_failed.append(step.engine)
                self._undo_messages.append(f"{step.engine} could not be set back: {error.summary}")
                self._undo_messages.extend(error.messages)

    def _fail(self, error: Failure, undo: list[str]) -> None:
        self._failure = error
        self._queue = [Undo(e) for e in undo]

    def _record(self) -> Record:
        if self._failure is None:
            return Record(True, committed=tuple(self._committed))
        summary = self._failure.summary
        if self._undo_failed:
            summary += (f"; {', '.join(self._undo_failed)} could not be set back and may run the new configuration"
                        " (the supervisor converges it to the revision that is applied)")  # fmt: skip
        return Record(
            False,
            summary,
            tuple(self._failure.messages) + tuple(self._undo_messages),
            committed=tuple(e for e in self._undo_failed),
            undo_failed=tuple(self._undo_failed),
        )


# --- startup: revisions a killed controller left pending ----------------------------------------------


@dataclass(frozen=True)
class Settlement:
    revision: int
    applied: bool
    reason: str


def settle(pending: Mapping[int, Mapping[str, str]], running: Mapping[str, str | None]) -> list[Settlement]:
    """What became of each pending revision (id -> the digests it recorded per engine at Begin), given the
    digests the engines run now. Applied only when every engine it touched runs exactly its artefact: a
    controller killed after the last commit and before the record. Anything else never finished."""
    out = []
    for rev_id in sorted(pending):
        digests = pending[rev_id]
        if digests and all(running.get(engine) == digest for engine, digest in digests.items()):
            out.append(Settlement(rev_id, True, "the engines run it: the controller stopped before recording it"))
        elif not digests:
            out.append(Settlement(rev_id, False, "interrupted: the controller stopped before the engines checked it"))
        else:
            out.append(Settlement(rev_id, False, "interrupted: the controller stopped before every engine confirmed it"))
    return out


def stale(base: int | None, current: int | None) -> str | None:
    """Why a write based on revision `base` must be refused now that `current` is the current one, or None."""
    if base is None or base == current:
        return None
    return (f"revision {base} is not the current one (revision {current} is): read the configuration again "
            "and redo the change on it")  # fmt: skip
