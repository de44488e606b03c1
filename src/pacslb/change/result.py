"""What a change answers: its outcome, one sentence, and the details the CLI, API and WebUI show."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..engines.haproxy.plan import Plan
from ..model import Problem
from ..store import Revision


class Outcome(str, Enum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    DRY_RUN = "dry-run"
    INVALID = "invalid"  # the model has problems (field paths)
    REFUSED = "refused"  # an engine refused it, or it failed: the previous configuration serves
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"  # based on a revision that is no longer the current one
    BAD_REQUEST = "bad-request"  # the request cannot be understood (an edit that names nothing sensible)


HTTP_STATUS = {
    Outcome.APPLIED: 200,
    Outcome.UNCHANGED: 200,
    Outcome.DRY_RUN: 200,
    Outcome.INVALID: 422,
    Outcome.REFUSED: 409,
    Outcome.NOT_FOUND: 404,
    Outcome.CONFLICT: 409,
    Outcome.BAD_REQUEST: 400,
}


@dataclass
class ChangeResult:
    outcome: Outcome
    message: str  # one sentence: what happened, or why nothing did
    plan: Plan | None = None
    revision: Revision | None = None
    parent: int | None = None
    problems: list[Problem] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    engines: dict[str, list[str]] = field(default_factory=dict)  # the steps of every engine that took part
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "message": self.message,
            "plan": self.plan.as_dict() if self.plan else None,
            "revision": self.revision.summary() if self.revision else None,
            "parent": self.parent,
            "problems": [{"path": p.path, "message": p.message, "severity": p.severity} for p in self.problems],
            "messages": self.messages,
            "warnings": self.warnings,
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
            "engine": self.engine,
            "engines": self.engines,
            **self.extra,
        }
