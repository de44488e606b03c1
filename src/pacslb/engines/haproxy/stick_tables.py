"""Stick tables at run time: how many entries one holds (`show table`), and emptying it (`clear table`).

`show table NAME` answers a header line `# table: NAME, type: ip, size:100000, used:3` and one line per
entry; `clear table NAME` answers nothing when it worked. HAProxy keeps the entries that an open connection
still uses (their `use` count is above 0): they expire on their own, or go at the next clear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .runtime import RuntimeAPI, RuntimeAPIError, check_reply

_HEADER = re.compile(r"^# table: (?P<name>[^,]+), type: (?P<type>[^,]+), size:(?P<size>\d+), used:(?P<used>\d+)", re.M)
_ENTRY = re.compile(r"^0x[0-9a-f]+: key=(?P<key>\S+) use=(?P<use>\d+)", re.M)


@dataclass(frozen=True)
class TableState:
    name: str
    type: str
    size: int
    used: int
    keys: tuple[str, ...]  # the entries' keys as HAProxy writes them (client addresses, session IDs, cookies)


def parse_show_table(name: str, text: str) -> TableState:
    """The header and entry keys of `show table NAME`; RuntimeAPIError when HAProxy has no such table."""
    header = _HEADER.search(text)
    if header is None or header["name"] != name:
        raise RuntimeAPIError(f"HAProxy has no stick table {name!r}: {text.strip() or '(no answer)'}")
    keys = tuple(m["key"] for m in _ENTRY.finditer(text))
    return TableState(name, header["type"], int(header["size"]), int(header["used"]), keys)


def show_table(api: RuntimeAPI, name: str) -> TableState:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", name):
        raise ValueError(f"not a table name: {name!r}")
    return parse_show_table(name, api.command(f"show table {name}"))


def clear_table(api: RuntimeAPI, name: str) -> tuple[TableState, TableState]:
    """Empty the table `name`: its state before and after (entries open connections use stay)."""
    before = show_table(api, name)
    check_reply(f"clear table {name}", api.command(f"clear table {name}"))
    return before, show_table(api, name)
