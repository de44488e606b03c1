"""The balance service's state in SQLite: every exam with where it is, and every assignment with its reason.

Each HL7 message and each "next case" is one transaction, committed before the answer goes out (the ACK, the
REST reply), so a service killed at any point loses nothing it acknowledged; on start the worklist is rebuilt
from the exams table (effort assigned per reader included).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path

from .model import Assignment, Exam, Outstanding

SCHEMA = """
CREATE TABLE IF NOT EXISTS exams (
    accession TEXT PRIMARY KEY,
    exam TEXT NOT NULL,               -- the Exam as JSON
    state TEXT NOT NULL,              -- waiting, listed (on a reader's list), opened, signed, cancelled
    reader TEXT NOT NULL DEFAULT '',
    assigned_at REAL, opened_at REAL, signed_at REAL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS exams_state ON exams(state);
CREATE TABLE IF NOT EXISTS assignments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    accession TEXT NOT NULL, reader TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assignments_accession ON assignments(accession);
CREATE TABLE IF NOT EXISTS messages (control_id TEXT PRIMARY KEY, ack TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ups_outbox (     -- DICOM UPS workitems to push (when configured), one per assignment
    uid TEXT PRIMARY KEY, workitem TEXT NOT NULL, pushed_at REAL, tries INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT ''
);
"""


class Store:
    """One SQLite file (WAL); the methods are called from the service's one event loop, each in a transaction."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # an acknowledged message survives a power cut, not only a kill
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")

    # -- writes (inside `with store:`) --------------------------------------------------------------------------

    def put_exam(self, exam: Exam) -> None:
        self.db.execute(
            "INSERT INTO exams(accession, exam, state) VALUES (?, ?, 'waiting')", (exam.accession, json.dumps(asdict(exam)))
        )

    def set_place(self, accession: str, state: str, reader: str = "", outstanding: Outstanding | None = None) -> None:
        self.db.execute(
            "UPDATE exams SET state = ?, reader = ?, assigned_at = ?, opened_at = ?, reason = ? WHERE accession = ?",
            (
                state,
                reader,
                outstanding.assigned_at if outstanding else None,
                outstanding.started if outstanding else None,
                outstanding.reason if outstanding else "",
                accession,
            ),
        )

    def set_signed(self, accession: str, at: float) -> None:
        self.db.execute("UPDATE exams SET state = 'signed', signed_at = ? WHERE accession = ?", (at, accession))

    def set_cancelled(self, accession: str) -> None:
        self.db.execute("UPDATE exams SET state = 'cancelled', reader = '' WHERE accession = ?", (accession,))

    def record(self, assignment: Assignment) -> None:
        self.db.execute(
            "INSERT INTO assignments(accession, reader, at, reason) VALUES (?, ?, ?, ?)",
            (assignment.accession, assignment.reader, assignment.at, assignment.reason),
        )

    def remember_ack(self, control_id: str, ack: str) -> None:
        """The answer to a control ID, so that a message sent again after a lost ACK is answered the same way."""
        self.db.execute("INSERT OR REPLACE INTO messages(control_id, ack) VALUES (?, ?)", (control_id, ack))

    def enqueue_workitem(self, uid: str, workitem: dict) -> None:
        self.db.execute("INSERT OR IGNORE INTO ups_outbox(uid, workitem) VALUES (?, ?)", (uid, json.dumps(workitem)))

    def workitem_pushed(self, uid: str, at: float, error: str) -> None:
        """After a push: done when `error` is empty, else counted as one more try (it is tried again later)."""
        self.db.execute(
            "UPDATE ups_outbox SET pushed_at = ?, tries = tries + 1, last_error = ? WHERE uid = ?",
            (at if not error else None, error, uid),
        )

    # -- reads --------------------------------------------------------------------------------------------------

    def ack_for(self, control_id: str) -> str | None:
        row = self.db.execute("SELECT ack FROM messages WHERE control_id = ?", (control_id,)).fetchone()
        return row[0] if row else None

    def state_of(self, accession: str) -> str | None:
        row = self.db.execute("SELECT state FROM exams WHERE accession = ?", (accession,)).fetchone()
        return row[0] if row else None

    def live(self) -> list[tuple[Exam, str, str, float | None, float | None, str]]:
        """Exams not yet signed or cancelled: (exam, state, reader, assigned_at, opened_at, reason)."""
        rows = self.db.execute(
            "SELECT exam, state, reader, assigned_at, opened_at, reason FROM exams WHERE state IN ('waiting', 'listed', 'opened')"
        )
        return [(Exam(**json.loads(e)), s, r, a, o, why) for e, s, r, a, o, why in rows]

    def effort_by_reader(self) -> dict[str, float]:
        """Effort assigned per reader over every exam still theirs (listed, opened or signed)."""
        rows = self.db.execute(
            "SELECT reader, exam FROM exams WHERE state IN ('listed', 'opened', 'signed') AND reader != ''"
        ).fetchall()
        out: dict[str, float] = {}
        for reader, exam in rows:
            out[reader] = out.get(reader, 0.0) + json.loads(exam)["effort"]
        return out

    def signed_since(self, since: float) -> list[tuple[str, float, float]]:
        """(reader, signed_at, effort) of exams signed since `since` (the fairness chart)."""
        rows = self.db.execute("SELECT reader, signed_at, exam FROM exams WHERE state = 'signed' AND signed_at >= ?", (since,))
        return [(r, t, json.loads(e)["effort"]) for r, t, e in rows]

    def assignments(self, accession: str | None = None, limit: int = 200) -> list[dict]:
        query = "SELECT accession, reader, at, reason FROM assignments"
        args: tuple = ()
        if accession:
            query += " WHERE accession = ?"
            args = (accession,)
        rows = self.db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [{"accession": a, "reader": r, "at": t, "reason": why} for a, r, t, why in rows]

    def pending_workitems(self, limit: int = 50) -> list[dict]:
        rows = self.db.execute("SELECT workitem FROM ups_outbox WHERE pushed_at IS NULL ORDER BY rowid LIMIT ?", (limit,))
        return [json.loads(w) for (w,) in rows]

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT state, count(*) FROM exams GROUP BY state").fetchall())
