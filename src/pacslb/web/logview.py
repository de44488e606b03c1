"""HAProxy's log file as the log page shows it: each message once, a time where HAProxy wrote one, bursts folded.

Why lines came twice: HAProxy writes each of its own messages (a server going DOWN, a proxy stopping) to stderr as
'[WARNING]  (PID) : text' *and* through the `log stdout format raw` target as 'text'; both reach haproxy.log. The
tagged copy is kept (it has the level and the PID), the bare twin dropped: usually the next line, but around a
reload the old and the new worker write at once and a twin may come a few lines later, or before its tagged copy
(TWIN_WINDOW lines either way).

Why every reload added ~100 warning lines: on a reload the old worker reports 'Proxy NAME stopped (cumulated conns:
...)' for every frontend and backend (True PACS: 41 proxies, so 82 lines with the twins, plus the new worker's
server-state lines). That is HAProxy's normal graceful reload, not a configuration fault: such a run is folded into
one line with its count and the proxies' names. So is a run of one message about many quoted names (a reload's
"server-state partially applied for server 'B/S', ..." per server), and a run of one repeated line.

Traffic lines carry their accept date ('[07/Dec/2026:09:19:14.822]'): shown as the line's time. HAProxy 2.6 writes
its own messages without a time (stderr and the raw log target have none), but the controller copies each of them into
its own log within LOG_POLL (0.5 s) of HAProxy writing it ('... pacslb.haproxy: (PID) message', engines/haproxy/
logcopy.py): that copy's time is shown for them, marked as the time it was read. A message no copy is found for (older
than the controller log's tail, or written while no controller ran) shows '·'.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

_TAGGED = re.compile(r"^\[(NOTICE|WARNING|ALERT)\]\s+\((\d+)\)\s*:\s?(.*)$")
_ACCEPT_DATE = re.compile(r"\[(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\.(\d{3}))?\]")
_QUOTED = re.compile(r"'([^']{1,200})'")
_PROXY_STOPPED = re.compile(r"^Proxy (\S+) stopped \(cumulated conns: FE: \d+, BE: \d+\)\.$")
_COPY = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) \S+\s+pacslb\.haproxy: \((\d+)\) (.*)$")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
LEVEL_CLASS = {"ALERT": "log-alert", "WARNING": "log-warn", "NOTICE": "log-notice"}
COPY_TAIL_BYTES = 2 * 1024 * 1024  # how far back the log page reads the controller log for those times
MAX_NAMES_SHOWN = 8  # a folded 'Proxy stopped' line names this many proxies, then '…'
TWIN_WINDOW = 200  # how many lines apart a message's tagged copy and its bare twin may be


@dataclass
class LogLine:
    """One line of the log page: `text` as HAProxy wrote it (or the folded summary), `count` lines it stands for."""

    text: str
    level: str | None = None  # NOTICE, WARNING, ALERT (HAProxy's own messages), None for traffic
    time: str | None = None  # 'YYYY-MM-DD HH:MM:SS.mmm' where the line carries one, or when it was read (copied)
    copied: bool = False  # the time is when the controller read the message (HAProxy wrote none)
    count: int = 1
    names: list[str] = field(default_factory=list)  # a folded 'Proxy stopped' run: the proxies

    @property
    def css_class(self) -> str:
        return LEVEL_CLASS.get(self.level or "", "")


def line_time(text: str) -> str | None:
    """The accept date of a traffic line as 'YYYY-MM-DD HH:MM:SS.mmm', or None."""
    found = _ACCEPT_DATE.search(text)
    if not found or found[2] not in _MONTHS:
        return None
    day, month, year, hh, mm, ss, ms = found.groups()
    try:
        when = dt.datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss))
    except ValueError:
        return None
    return when.strftime("%Y-%m-%d %H:%M:%S") + (f".{ms}" if ms else "")


def copy_times(controller_lines: list[str]) -> dict[tuple[str, str], list[str]]:
    """(PID, message) -> the times the controller copied it, oldest first, from the controller log's lines."""
    found: dict[tuple[str, str], list[str]] = {}
    for line in controller_lines:
        match = _COPY.match(line)
        if match:
            found.setdefault((match[3], match[4].strip()), []).append(f"{match[1]}.{match[2]}")
    return found


