"""A readable diff of two configurations, in the model's words (never in an engine's).

`diff(old, new)` is pure. It compares the whole models, defaults included (a field written out with
its default value is no change), and names every difference by its field path, the way validation
problems are named:

    virtual_services[WFC_443].real_servers[rs3]: added
    virtual_services[WFC_443].real_servers[rs1].weight: 100 -> 50
    virtual_services[WFC_443].health_check.path: / -> /health
    virtual_services[WFC_443].real_servers: order rs1, rs2 -> rs2, rs1

Lists of named items (virtual services, real servers, rules) are matched by name, so a new real
server is one line, not a shifted list. Other lists (listeners, statuses, path prefixes) are values.

Secrets (model/secrets.py) are compared by a mark of their value and never shown: a changed password is

    virtual_services[RMQ].health_check.password: changed (a secret: its value is not shown)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from .config import Config
from .secrets import is_mark, marked_dump, scrub
from .types import SECRET_PLACEHOLDER

ChangeKind = Literal["added", "removed", "changed", "order"]

NONE = "(none)"


@dataclass(frozen=True)
class Change:
    path: str
    kind: ChangeKind
    old: Any = None
    new: Any = None
    secret: bool = False  # a secret changed: old and new say only whether it was set

    def __str__(self) -> str:
        if self.secret:
            return f"{self.path}: changed (a secret: its value is not shown)"
        if self.kind in ("added", "removed"):
            return f"{self.path}: {self.kind}"
        if self.kind == "order":
            return f"{self.path}: order {', '.join(self.old)} -> {', '.join(self.new)}"
        return f"{self.path}: {format_value(self.old)} -> {format_value(self.new)}"

    def as_dict(self) -> dict[str, Any]:
        shown = {"path": self.path, "kind": self.kind, "old": self.old, "new": self.new, "text": str(self)}
        return {**shown, "secret": True} if self.secret else shown


def format_value(value: Any) -> str:
    """A value on one line: text as written, None as '(none)', lists and mappings in compact JSON."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def diff(old: Config, new: Config) -> list[Change]:
    """Every difference between two configurations, in the order of the new one.

    The same as `diff_data` of the two dumps, but only the virtual services that differ are dumped:
    a change touches a few services of a configuration that may have a thousand.
    """
    out: list[Change] = []
    exclude = {"virtual_services"}
    _walk(marked_dump(old, exclude=exclude), marked_dump(new, exclude=exclude), "", out)
    before = {vs.name: vs for vs in old.virtual_services}
    after = {vs.name: vs for vs in new.virtual_services}
    if len(before) != len(old.virtual_services) or len(after) != len(new.virtual_services):  # not validated
        _walk([marked_dump(vs) for vs in old.virtual_services],
              [marked_dump(vs) for vs in new.virtual_services], "virtual_services", out)  # fmt: skip
        return out
    path = "virtual_services"
    for vs in old.virtual_services:
        if vs.name not in after:
            out.append(Change(f"{path}[{vs.name}]", "removed", scrub(marked_dump(vs)), None))
    for vs in new.virtual_services:
        was = before.get(vs.name)
        if was is None:
            out.append(Change(f"{path}[{vs.name}]", "added", None, scrub(marked_dump(vs))))
        elif was is not vs and was != vs:
            _walk(marked_dump(was), marked_dump(vs), f"{path}[{vs.name}]", out)
    kept_before = [vs.name for vs in old.virtual_services if vs.name in after]
    kept_after = [vs.name for vs in new.virtual_services if vs.name in before]
    if kept_before != kept_after:
        out.append(Change(path, "order", kept_before, kept_after))
    return out


def diff_data(old: Any, new: Any, path: str = "") -> list[Change]:
    """The same on plain data (from `model_dump(mode='json')`, or `marked_dump` to see secrets change)."""
    changes: list[Change] = []
    _walk(old, new, path, changes)
    return changes


def _named(items: Any) -> bool:
    return (
        isinstance(items, list)
        and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items)
        and len({i["name"] for i in items}) == len(items)
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _secret_change(path: str, old: Any, new: Any) -> Change:
    """A secret set, changed or dropped: said without its value."""
    shown = [None if v is None else SECRET_PLACEHOLDER for v in (old, new)]
    return Change(path, "changed", shown[0], shown[1], secret=True)


def _walk(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if old == new:
        return
    if is_mark(old) or is_mark(new):
        out.append(_secret_change(path, old, new))
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            here = _join(path, key)
            if key not in new:
                if is_mark(old[key]):
                    out.append(_secret_change(here, old[key], None))
                elif old[key] is not None:  # a field of another type of a union: gone
                    out.append(Change(here, "changed", scrub(old[key]), None))
            elif key not in old:
                if is_mark(new[key]):
                    out.append(_secret_change(here, None, new[key]))
                elif new[key] is not None:
                    out.append(Change(here, "changed", None, scrub(new[key])))
            else:
                _walk(old[key], new[key], here, out)
        return
    if _named(old) and _named(new) and (old or new):
        before = {i["name"]: i for i in old}
        after = {i["name"]: i for i in new}
        for item in old:
            if item["name"] not in after:
                out.append(Change(f"{path}[{item['name']}]", "removed", scrub(item), None))
        for item in new:
            name = item["name"]
            if name not in before:
                out.append(Change(f"{path}[{name}]", "added", None, scrub(item)))
            else:
                _walk(before[name], item, f"{path}[{name}]", out)
        kept_before = [i["name"] for i in old if i["name"] in after]
        kept_after = [i["name"] for i in new if i["name"] in before]
        if kept_before != kept_after:
            out.append(Change(path, "order", kept_before, kept_after))
        return
    out.append(Change(path, "changed", scrub(old), scrub(new)))
