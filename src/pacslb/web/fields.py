"""Validation problems beside the form fields they are about.

The model names every problem by its field path (pacslb.model.problems), e.g.
`virtual_services[WFC_443].health_check.rise`. A form edits one object (a virtual service, its health
check, one real server or rule) whose path is the form's prefix; `place_problems` (pure) gives each
form field the messages of the paths under it, and keeps the rest for the top of the form:

    prefix  virtual_services[WFC_443].health_check
    fields  interval, timeout, rise, fall, port, path, expect_status ...
    virtual_services[WFC_443].health_check.rise              -> field rise
    virtual_services[WFC_443].health_check.expect_status[0]  -> field expect_status
    virtual_services[WFC_443].health_check                   -> the form itself (e.g. timeout > interval)
    virtual_services[other].real_servers[rs1].port           -> elsewhere (another object)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..model import Problem


@dataclass
class PlacedProblems:
    by_field: dict[str, list[str]] = field(default_factory=dict)  # form field -> messages
    form: list[str] = field(default_factory=list)  # about the form's object as a whole
    elsewhere: list[str] = field(default_factory=list)  # about other objects ("path: message")
    warnings: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.by_field or self.form or self.elsewhere)


def _under(path: str, prefix: str) -> str | None:
    """The rest of `path` below `prefix` ('' for the prefix itself), or None when it is not under it."""
    if not prefix:
        return path
    if path == prefix:
        return ""
    if path.startswith(prefix) and path[len(prefix)] in ".[":
        return path[len(prefix) :].lstrip(".")
    return None


def field_of(rest: str, fields: Iterable[str]) -> str | None:
    """The form field a relative path belongs to: the longest field name that is the path or a parent of it.

    Field names may be dotted ('match.path_begins', 'tls.certificates') for nested objects.
    """
    best: str | None = None
    for name in fields:
        if rest == name or (rest.startswith(name) and rest[len(name)] in ".["):
            if best is None or len(name) > len(best):
                best = name
    return best


def place_problems(problems: Iterable[Problem], prefixes: Sequence[str], fields: Iterable[str]) -> PlacedProblems:
    """Sort problems between the fields of a form, the form itself and other objects (pure).

    `prefixes`: the paths the form's object may have: `[name]` and `[index]` forms both, since the model
    names an item by its index when its name is not usable (e.g. a name with a bracket).
    """
    names = list(fields)
    placed = PlacedProblems()
    for problem in problems:
        if problem.severity == "warning":
            placed.warnings.append(str(problem))
            continue
        rest = next((r for p in prefixes if (r := _under(problem.path, p)) is not None), None)
        if rest is None:
            placed.elsewhere.append(str(problem))
            continue
        name = field_of(rest, names) if rest else None
        if name is None:
            placed.form.append(f"{rest}: {problem.message}" if rest else problem.message)
        else:
            placed.by_field.setdefault(name, []).append(problem.message)
    return placed
