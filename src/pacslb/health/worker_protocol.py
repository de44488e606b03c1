"""The messages between the controller and its check workers: one JSON object per line, pure encode/decode.

    controller -> worker (the worker's stdin)
      {"op": "watch", "gen": 3, "probes": [{"kind": "DicomEchoProbe", "fields": {...}}, ...],
       "watches": [[service, real server, address, port, probe index, interval, rise, fall], ...]}
         the worker's whole shard: it runs exactly these (Checker.replace: unchanged watches keep their state)
      end of file: the controller is gone or wants the worker to stop; the worker ends

    worker -> controller (the worker's stdout)
      {"op": "state", "gen": 3, "key": [service, real server], "decided": true, "up": false,
       "passed": false, "reason": "association rejected ...", "changed_at": 1765100000.5, "changed": true}
         sent when what the controller shows of a watch changes (decided, up or the reason), not on
         every check: `changed` is true when the state changed (the controller pushes it to HAProxy)

JSON and not pickle: what a worker sends is data the controller checks field by field, never code it would
run. Each direction has an explicit size bound (MAX_WATCH_LINE, MAX_STATE_LINE, MAX_REASON).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

from .base import Target
from .probes import AMQPProbe, ConnectProbe, DicomEchoProbe, ExternalProbe, HL7Probe, HTTPProbe, Probe
from .runner import Watch

# The largest configuration (model/limits.py: 8 MiB of text) holds fewer than 300,000 real servers; a watch is
# about 80 bytes here: 64 MiB holds them all in one shard.
MAX_WATCH_LINE = 64 * 1024 * 1024
MAX_STATE_LINE = 64 * 1024  # one watch's state: two names and a reason
MAX_REASON = 1000  # a reason is one short sentence; a longer one is cut (the agent sends at most 200 characters)
PROBES: dict[str, type] = {
    cls.__name__: cls for cls in (ConnectProbe, HTTPProbe, DicomEchoProbe, HL7Probe, AMQPProbe, ExternalProbe)
}


class ProtocolError(ValueError):
    """A message that does not follow this protocol (the peer is then stopped: it is not the code we started)."""


@dataclass(frozen=True)
class State:
    """What the controller knows of one watch run by a worker."""

    gen: int
    key: tuple[str, str]
    decided: bool
    up: bool
    passed: bool | None  # the last check's own verdict (None: none yet)
    reason: str | None  # ... and its reason
    changed_at: float | None
    changed: bool


# --- probes ----------------------------------------------------------------------------------------


def encode_probe(probe: Probe) -> dict:
    """A probe as data: its class name and its fields (every probe is a dataclass of plain values)."""
    name = type(probe).__name__
    if PROBES.get(name) is not type(probe):
        raise ProtocolError(f"a {name} cannot be sent to a check worker")
    return {"kind": name, "fields": {f.name: getattr(probe, f.name) for f in dataclasses.fields(probe)}}


def decode_probe(data: Any) -> Probe:
    """The probe `encode_probe` described; lists become tuples again (probes hold tuples, and the Checker
    compares probes to tell a changed watch from an unchanged one)."""
    if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
        raise ProtocolError("a probe is {'kind': ..., 'fields': {...}}")
    cls = PROBES.get(data.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(f"unknown probe kind {data.get('kind')!r}")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data["fields"].items()}
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ProtocolError(f"bad fields for {cls.__name__}: {exc}") from None


# --- controller -> worker --------------------------------------------------------------------------


def encode_watches(gen: int, watches: Iterable[Watch]) -> bytes:
    """The line that gives a worker its whole shard. Probes shared by watches (one per service) are sent once."""
    probes: list[dict] = []
    index: dict[int, int] = {}  # id(probe) -> position in `probes`
    rows = []
    for w in watches:
        at = index.get(id(w.probe))
        if at is None:
            at = index[id(w.probe)] = len(probes)
            probes.append(encode_probe(w.probe))
        rows.append([w.key[0], w.key[1], w.target.address, w.target.port, at, w.interval, w.rise, w.fall])
    line = json.dumps({"op": "watch", "gen": gen, "probes": probes, "watches": rows}, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_WATCH_LINE:
        raise ProtocolError(f"a shard of {len(rows):,} watches is {len(line):,} bytes, more than {MAX_WATCH_LINE:,}")
    return line


def decode_watches(line: bytes) -> tuple[int, list[Watch]]:
    """(generation, watches) of a watch line (each watch new: never decided)."""
    if len(line) > MAX_WATCH_LINE:
        raise ProtocolError(f"a watch message of {len(line):,} bytes, more than {MAX_WATCH_LINE:,}")
    data = _object(line)
    if data.get("op") != "watch" or not _count(data.get("gen")):
        raise ProtocolError("expected {'op': 'watch', 'gen': N, ...}")
    if not isinstance(data.get("probes"), list) or not isinstance(data.get("watches"), list):
        raise ProtocolError("a watch message has 'probes' and 'watches' lists")
    probes = [decode_probe(p) for p in data["probes"]]
    found = []
    for row in data["watches"]:
        if not (isinstance(row, list) and len(row) == 8):
            raise ProtocolError(f"a watch is [service, server, address, port, probe, interval, rise, fall], not {row!r}")
        service, server, address, port, at, interval, rise, fall = row
        if not all(isinstance(x, str) for x in (service, server, address)):
            raise ProtocolError(f"service, server and address are texts in {row!r}")
        if not (_count(port) and 1 <= port <= 65535 and _count(at) and at < len(probes) and _count(rise) and _count(fall)):
            raise ProtocolError(f"port, probe, rise and fall are counts in range in {row!r}")
        if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
            raise ProtocolError(f"the interval is a positive number of seconds in {row!r}")
        found.append(Watch((service, server), Target(address, port), probes[at], float(interval), rise, fall))
    return data["gen"], found


# --- worker -> controller --------------------------------------------------------------------------


def state_of(gen: int, watch: Watch, changed: bool) -> State:
    """What a worker tells the controller of `watch` after a check."""
    last = watch.last
    reason = last.reason[:MAX_REASON] if last is not None else None
    return State(gen, watch.key, watch.decided, watch.up, last.up if last else None, reason, watch.changed_at, changed)


def encode_state(state: State) -> bytes:
    data = {"op": "state", "gen": state.gen, "key": list(state.key), "decided": state.decided, "up": state.up,
            "passed": state.passed, "reason": state.reason, "changed_at": state.changed_at, "changed": state.changed}  # fmt: skip
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def decode_state(line: bytes) -> State:
    """A worker's state line, every field checked (a worker is a separate process: its bytes are checked)."""
    if len(line) > MAX_STATE_LINE:
        raise ProtocolError(f"a state message of {len(line):,} bytes, more than {MAX_STATE_LINE:,}")
    data = _object(line)
    if data.get("op") != "state" or not _count(data.get("gen")):
        raise ProtocolError("expected {'op': 'state', 'gen': N, ...}")
    key = data.get("key")
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        raise ProtocolError(f"a key is [service, real server], not {key!r}")
    flags = [data.get(name) for name in ("decided", "up", "changed")]
    if not all(isinstance(f, bool) for f in flags):
        raise ProtocolError("decided, up and changed are true or false")
    passed = data.get("passed")
    if not (passed is None or isinstance(passed, bool)):
        raise ProtocolError("passed is true, false or null")
    reason, changed_at = data.get("reason"), data.get("changed_at")
    if not (reason is None or (isinstance(reason, str) and len(reason) <= MAX_REASON)):
        raise ProtocolError(f"the reason is a text of at most {MAX_REASON} characters, or null")
    if not (changed_at is None or (isinstance(changed_at, (int, float)) and not isinstance(changed_at, bool))):
        raise ProtocolError("changed_at is a time in seconds, or null")
    decided, up, changed = flags
    return State(data["gen"], (key[0], key[1]), decided, up, passed, reason, changed_at, changed)


def _object(line: bytes) -> dict:
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a message is a JSON object")
    return data


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
