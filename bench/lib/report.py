"""Where a benchmark's results go: its JSON file in bench/results/, and its own section of bench/README.md."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any


def replace_section(path: Path, name: str, section: str) -> None:
    """Replace the text between `<!-- results:NAME start -->` and `... end -->` (or append both markers
    with the section); text outside the markers, other benchmarks' sections among it, is kept."""
    start, end = markers(name)
    block = f"{start}\n{section}{end}"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of the section NAME."""
    return f"<!-- results:{name} start -->", f"<!-- results:{name} end -->"


def fmt(x: float | None, spec: str) -> str:
    """A number of a table, "-" where there is none."""
    return "-" if x is None else format(x, spec)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def stamp(when: datetime.datetime | str) -> str:
    """The timestamp of a results file name (20261127T215804Z), from a datetime or an ISO string."""
    if isinstance(when, str):
        when = datetime.datetime.fromisoformat(when)
    return when.strftime("%Y%m%dT%H%M%SZ")


def write_results(results_dir: Path, name: str, doc: dict[str, Any]) -> Path:
    """Write results_dir/NAME (a file name such as 20261127T215804Z-l7.json), indented JSON; its path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / name
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
