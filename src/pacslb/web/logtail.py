"""The end of HAProxy's log file, for the WebUI's live log page."""

from __future__ import annotations

import os
from pathlib import Path

MAX_LINES = 2000
CHUNK = 64 * 1024


def tail(path: Path, lines: int, contains: str = "", max_bytes: int = 8 * 1024 * 1024) -> list[str]:
    """The last `lines` lines of a file (those containing `contains`, when given), reading backwards at
    most `max_bytes`; [] when the file does not exist. Lines are decoded leniently (logs carry client bytes)."""
    lines = max(1, min(lines, MAX_LINES))
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return []
    with f:
        end = f.seek(0, os.SEEK_END)
        position, data, found = end, b"", []
        while position > 0 and end - position < max_bytes:
            step = min(CHUNK, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
            found = _matching(data, contains, whole_first=position == 0)
            if len(found) >= lines:
                break
    return found[-lines:]


def _matching(data: bytes, contains: str, whole_first: bool) -> list[str]:
    text = data.decode("utf-8", errors="replace").splitlines()
    if not whole_first and text:
        text = text[1:]  # the first line may be cut in the middle
    needle = contains.lower()
    return [line for line in text if not needle or needle in line.lower()]
