"""The audit log: every change and every failed login, in SQLite (<state>/audit.sqlite, mode 0600).

One row per event: when, who (user name, or what was tried), from where (client address), what
(action and target), outcome (ok, denied, failed, invalid, throttled...) and details (JSON).
Rows are only ever added; `pacslb` never edits or deletes them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import db

SCHEMA_VERSION = 1
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
CREATE INDEX IF NOT EXISTS audit_at ON audit (at)
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
    def __init__(self, path: Path, clock=time.time) -> None:
        self.path = Path(path)
        self.clock = clock
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
        with db.transaction(self.path) as conn:
            cur = conn.execute(
                "INSERT INTO audit (at, username, client_ip, via, action, target, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.clock(), username[:200], client_ip, via, action, target[:500], outcome, text),
            )
            return int(cur.lastrowid)

    def list(
        self,
        limit: int = 100,
        before: int | None = None,
        username: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
    ) -> list[AuditEvent]:
        """The latest events first, optionally filtered."""
        where, args = [], []
        for column, value in (("id <", before), ("username =", username), ("action =", action), ("outcome =", outcome)):
            if value is not None:
                where.append(f"{column} ?")
                args.append(value)
        query = "SELECT id, at, username, client_ip, via, action, target, outcome, detail FROM audit"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id DESC LIMIT ?"
        with db.transaction(self.path, write=False) as conn:
            rows = conn.execute(query, (*args, limit)).fetchall()
        return [AuditEvent(*row[:8], json.loads(row[8]) if row[8] else None) for row in rows]
