"""A revision's configuration stored as a delta of another revision's: the services that changed, not 2 MB.

A revision's JSON (`Config.model_dump_json()`, compact) is, as text,

    prefix + ",".join(services) + suffix

where `prefix` ends with `"virtual_services":[`, each service is the JSON of one virtual service and
`suffix` starts with `]` (`Parts`). A runtime change (drain, halt, online, weight) changes one service's
text of a thousand; a delta (`Delta`) says how to make the new text from its base's:

    {"head": null | [prefix, suffix],           null: the base's prefix and suffix
     "services": [[start, stop] | "text", ...]} a slice of the base's services, or a service's own JSON

Everything is text: reading a delta back gives the very characters that were written (no JSON is parsed
and dumped again, so no float or escape can come out differently), and the digest of a revision stays
the SHA-256 of its whole JSON. A delta is written only when it is small (at most DELTA_MAX_SHARE of the
whole text) and its base is at most SNAPSHOT_EVERY - 1 deltas from a whole text (a snapshot), so that
reading any revision walks at most SNAPSHOT_EVERY - 1 deltas (store/revisions.py decides, store/pruning.py
keeps the bases of what it keeps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Union

MARK = '"virtual_services":['
SNAPSHOT_EVERY = 50  # every 50th revision of a chain is whole: reading walks at most 49 deltas
DELTA_MAX_SHARE = 0.25  # a delta larger than a quarter of the whole text is not worth it: a snapshot
_DECODER = json.JSONDecoder()

Segment = Union[tuple[int, int], str]


class DeltaError(ValueError):
    """A stored delta does not fit its base (a damaged store): the message says which revision."""


@dataclass(frozen=True)
class Parts:
    """A configuration's JSON cut at its services: `prefix + ",".join(services) + suffix`."""

    prefix: str
    services: tuple[str, ...]
    suffix: str

    def text(self) -> str:
        return self.prefix + ",".join(self.services) + self.suffix

    def head(self) -> str:
        """The configuration without its services (`"virtual_services":[]`): small, for its settings."""
        return self.prefix + self.suffix


def cuts(parts: Parts) -> str:
    """Where a whole text is cut (the lengths of its prefix and of each service), stored beside it so that
    reading a delta does not parse its base (`split`)."""
    return json.dumps([len(parts.prefix), *map(len, parts.services)], separators=(",", ":"))


def split(text: str, where: str | None = None) -> Parts | None:
    """`text` (a configuration's compact JSON) cut at its services; None when it cannot be cut with
    certainty (the mark appears more than once, e.g. in a name): such a revision is never a delta's base.
    `where`: the cuts stored with it (`cuts`), used when they fit the text, else the text is parsed."""
    if text.count(MARK) != 1:
        return None
    if where:
        found = _cut(text, where)
        if found is not None:
            return found
    start = text.index(MARK) + len(MARK)
    services: list[str] = []
    at = start
    try:
        if text[at] != "]":
            while True:
                _, end = _DECODER.raw_decode(text, at)  # C speed; the text between is kept as it is
                services.append(text[at:end])
                if text[end] == ",":
                    at = end + 1
                    continue
                at = end
                break
    except (ValueError, IndexError):
        return None
    if text[at] != "]":
        return None
    return Parts(text[:start], tuple(services), text[at:])


def _cut(text: str, where: str) -> Parts | None:
    try:
        prefix, *lengths = json.loads(where)
        at, services = prefix, []
        for n, length in enumerate(lengths):
            if n and text[at - 1] != ",":
                return None
            services.append(text[at : at + length])
            at += length + 1
    except (ValueError, TypeError):
        return None
    end = at - 1 if lengths else prefix
    if not text[:prefix].endswith(MARK) or text[end : end + 1] != "]":
        return None
    return Parts(text[:prefix], tuple(services), text[end:])


@dataclass(frozen=True)
class Delta:
    head: tuple[str, str] | None  # None: the base's prefix and suffix
    segments: tuple[Segment, ...]

    def encode(self) -> str:
        return json.dumps(
            {
                "head": list(self.head) if self.head else None,
                "services": [list(s) if isinstance(s, tuple) else s for s in self.segments],
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )


def decode(text: str) -> Delta:
    """A stored delta (DeltaError when it is not one)."""
    try:
        data = json.loads(text)
        head = data["head"]
        segments: list[Segment] = []
        for s in data["services"]:
            if isinstance(s, str):
                segments.append(s)
            else:
                start, stop = s
                segments.append((int(start), int(stop)))
        return Delta((str(head[0]), str(head[1])) if head else None, tuple(segments))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DeltaError(f"not a revision delta ({exc})") from None


def between(base: Parts, new: Parts) -> Delta:
    """The delta that makes `new` from `base`: runs of the base's services kept as slices, the others as text."""
    where = {text: i for i, text in enumerate(base.services)}  # services have unique names: unique texts
    segments: list[Segment] = []
    for text in new.services:
        i = where.get(text)
        last = segments[-1] if segments else None
        if i is None:
            segments.append(text)
        elif isinstance(last, tuple) and last[1] == i:
            segments[-1] = (last[0], i + 1)
        else:
            segments.append((i, i + 1))
    head = None if (new.prefix, new.suffix) == (base.prefix, base.suffix) else (new.prefix, new.suffix)
    return Delta(head, tuple(segments))


def apply(base: Parts, delta: Delta) -> Parts:
    """`base` changed by `delta` (DeltaError when a slice is outside the base)."""
    services: list[str] = []
    for s in delta.segments:
        if isinstance(s, str):
            services.append(s)
        else:
            start, stop = s
            if not 0 <= start < stop <= len(base.services):
                raise DeltaError(f"services {start}:{stop} of a base of {len(base.services)}")
            services.extend(base.services[start:stop])
    prefix, suffix = delta.head if delta.head else (base.prefix, base.suffix)
    return Parts(prefix, tuple(services), suffix)


def worth_it(encoded: str, whole: int) -> bool:
    """Whether a delta of this size is worth storing instead of the `whole` text's length."""
    return len(encoded) <= whole * DELTA_MAX_SHARE
