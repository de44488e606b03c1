"""A small SQLite helper shared by the revision, users and audit stores: one connection, one transaction per call."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

BUSY_TIMEOUT_MS = 10_000


class StoreError(Exception):
    """The store cannot be read or written (the message says which file and why)."""


class Connections:
    """Connections kept open, one per thread, for a store written on every change (revisions, audit).

    Closing the last connection to a WAL database checkpoints it (the log copied into the file, both
    fsynced) and opening one reads the schema again: on a busy disk that was most of a runtime change's
    time. A kept connection leaves the checkpoint to SQLite's automatic one (every 1,000 pages of log).
    Commits stay as durable: the log is fsynced at each (synchronous FULL). A file replaced meanwhile (a
    restore) is noticed by its inode and opened again.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, path: Path) -> sqlite3.Connection | None:
        found = getattr(self._local, "db", None)
        if found is None:
            return None
        db, identity = found
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != identity:
            self.drop()
            return None
        return db

    def put(self, path: Path, db: sqlite3.Connection) -> None:
        st = os.stat(path)
        self._local.db = (db, (st.st_dev, st.st_ino))

    def drop(self) -> None:
        found = getattr(self._local, "db", None)
        self._local.db = None
        if found is not None:
            with contextlib.suppress(sqlite3.Error):
                found[0].close()


def _open(path: Path, synchronous: str | None) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        if synchronous is not None:
            db.execute(f"PRAGMA synchronous = {synchronous}")
        db.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from None
    return db


@contextlib.contextmanager
def transaction(
    path: Path, write: bool = True, synchronous: str | None = None, keep: Connections | None = None
) -> Iterator[sqlite3.Connection]:
    """A connection in WAL mode with one transaction: committed when the block ends, rolled back if it raises.

    Writers take the write lock at once (BEGIN IMMEDIATE), so the CLI and the running controller can
    both change the same file safely. With `keep`, the thread's connection is kept for the next call.
    """
    db = keep.get(path) if keep is not None else None
    fresh = db is None
    if db is None:
        db = _open(path, synchronous)
    ok = False
    try:
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield db
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled it back itself (an I/O error): the cause stays the error
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        ok = True
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from None
    finally:
        if keep is not None and ok:
            if fresh:
                keep.put(path, db)
        elif keep is not None and not fresh:
            keep.drop()  # whatever went wrong, the next call starts from a new connection
        else:
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
