"""HAProxy's own notices, warnings and alerts, copied from its log file into the controller's log, and the
log rotated when it grows past LOG_ROTATE_BYTES (HAProxy appends with O_APPEND, so it writes on at the new end)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

haproxy_log = logging.getLogger("pacslb.haproxy")
log = logging.getLogger("pacslb.controller")

LOG_ROTATE_BYTES = 64 * 1024 * 1024
MAX_READ = 16 * 1024 * 1024
MAX_PENDING = 65536  # a line longer than this without a newline is cut

_LOG_LINE = re.compile(r"^\[(NOTICE|WARNING|ALERT)\]\s+\((\d+)\)\s*:\s*(.*)$")
_LOG_LEVELS = {"NOTICE": logging.INFO, "WARNING": logging.WARNING, "ALERT": logging.ERROR}


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def copy_new_lines(path: Path, position: int, pending: bytes) -> tuple[int, bytes]:
    """Copy the messages written since `position` (blocking); returns the new position and an unfinished line."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0, b""
    if size < position:  # truncated (rotated): start over
        position, pending = 0, b""
    if size > position:
        with open(path, "rb") as f:
            f.seek(position)
            data = f.read(min(size - position, MAX_READ))
        position += len(data)
        lines = (pending + data).split(b"\n")
        pending = lines.pop()[-MAX_PENDING:]
        for raw in lines:
            match = _LOG_LINE.match(raw.decode(errors="replace").strip())
            if match:
                haproxy_log.log(_LOG_LEVELS[match[1]], "(%s) %s", match[2], match[3])
    if position > LOG_ROTATE_BYTES:
        return rotate(path), b""
    return position, pending


def rotate(path: Path) -> int:
    """Copy the log aside to <name>.1 and truncate it; returns the new read position (0)."""
    old = path.with_name(path.name + ".1")
    with open(path, "rb") as src, open(old, "wb") as dst:
        while chunk := src.read(1024 * 1024):
            dst.write(chunk)
    os.truncate(path, 0)
    log.info("%s rotated to %s", path, old)
    return 0
