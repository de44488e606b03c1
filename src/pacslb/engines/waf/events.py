"""WAF events: what ModSecurity recorded about requests that rules matched (audit logs, one JSON object a line).

`parse(line, policy)` is pure: one audit-log line to a `WafEvent` (rule ids, messages, the matched data truncated,
the client, the request line; never a body). `read_events` reads the newest events of every policy's log, at most
READ_BYTES from the end of each file; `summarize` counts them per rule and per service.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from .paths import WafPaths

MAX_DATA = 200  # characters of matched data kept per message: enough to see the false positive, never an image
MAX_URI = 500
READ_BYTES = 4 * 1024 * 1024  # of each audit log, from its end
MAX_EVENTS = 10_000

# rules that only add up the score or report it: not the reason a request matched
SCORING_RULES = frozenset({"949110", "959100", "980130", "980140"})
_FIELD = re.compile(r'\[(id|msg|data|severity|tag) "((?:[^"\\]|\\.)*)"\]')


@dataclass(frozen=True)
class Match:
    rule_id: str
    message: str
    data: str
    severity: str


@dataclass(frozen=True)
class WafEvent:
    time: str
    policy: str
    service: str
    client: str
    method: str
    uri: str
    status: int | None
    blocked: bool
    rule_ids: tuple[str, ...]  # the rules that matched, without the scoring ones
    matches: tuple[Match, ...]
    transaction: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse(line: str, policy: str) -> WafEvent | None:
    """One line of a policy's audit log; None for a line that is not a request a rule matched."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    audit = entry.get("audit_data") or {}
    messages = audit.get("messages") or []
    transaction = entry.get("transaction") or {}
    request_line = (entry.get("request") or {}).get("request_line") or ""
    status = (entry.get("response") or {}).get("status")
    matches = []
    for message in messages:
        fields: dict[str, str] = {}
        for name, value in _FIELD.findall(message):
            fields.setdefault(name, value)
        if "id" in fields:
            matches.append(Match(fields["id"], _truncate(fields.get("msg", ""), MAX_DATA),
                                 _truncate(fields.get("data", ""), MAX_DATA), fields.get("severity", "")))  # fmt: skip
    blocked = any(m.startswith("Access denied") for m in messages)
    if not matches and status != 413:
        return None
    method, _, rest = request_line.partition(" ")
    uri = rest.rsplit(" ", 1)[0] if " " in rest else rest
    ids = tuple(dict.fromkeys(m.rule_id for m in matches if m.rule_id not in SCORING_RULES))
    return WafEvent(
        time=str(transaction.get("time", "")),
        policy=policy,
        service=policy.split(".", 1)[0],
        client=str(transaction.get("remote_address", "")),
        method=method,
        uri=_truncate(uri, MAX_URI),
        status=status if isinstance(status, int) else None,
        blocked=blocked or status == 413,
        rule_ids=ids,
        matches=tuple(matches),
        transaction=str(transaction.get("transaction_id", "")),
    )


def _tail_lines(path: Path, limit: int = READ_BYTES) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.decode(errors="replace").splitlines()
    return lines[1:] if size > limit else lines  # the first line of a tail is cut


def policy_logs(paths: WafPaths) -> dict[str, Path]:
    """{policy: its audit log} for every audit log of the state directory."""
    return {p.name.removeprefix("audit-").removesuffix(".log"): p for p in sorted(paths.dir.glob("audit-*.log"))}


def read_events(paths: WafPaths, service: str | None = None, limit: int = 100) -> list[WafEvent]:
    """The newest `limit` events (newest first), of one service's policies or of all."""
    events: list[WafEvent] = []
    for policy, path in policy_logs(paths).items():
        if service is not None and policy.split(".", 1)[0] != service:
            continue
        events += [e for line in _tail_lines(path) if (e := parse(line, policy)) is not None]
    events.sort(key=lambda e: (_sortable(e.time), e.transaction), reverse=True)
    return events[: max(0, min(limit, MAX_EVENTS))]


_MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}


def _sortable(when: str) -> str:
    """ModSecurity's '07/Dec/2026:05:57:38.578935 +0000' as '2026-12-07T05:57:38.578935'."""
    m = re.match(r"(\d{2})/(\w{3})/(\d{4}):(\d{2}:\d{2}:\d{2}(?:\.\d+)?)", when)
    return f"{m[3]}-{_MONTHS.get(m[2], 0):02d}-{m[1]}T{m[4]}" if m else when


def summarize(events: Iterable[WafEvent]) -> dict[str, Any]:
    """Counts per rule (with its message) and per service, blocked and detected."""
    rules: Counter = Counter()
    messages: dict[str, str] = {}
    services: dict[str, Counter] = {}
    total = 0
    for event in events:
        total += 1
        for match in event.matches:
            if match.rule_id in event.rule_ids:
                messages.setdefault(match.rule_id, match.message)
        rules.update(event.rule_ids)
        services.setdefault(event.service, Counter())["blocked" if event.blocked else "detected"] += 1
    return {
        "events": total,
        "rules": [{"rule_id": r, "count": n, "message": messages.get(r, "")} for r, n in rules.most_common()],
        "services": [{"service": s, "blocked": c["blocked"], "detected": c["detected"]} for s, c in sorted(services.items())],
    }
