"""Writing files in the state directory: whole or not at all."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def temp_file(directory: Path, prefix: str, text: str, mode: int = 0o640) -> Path:
    """Write `text` to a new temporary file in `directory` (fsynced) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, mode)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def replace(temp: Path, target: Path) -> None:
    """Move a finished temporary file over `target` atomically (same directory, same file system)."""
    os.replace(temp, target)
    try:
        dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(target: Path, text: str, mode: int = 0o640) -> None:
    """Readers see the old file or the new one, never half of one."""
    replace(temp_file(target.parent, f".{target.name}.", text, mode), target)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None


def digest_of(path: Path) -> str | None:
    """The SHA-256 of a file's text, None when there is no such file (an engine's applied_digest)."""
    text = read_text(path)
    return sha256(text) if text is not None else None


def read_record(path: Path, parse: Callable[[Any], T], empty: T, log: logging.Logger, unreadable: str) -> T:
    """The JSON record at `path` (what an engine installed on the host, for the next controller) as `parse`
    makes it of the decoded data; `empty` when there is none, and also, with a warning ending in `unreadable`,
    when it cannot be read: what it named is then left alone, never removed on a guess."""
    text = read_text(path)
    if not text:
        return empty
    try:
        return parse(json.loads(text))
    except (ValueError, KeyError, AttributeError, TypeError):
        log.warning("%s cannot be read: %s", path, unreadable)
        return empty


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON record atomically, its folder made (0750) when missing."""
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1) + "\n")
