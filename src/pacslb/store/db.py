"""A small SQLite helper shared by the revision, users and audit stores: one connection, one transaction per call."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Iterator

BUSY_TIMEOUT_MS = 10_000


class StoreError(Exception):
    """The store cannot be read or written (the message says which file and why)."""


@contextlib.contextmanager
def transaction(path: Path, write: bool = True, synchronous: str | None = None) -> Iterator[sqlite3.Connection]:
    """A connection in WAL mode with one transaction: committed when the block ends, rolled back if it raises.

    Writers take the write lock at once (BEGIN IMMEDIATE), so the CLI and the running controller can
    both change the same file safely.
    """
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from None
    try:
        db.execute("PRAGMA journal_mode = WAL")
        if synchronous is not None:
            db.execute(f"PRAGMA synchronous = {synchronous}")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from None
    finally:
        db.close()


def create(path: Path, schema: str, version: int, mode: int = 0o600) -> None:
    """Create the file and its tables (idempotent); refuse a file written by a newer schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists()
    if fresh:
        # created with its final mode: password hashes are never readable by others, not even for a moment
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, mode))
    with transaction(path) as db:
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found > version:
            raise StoreError(f"{path} was written by a newer pacslb (schema {found} > {version})")
        for statement in schema.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
    with contextlib.suppress(OSError):
        os.chmod(path, mode)