def _read_times(lines: list[str], copies: dict[tuple[str, str], list[str]]) -> list[str | None]:
    """The copy time of each tagged line: matched from the newest back, so both tails line up at their ends."""
    left = {key: list(times) for key, times in copies.items()}
    times: list[str | None] = [None] * len(lines)
    for i in range(len(lines) - 1, -1, -1):
        level, pid, message = _message(lines[i])
        if level is not None and left.get((pid or "", message.strip())):
            times[i] = left[(pid or "", message.strip())].pop()
    return times


def _message(text: str) -> tuple[str | None, str | None, str]:
    """(level, pid, message) of a tagged line; (None, None, text) otherwise."""
    found = _TAGGED.match(text)
    return (found[1], found[2], found[3]) if found else (None, None, text)


def _twin_key(message: str) -> str:
    """What a tagged message and its bare twin share: the same words, quotes aside (HAProxy quotes names on stderr
    only: "backend 'b' has no server available!" / "backend b has no server available!")."""
    return message.replace("'", "").rstrip()


def _bare_twins(lines: list[str]) -> set[int]:
    """The indices of the bare twins of tagged messages (pure): each bare line paired with one tagged line of the same
    words at most TWIN_WINDOW lines away, before or after it; every line is paired once at most."""
    unpaired: dict[tuple[bool, str], list[int]] = {}  # (tagged?, words) -> indices still waiting for their twin
    twins: set[int] = set()
    for index, text in enumerate(lines):
        level, _, message = _message(text)
        tagged = level is not None
        key = _twin_key(message)
        waiting = [i for i in unpaired.get((not tagged, key), []) if index - i <= TWIN_WINDOW]
        if waiting:
            partner = waiting.pop(0)
            unpaired[(not tagged, key)] = waiting
            twins.add(index if not tagged else partner)
        else:
            unpaired.setdefault((tagged, key), []).append(index)
    return twins


def _shape(level: str | None, pid: str | None, message: str) -> tuple[tuple[str, ...] | None, str | None]:
    """What makes a run of HAProxy messages one message said about many names: (shape, the name), or (None, None).

    'Proxy NAME stopped (cumulated conns: ...)' (a reload's old worker, per proxy) and messages that differ only in
    their quoted names ("server-state partially applied for server 'B/S', ...", per server after a reload)."""
    if level is None:
        return None, None
    stopped = _PROXY_STOPPED.match(message)
    if stopped:
        return ("proxy-stopped", level, pid or ""), stopped[1]
    quoted = _QUOTED.findall(message)
    if quoted:
        return ("quoted", level, pid or "", _QUOTED.sub("'…'", message)), ", ".join(quoted)
    return None, None


def fold(lines: list[str], copies: dict[tuple[str, str], list[str]] | None = None) -> list[LogLine]:
    """The lines of haproxy.log as the log page shows them (pure): twins dropped, bursts folded, times found
    (`copies`: copy_times() of the controller log, for HAProxy's own messages)."""
    read_at = _read_times(lines, copies or {})
    twins = _bare_twins(lines)
    out: list[LogLine] = []
    shapes: list[tuple[str, ...] | None] = []  # out[i]'s shape
    for index, text in enumerate(lines):
        if index in twins:
            continue  # the raw log target's copy of a tagged message
        level, pid, message = _message(text)
        shape, name = _shape(level, pid, message)
        if out and shape is not None and shapes[-1] == shape:
            out[-1].count += 1
            out[-1].names.append(name or "")
            continue
        if out and shape is None and shapes[-1] is None and out[-1].text == text:
            out[-1].count += 1
            continue
        time = line_time(text) if level is None else read_at[index]
        out.append(LogLine(text=text, level=level, time=time, copied=level is not None and time is not None,
                           names=[name] if name else []))  # fmt: skip
        shapes.append(shape)
    for line, shape in zip(out, shapes, strict=True):
        if shape is None or len(line.names) < 2:
            continue
        shown = ", ".join(line.names[:MAX_NAMES_SHOWN]) + (", …" if len(line.names) > MAX_NAMES_SHOWN else "")
        if shape[0] == "proxy-stopped":  # the old worker's goodbye after a reload, one line per proxy
            line.text = f"[{shape[1]}]  ({shape[2]}) : {len(line.names)} proxies stopped (the old worker after a reload): {shown}"
        else:
            line.text = f"[{shape[1]}]  ({shape[2]}) : {shape[3]} ({len(line.names)} times, for {shown})"
    return out
