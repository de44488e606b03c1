"""What the benchmark scripts share: their own section of bench/README.md, option lists, small readers."""

from __future__ import annotations

import re
from pathlib import Path


def replace_section(path: Path, name: str, section: str) -> None:
    """Replace the text between `<!-- results:NAME start -->` and `... end -->` (or append both markers
    with the section); text outside the markers, other benchmarks' sections among it, is kept."""
    start, end = f"<!-- results:{name} start -->", f"<!-- results:{name} end -->"
    block = f"{start}\n{section}{end}"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 on), or None once the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def haproxy_nbthread(cfg: str) -> int | None:
    m = re.search(r"^\s*nbthread\s+(\d+)\s*$", cfg, re.M)
    return int(m.group(1)) if m else None


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def split_choices(text: str, known: dict, kind: str) -> tuple[str, ...]:
    """A comma-separated command-line list, each item one of `known`; an unknown one stops the run."""
    chosen = tuple(item.strip() for item in text.split(",") if item.strip())
    for item in chosen:
        if item not in known:
            raise SystemExit(f"unknown {kind} {item!r}: choose from {','.join(known)}")
    return chosen
