"""The audit log: every change and every failed login, in SQLite (<state>/audit.sqlite, mode 0600).

One row per event: when, who (user name, or what was tried), from where (client address), what
(action and target), outcome (ok, denied, failed, invalid, throttled...) and details (JSON).

Rows are added, with two exceptions that keep a flood of login attempts from filling the disk:
  - throttled logins are one row per (user name, address) per THROTTLED_WINDOW, whose detail counts
    them (`record_throttled`: `{"count", "first", "last"}`), rather than a row per attempt;
  - rows older than RETENTION_DAYS, and the oldest beyond MAX_ROWS, are deleted (checked at most once
    every PRUNE_EVERY seconds, when a row is added). Copy the file elsewhere to keep more.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import db

SCHEMA_VERSION = 1
RETENTION_DAYS = 400  # a year and a month: a yearly audit still finds last year's events
MAX_ROWS = 2_000_000  # about 1 GB at most, whatever happens
PRUNE_EVERY = 3600.0
THROTTLED_WINDOW = 15 * 60.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    username  TEXT NOT NULL,
    client_ip TEXT,
    via       TEXT,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL DEFAULT '',
    outcome   TEXT NOT NULL,
    detail    TEXT
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS audit_throttled ON audit (username, client_ip) WHERE outcome = 'throttled';
CREATE INDEX IF NOT EXISTS audit_user ON audit (username, action, outcome, at)
"""


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: float
    username: str
    client_ip: str | None
    via: str | None
    action: str
    target: str
    outcome: str
    detail: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at, "username": self.username, "client_ip": self.client_ip, "via": self.via,
            "action": self.action, "target": self.target, "outcome": self.outcome, "detail": self.detail,
        }  # fmt: skip


class AuditLog:
    def __init__(self, path: Path, clock=time.time, retention_days: float = RETENTION_DAYS, max_rows: int = MAX_ROWS) -> None:
        self.path = Path(path)
        self.clock = clock
        self.retention_days = retention_days
        self.max_rows = max_rows
        self._pruned_at = float("-inf")
        self._connections = db.Connections()  # one kept per thread (store/db.py): a line per change costs one fsync
        db.create(self.path, SCHEMA, SCHEMA_VERSION)

    def record(
        self,
        username: str,
        action: str,
        *,
        target: str = "",
        outcome: str = "ok",
        client_ip: str | None = None,
        via: str | None = None,
        detail: Any = None,
    ) -> int:
        """Add one event; returns its id (blocking, a few milliseconds)."""
        text = None if detail is None else json.dumps(detail, default=str, ensure_ascii=False)[:20_000]
        now = self.clock()
        with db.transaction(self.path, keep=self._connections) as conn:
            cur = conn.execute(
                "INSERT INTO audit (at, username, client_ip, via, action, target, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (now, username[:200], client_ip, via, action, target[:500], outcome, text),
            )
            row_id = int(cur.lastrowid)
            self._maybe_prune(conn, now)
            return row_id

    def record_throttled(self, username: str, client_ip: str | None, count: int, *, via: str | None = "session",
                         window: float = THROTTLED_WINDOW, detail: dict | None = None) -> int:  # fmt: skip
        """Count `count` throttled logins of `username` from `client_ip`: added to the row of this (user, address)
        begun less than `window` seconds ago, else a new row. Returns the row's id."""
        now = self.clock()
        username = username[:200]
        with db.transaction(self.path, keep=self._connections) as conn:
            row = conn.execute(
                "SELECT id, detail FROM audit WHERE outcome = 'throttled' AND action = 'login' AND username = ? "
                "AND client_ip IS ? AND at >= ? ORDER BY id DESC LIMIT 1",
                (username, client_ip, now - window),
            ).fetchone()
            if row is not None:
                found = json.loads(row[1]) if row[1] else {}
                found = {**found, **(detail or {}), "count": int(found.get("count", 1)) + count, "last": now}
                conn.execute("UPDATE audit SET detail = ? WHERE id = ?", (json.dumps(found, default=str)[:20_000], row[0]))
                return int(row[0])
            text = json.dumps({**(detail or {}), "count": count, "first": now, "last": now}, default=str)[:20_000]
            cur = conn.execute(
                "INSERT INTO audit (at, username, client_ip, via, action, target, outcome, detail) "
                "VALUES (?, ?, ?, ?, 'login', '', 'throttled', ?)",
                (now, username, client_ip, via, text),
            )
            self._maybe_prune(conn, now)
            return int(cur.lastrowid)

    def prune(self, now: float | None = None) -> int:
        """Delete rows older than `retention_days` and the oldest beyond `max_rows`; returns how many went."""
        now = self.clock() if now is None else now
        with db.transaction(self.path, keep=self._connections) as conn:
            return self._prune(conn, now)

    def _maybe_prune(self, conn, now: float) -> None:
        if now - self._pruned_at >= PRUNE_EVERY:
            self._prune(conn, now)

    def _prune(self, conn, now: float) -> int:
        self._pruned_at = now
        gone = conn.execute("DELETE FROM audit WHERE at < ?", (now - self.retention_days * 86400,)).rowcount
        newest = conn.execute("SELECT MAX(id) FROM audit").fetchone()[0]
        if newest is not None:
            gone += conn.execute("DELETE FROM audit WHERE id <= ?", (newest - self.max_rows,)).rowcount
        return gone

    def list(
        self,
        limit: int = 100,
        before: int | None = None,
        username: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        target_contains: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[AuditEvent]:
        """The latest events first, optionally filtered: `target_contains` is a substring of the object (no wildcards),
        `since` and `until` bound the time (seconds since the epoch, both included)."""
        where, args = [], []
        for column, value in (("id <", before), ("username =", username), ("action =", action), ("outcome =", outcome),
                              ("at >=", since), ("at <=", until)):  # fmt: skip
            if value is not None:
                where.append(f"{column} ?")
                args.append(value)
        if target_contains:  # instr, not LIKE: '%' and '_' in what an admin types mean themselves
            where.append("instr(target, ?) > 0")
            args.append(target_contains)
        query = "SELECT id, at, username, client_ip, via, action, target, outcome, detail FROM audit"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id DESC LIMIT ?"
        with db.transaction(self.path, write=False, keep=self._connections) as conn:
            rows = conn.execute(query, (*args, limit)).fetchall()
        return [AuditEvent(*row[:8], json.loads(row[8]) if row[8] else None) for row in rows]

    def last_logins(self, usernames: list[str]) -> dict[str, float | None]:
        """When each of `usernames` last logged in successfully (None: not as far as the log goes back); one index
        lookup each (audit_user), whatever the size of the log."""
        with db.transaction(self.path, write=False, keep=self._connections) as conn:
            return {name: conn.execute("SELECT MAX(at) FROM audit WHERE username = ? AND action = 'login' AND outcome = 'ok'",
                                       (name,)).fetchone()[0] for name in usernames}  # fmt: skip
