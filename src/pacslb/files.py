"""Writing files in the state directory: whole or not at all."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


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
