"""Metrics history: requests, sessions and errors per virtual service, sampled from HAProxy, in SQLite.

Every SAMPLE_INTERVAL seconds the sampler (pacslb.web.history) reads HAProxy's `show stat` and hands the
rows to `counters_from_rows` (web/counters.py, pure); `rates` (pure) turns two readings into one Sample per virtual
service:

    requests   requests per second over the interval (HTTP requests; connections for TCP services)
    sessions   current sessions at the moment of the reading
    errors     errors per second over the interval: responses 5xx plus connection errors to real servers

HAProxy's counters start again at zero when a reload brings a new worker; a counter that went down is
taken as started again (its new value is what happened since), so a reload never shows a negative rate.
`MetricsStore` keeps KEEP_SECONDS (24 h) and prunes older rows each time it writes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

SAMPLE_INTERVAL = 10.0
KEEP_SECONDS = 24 * 3600.0
BUSY_TIMEOUT_MS = 5_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    ts        REAL    NOT NULL,
    service   TEXT    NOT NULL,
    requests  REAL    NOT NULL,
    sessions  INTEGER NOT NULL,
    errors    REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_service_ts ON samples (service, ts);
CREATE INDEX IF NOT EXISTS samples_ts ON samples (ts);
"""


@dataclass(frozen=True)
class Counters:
    """One virtual service's cumulative counters and current sessions at one reading."""

    requests: int
    errors: int
    sessions: int


@dataclass(frozen=True)
class Sample:
    ts: float
    service: str
    requests: float  # per second
    sessions: int
    errors: float  # per second


def _delta(now: int, before: int) -> int:
    """Growth of a counter; one that went down started again from zero (a reload's new worker)."""
    return now - before if now >= before else now


def rates(previous: dict[str, Counters] | None, current: dict[str, Counters], seconds: float, ts: float) -> list[Sample]:
    """Samples from two readings `seconds` apart (pure). A service without a previous reading has no sample
    yet (a rate needs two readings; a made-up 0 would draw a dip at every start)."""
    samples = []
    for name, now in current.items():
        before = (previous or {}).get(name)
        if before is None or seconds <= 0:
            continue
        requests = _delta(now.requests, before.requests) / seconds
        errors = _delta(now.errors, before.errors) / seconds
        samples.append(Sample(ts, name, round(requests, 3), now.sessions, round(errors, 3)))
    return samples


class MetricsStore:
    """`<state>/metrics.sqlite`: samples of the last KEEP_SECONDS, for the WebUI's graphs."""

    def __init__(self, path: Path, keep_seconds: float = KEEP_SECONDS, clock=time.time) -> None:
        self.path = Path(path)
        self.keep_seconds = keep_seconds
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o640)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # a lost sample on power cut is no loss
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def add(self, samples: Iterable[Sample]) -> None:
        """Write samples and prune what is older than the window, in one transaction."""
        rows = [(s.ts, s.service, s.requests, s.sessions, s.errors) for s in samples]
        with self._connect() as db:
            if rows:
                db.executemany("INSERT INTO samples (ts, service, requests, sessions, errors) VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("DELETE FROM samples WHERE ts < ?", (self.clock() - self.keep_seconds,))

    def prune(self) -> int:
        """Delete samples older than the window; return how many."""
        with self._connect() as db:
            return db.execute("DELETE FROM samples WHERE ts < ?", (self.clock() - self.keep_seconds,)).rowcount

    def series(self, since: float, service: str | None = None) -> dict[str, list[Sample]]:
        """Samples since `since` (epoch seconds), per service, oldest first."""
        query = "SELECT ts, service, requests, sessions, errors FROM samples WHERE ts >= ?"
        args: tuple = (since,)
        if service is not None:
            query += " AND service = ?"
            args += (service,)
        with self._connect() as db:
            found = db.execute(query + " ORDER BY service, ts", args).fetchall()
        series: dict[str, list[Sample]] = {}
        for ts, name, requests, sessions, errors in found:
            series.setdefault(name, []).append(Sample(ts, name, requests, sessions, errors))
        return series

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
