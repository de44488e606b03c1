"""Revisions: every change of the running configuration, kept in SQLite (DESIGN.md, principle 6).

A revision holds the whole configuration (as JSON, and as YAML: the text the user gave when there
was one; its secrets as the placeholder "********", their values in store/secrets.py), who made it, when, why (message), how (kind: file, apply, server, rollback) and from which
revision (parent). Its status moves one way:

    pending --(the engines confirmed it)--> applied
    pending --(refused, failed, or interrupted)--> failed

A revision is written `pending` before any engine is touched and marked `applied` only after the
engines confirm it, each step in its own transaction; so a controller killed at any moment leaves
the store consistent, and the next one settles a `pending` revision by asking what HAProxy runs
(`engine_digest`, the SHA-256 of the rendered file). A change that leaves nothing on disk to settle by
(runtime operations only) is written once, `applied` (`add_applied`, pruning in the same commit), after
the engines confirmed it (change/service.py `_commit_once`). The revision that runs is the applied one
with the highest id. Every commit is synchronous=FULL in WAL mode: durable when the call returns.

The database is in WAL mode: the CLI reads it (`pacslb revisions`, `pacslb diff`) while the
controller writes. Connections are short-lived, one per call, so that any thread may use the store.

After each applied revision the store prunes the oldest beyond `settings.revisions.keep`, as the
revision just applied says (store/pruning.py has the rules and the handling of free space).

A revision whose configuration differs little from the one written before it (a runtime change: one
service of a thousand) is stored as a delta of that one (`delta_base`; store/revision_delta.py), every
SNAPSHOT_EVERY-th of a chain whole; readers get the whole JSON all the same, character for character.
Rows of schema 1 (before deltas) are whole: they read as they always did.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from . import pruning
from . import revision_delta as deltas
from .db import BUSY_TIMEOUT_MS, Connections, StoreError, transaction
from .pruning import PruneResult
from .revision_delta import DeltaError, Parts

log = logging.getLogger("pacslb.store")

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS revisions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    REAL    NOT NULL,
    author        TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    parent        INTEGER REFERENCES revisions(id),
    base_dir      TEXT,
    config_json   TEXT    NOT NULL,
    config_yaml   TEXT    NOT NULL,
    digest        TEXT    NOT NULL,
    engine_digest TEXT,
    plan          TEXT,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'applied', 'failed')),
    applied       INTEGER NOT NULL DEFAULT 0 CHECK (applied IN (0, 1)),
    applied_at    REAL,
    error         TEXT,
    delta_base    INTEGER REFERENCES revisions(id),
    depth         INTEGER NOT NULL DEFAULT 0,
    keep          INTEGER,
    cuts          TEXT,
    CHECK ((status = 'applied') = (applied = 1))
);
CREATE INDEX IF NOT EXISTS revisions_applied ON revisions (applied, id);
CREATE INDEX IF NOT EXISTS revisions_delta_base ON revisions (delta_base) WHERE delta_base IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# Schema 2: a revision may be a delta. `delta_base` NULL: config_json is the whole JSON; else config_json is a
# delta (store/revision_delta.py) of revision delta_base's JSON. `depth`: the deltas between the row and a whole
# one (0: whole; NOT_A_BASE: whole but never a delta's base, its text cannot be cut with certainty). `keep`: its
# settings.revisions.keep, so that pruning need not read a delta's settings (NULL: read them from config_json).
# `cuts`: where a whole row's JSON is cut at its services (revision_delta.cuts; NULL: parsed when needed).
MIGRATE_1_TO_2 = (
    "ALTER TABLE revisions ADD COLUMN delta_base INTEGER REFERENCES revisions(id)",
    "ALTER TABLE revisions ADD COLUMN depth INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE revisions ADD COLUMN keep INTEGER",
    "ALTER TABLE revisions ADD COLUMN cuts TEXT",
)
NOT_A_BASE = deltas.SNAPSHOT_EVERY
_KEEP_PATH = "$.settings.revisions.keep"


class RevisionStatus(str, Enum):
    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"


def config_digest(config_json: str) -> str:
    """SHA-256 of a configuration's canonical JSON: equal digests, equal models."""
    return hashlib.sha256(config_json.encode()).hexdigest()


def canonical_json(data: Any) -> str:
    """Compact JSON in the order of the data (a model dump's order is its fields' order, the same every time):
    for a model's dump, the very text of `model.model_dump_json()`."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Revision:
    id: int
    created_at: float
    author: str
    message: str
    kind: str
    parent: int | None
    base_dir: str | None
    config_json: str = field(repr=False)
    config_yaml: str = field(repr=False)
    digest: str
    engine_digest: str | None
    plan: dict[str, Any] | None
    status: RevisionStatus
    applied_at: float | None
    error: str | None

    @property
    def applied(self) -> bool:
        return self.status is RevisionStatus.APPLIED

    @property
    def config_data(self) -> dict[str, Any]:
        if not self.config_json:
            raise StoreError(f"revision {self.id} was read without its configuration (a summary)")
        return json.loads(self.config_json)

    @property
    def config_text(self) -> str:
        """The configuration as text: the YAML it came from, else its JSON (which is YAML too)."""
        return self.config_yaml or self.config_json

    def summary(self) -> dict[str, Any]:
        """Everything but the configuration itself (for lists)."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "author": self.author,
            "message": self.message,
            "kind": self.kind,
            "parent": self.parent,
            "status": self.status.value,
            "applied": self.applied,
            "applied_at": self.applied_at,
            "error": self.error,
            "method": (self.plan or {}).get("method"),
            "digest": self.digest,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "base_dir": self.base_dir,
            "plan": self.plan,
            "config": self.config_data,
            "config_yaml": self.config_yaml,
        }


_COLUMNS = (
    "id, created_at, author, message, kind, parent, base_dir, config_json, config_yaml, digest, engine_digest, "
    "plan, status, applied_at, error, delta_base"
)
# The same without the configuration (megabytes for a large one): for lists and summaries.
_SUMMARY_COLUMNS = _COLUMNS.replace("config_json, config_yaml", "'', ''").replace("delta_base", "NULL")


def _keep_of(config_data: dict[str, Any] | str | Parts, parts: Parts | None) -> int | None:
    """settings.revisions.keep of a configuration, when it is at hand without reading its whole JSON; None
    otherwise (readers then take it from the stored JSON)."""
    try:
        if parts is not None:
            data = json.loads(parts.head())  # the configuration without its services: a few kilobytes
        elif isinstance(config_data, dict):
            data = config_data
        else:
            return None
        keep = data.get("settings", {}).get("revisions", {}).get("keep")
    except (ValueError, AttributeError):
        return None
    return keep if isinstance(keep, int) and not isinstance(keep, bool) else None


def _whole_json(db: sqlite3.Connection, rev_id: int, stored: str, delta_base: int | None) -> str:
    """A revision's whole JSON: its stored text, or its base's made whole and changed by its delta (at most
    SNAPSHOT_EVERY - 1 deltas back to a whole revision)."""
    if delta_base is None:
        return stored
    chain = [(rev_id, stored)]  # the deltas, newest first
    base = delta_base
    while True:
        row = db.execute("SELECT config_json, delta_base, cuts FROM revisions WHERE id = ?", (base,)).fetchone()
        if row is None:
            raise StoreError(f"revision {chain[-1][0]} is stored as a delta of revision {base}, which is missing")
        if row[1] is None:
            break
        if len(chain) >= deltas.SNAPSHOT_EVERY:
            raise StoreError(f"revision {rev_id} is more than {deltas.SNAPSHOT_EVERY} deltas from a whole revision")
        chain.append((base, row[0]))
        base = row[1]
    parts = deltas.split(row[0], row[2])
    if parts is None:
        raise StoreError(f"revision {base} is the base of revision {chain[-1][0]}, but its JSON cannot be cut at its services")
    for delta_id, text in reversed(chain):
        try:
            parts = deltas.apply(parts, deltas.decode(text))
        except DeltaError as exc:
            raise StoreError(f"revision {delta_id}: {exc}") from None
    return parts.text()


def _row(row: tuple, db: sqlite3.Connection | None = None) -> Revision:
    (id_, created_at, author, message, kind, parent, base_dir, config_json, config_yaml, digest, engine_digest,
     plan, status, applied_at, error, delta_base) = row  # fmt: skip
    if delta_base is not None:
        assert db is not None, "a delta is read in the transaction that read its row"
        config_json = _whole_json(db, id_, config_json, delta_base)
    return Revision(
        id=id_, created_at=created_at, author=author, message=message, kind=kind, parent=parent, base_dir=base_dir,
        config_json=config_json, config_yaml=config_yaml, digest=digest, engine_digest=engine_digest,
        plan=json.loads(plan) if plan else None, status=RevisionStatus(status), applied_at=applied_at, error=error,
    )  # fmt: skip


class RevisionStore:
    """The revisions of one appliance: `RevisionStore(paths.revisions_db)`.

    `create=False` opens an existing store only (the CLI's readers); StoreError when there is none.
    """

    def __init__(self, path: Path, create: bool = True, clock=time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._connections = Connections()  # one kept per thread: no checkpoint and schema read per call
        if not create and not self.path.exists():
            raise StoreError(f"no revisions are recorded yet ({self.path} does not exist)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists() or self.path.stat().st_size == 0:
                self._start_incremental()
            with self._connect() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(f"{self.path} was written by a newer pacslb (schema {version} > {SCHEMA_VERSION})")
                columns = {row[1] for row in db.execute("PRAGMA table_info(revisions)")}
                if columns and "delta_base" not in columns:  # a store of schema 1: every row is whole
                    for statement in MIGRATE_1_TO_2:
                        db.execute(statement)
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)  # executescript would commit the open transaction
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o640)

    def _start_incremental(self) -> None:
        """A new file: in auto_vacuum INCREMENTAL mode, which SQLite accepts only before the first table."""
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            try:
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                db.execute("PRAGMA journal_mode = WAL")
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create {self.path}: {exc}") from None

    def _connect(self, write: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One connection, one transaction (db.transaction); an applied mark survives a power cut."""
        return transaction(self.path, write, synchronous="FULL", keep=self._connections)

    # --- writing ------------------------------------------------------------------------------------

    def add(
        self,
        config_data: dict[str, Any] | str | Parts,
        config_yaml: str,
        *,
        author: str,
        message: str,
        kind: str,
        parent: int | None,
        base_dir: str | None = None,
        engine_digest: str | None = None,
        plan: dict[str, Any] | None = None,
        status: RevisionStatus = RevisionStatus.PENDING,
        error: str | None = None,
        base: tuple[int, str, Parts] | None = None,
    ) -> Revision:
        """Record a new revision (pending unless told otherwise) and return it.

        `config_data`: the model dump (mode json), or its JSON text as `Config.model_dump_json()` writes it
        (the same text as `canonical_json` of the dump, made without the intermediate objects), or that text
        cut at its services (`Parts`, change/revision_json.py).
        `config_yaml`: the YAML text the configuration came from; "" when it came from no text (a runtime
        change), in which case readers take the JSON, which is YAML too.
        `base`: (id, digest, parts) of a stored revision whose JSON the caller holds cut: the new one is stored
        as a delta of it when that is small and the base is what the caller thinks (its digest), else whole.
        """
        return self._add(config_data, config_yaml, author=author, message=message, kind=kind, parent=parent,
                         base_dir=base_dir, engine_digest=engine_digest, plan=plan, status=status, error=error,
                         base=base)[0]  # fmt: skip

    def add_applied(
        self, config_data: dict[str, Any] | str | Parts, config_yaml: str, **kwargs: Any
    ) -> tuple[Revision, list[int]]:
        """`add` an applied revision and prune the oldest beyond its settings.revisions.keep, in one transaction
        (one commit, one fsync): for a change that needs no `pending` record first (change/service.py). Returns
        the revision and the ids pruned. A prune that fails leaves the revision recorded (the next one prunes)."""
        return self._add(config_data, config_yaml, status=RevisionStatus.APPLIED, prune=True, **kwargs)

    def _add(
        self,
        config_data: dict[str, Any] | str | Parts,
        config_yaml: str,
        *,
        author: str,
        message: str,
        kind: str,
        parent: int | None,
        base_dir: str | None = None,
        engine_digest: str | None = None,
        plan: dict[str, Any] | None = None,
        status: RevisionStatus = RevisionStatus.PENDING,
        error: str | None = None,
        base: tuple[int, str, Parts] | None = None,
        prune: bool = False,
    ) -> tuple[Revision, list[int]]:
        parts = config_data if isinstance(config_data, Parts) else None
        if parts is not None:
            config_json = parts.text()
        else:
            config_json = config_data if isinstance(config_data, str) else canonical_json(config_data)
        digest = config_digest(config_json)
        keep = _keep_of(config_data, parts)
        delta = None
        if parts is not None and base is not None:
            encoded = deltas.between(base[2], parts).encode()
            delta = encoded if deltas.worth_it(encoded, len(config_json)) else None
        now = self.clock()
        applied = status is RevisionStatus.APPLIED
        pruned: list[int] = []
        with self._connect() as db:
            stored, delta_base, depth = config_json, None, 0
            if delta is not None and base is not None:
                found = db.execute("SELECT digest, depth FROM revisions WHERE id = ?", (base[0],)).fetchone()
                if found is not None and found[0] == base[1] and found[1] + 1 < deltas.SNAPSHOT_EVERY:
                    stored, delta_base, depth = delta, base[0], found[1] + 1
            where = None
            if delta_base is None and config_json.count(deltas.MARK) != 1:
                depth = NOT_A_BASE  # its text cannot be cut with certainty: no delta is ever based on it
            elif delta_base is None and parts is not None:
                where = deltas.cuts(parts)
            cursor = db.execute(
                "INSERT INTO revisions (created_at, author, message, kind, parent, base_dir, config_json, config_yaml,"
                " digest, engine_digest, plan, status, applied, applied_at, error, delta_base, depth, keep, cuts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now, author, message, kind, parent, base_dir, stored, config_yaml, digest, engine_digest,
                 json.dumps(plan) if plan is not None else None, status.value, int(applied), now if applied else None,
                 error, delta_base, depth, keep, where),
            )  # fmt: skip
            rev_id = cursor.lastrowid
            if prune:
                pruned = self._prune_within(db, rev_id, keep)
        assert rev_id is not None
        if pruned:
            self._after_prune(pruned, force=False)
        return Revision(
            id=rev_id, created_at=now, author=author, message=message, kind=kind, parent=parent, base_dir=base_dir,
            config_json=config_json, config_yaml=config_yaml, digest=digest,
            engine_digest=engine_digest, plan=plan, status=status, applied_at=now if applied else None, error=error,
        ), pruned  # fmt: skip

    def _prune_within(self, db: sqlite3.Connection, rev_id: int, keep: int | None) -> list[int]:
        """Prune in the caller's transaction, as revision `rev_id`'s settings say, under a savepoint: a prune
        that fails is undone alone and logged, the rest of the transaction stands."""
        if keep is None:
            keep = db.execute(
                f"SELECT COALESCE(keep, json_extract(config_json, '{_KEEP_PATH}')) FROM revisions WHERE id = ?", (rev_id,)
            ).fetchone()[0]
        keep = keep if isinstance(keep, int) and keep >= pruning.MIN_KEEP else pruning.DEFAULT_KEEP
        db.execute("SAVEPOINT prune")
        try:
            ids = self._prune_ids(db, keep)
        except sqlite3.Error as exc:
            db.execute("ROLLBACK TO prune")
            log.warning("revision %d recorded, but older revisions could not be pruned: %s", rev_id, exc)
            ids = []
        db.execute("RELEASE prune")
        return ids

    def _prune_ids(self, db: sqlite3.Connection, keep: int) -> list[int]:
        """Delete what pruning.doomed says, record it in the meta table; the ids deleted."""
        ids = pruning.doomed(db, keep)
        if ids:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (pruning.META_PRUNED,)).fetchone()
            record = pruning.delete(db, ids, json.loads(row[0]) if row else None, keep, self.clock())
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (pruning.META_PRUNED, json.dumps(record)))
        return ids

    def _after_prune(self, ids: list[int], force: bool) -> int:
        """Free space back to the file system when worth it, and say what was pruned; the pages given back."""
        try:
            freed = self._give_back_space(force=force)
        except StoreError as exc:
            log.warning("pruned revisions %d to %d, but their space could not be given back: %s", ids[0], ids[-1], exc)
            return 0
        log.info("pruned %d revision(s) (%d to %d)", len(ids), ids[0], ids[-1])
        return freed

    def set_engine_digest(self, rev_id: int, engine_digest: str, plan: dict[str, Any] | None = None) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE revisions SET engine_digest = ?, plan = COALESCE(?, plan) WHERE id = ? AND status = 'pending'",
                (engine_digest, json.dumps(plan) if plan is not None else None, rev_id),
            )

    def mark_applied(self, rev_id: int, plan: dict[str, Any] | None = None) -> list[int]:
        """The engines confirmed it: it is what runs now. Then the oldest revisions beyond its own
        settings.revisions.keep are pruned (about 10 ms to read the setting from a 2.5 MB revision);
        returns the ids pruned (the secret store forgets theirs)."""
        with self._connect() as db:
            updated = db.execute(
                "UPDATE revisions SET status = 'applied', applied = 1, applied_at = ?, error = NULL,"
                " plan = COALESCE(?, plan) WHERE id = ? AND status = 'pending'",
                (self.clock(), json.dumps(plan) if plan is not None else None, rev_id),
            ).rowcount
            if updated != 1:
                raise StoreError(f"revision {rev_id} is not pending: it cannot be marked applied")
            keep = db.execute(
                f"SELECT COALESCE(keep, json_extract(config_json, '{_KEEP_PATH}')) FROM revisions WHERE id = ?", (rev_id,)
            ).fetchone()[0]
        # in its own transaction: the mark stands even if pruning fails (the next applied revision prunes)
        try:
            return self.prune(keep if isinstance(keep, int) and keep >= pruning.MIN_KEEP else pruning.DEFAULT_KEEP).deleted
        except StoreError as exc:
            log.warning("revision %d applied, but older revisions could not be pruned: %s", rev_id, exc)
            return []

    def mark_failed(self, rev_id: int, error: str, plan: dict[str, Any] | None = None) -> None:
        """Refused, failed or interrupted: what ran before still runs."""
        with self._connect() as db:
            db.execute(
                "UPDATE revisions SET status = 'failed', applied = 0, error = ?, plan = COALESCE(?, plan)"
                " WHERE id = ? AND status = 'pending'",
                (error, json.dumps(plan) if plan is not None else None, rev_id),
            )

    def prune(self, keep: int, vacuum: bool = False) -> PruneResult:
        """Delete the oldest revisions beyond `keep` (never the current one, never a pending one).

        Free space goes back to the file system when it is more than a quarter of the file (a store in
        auto_vacuum INCREMENTAL mode). `vacuum=True` always gives it back; a store of an older release
        (auto_vacuum NONE) is then converted with a VACUUM, which rewrites the whole file.
        ValueError when `keep` is below pruning.MIN_KEEP.
        """
        pruning.check_keep(keep)
        with self._connect() as db:
            ids = self._prune_ids(db, keep)
            kept = db.execute("SELECT COUNT(*) FROM revisions").fetchone()[0]
        freed = self._give_back_space(force=vacuum) if ids or vacuum else 0
        if ids:
            log.info("pruned %d revision(s) (%d to %d): %d kept (settings.revisions.keep: %d)",
                     len(ids), ids[0], ids[-1], kept, keep)  # fmt: skip
        return PruneResult(keep=keep, deleted=ids, kept=kept, pages_freed=freed)

    def _give_back_space(self, force: bool) -> int:
        """Free pages back to the file system; the number of pages given back."""
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        try:
            mode = db.execute("PRAGMA auto_vacuum").fetchone()[0]
            free, pages = db.execute("PRAGMA freelist_count").fetchone()[0], db.execute("PRAGMA page_count").fetchone()[0]
            if mode == 0 and force:
                # an older store: VACUUM is the only way to switch the mode (and it gives everything back)
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                db.execute("VACUUM")
            elif mode == 2 and free and (force or pruning.should_vacuum(free, pages)):
                # executescript steps the pragma to its end (execute would free a single page)
                db.executescript("PRAGMA incremental_vacuum;")
            else:
                return 0
            return free - db.execute("PRAGMA freelist_count").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        finally:
            db.close()

    def rewrite(self, rev_id: int, config_json: str, config_yaml: str, plan: dict[str, Any] | None) -> None:
        """Replace a revision's configuration and plan (to move its secrets out: change/service.py); its
        digest follows the new JSON. Freed space is overwritten (secure_delete): nothing of the old text stays.
        The revision is stored whole afterwards; the deltas based on it are first made whole (their text must
        not change with their base's)."""
        with self._connect() as db:
            db.execute("PRAGMA secure_delete = ON")
            for child, stored in db.execute(
                "SELECT id, config_json FROM revisions WHERE delta_base = ?", (rev_id,)
            ).fetchall():  # fmt: skip
                db.execute(
                    "UPDATE revisions SET config_json = ?, delta_base = NULL, depth = 0, cuts = NULL WHERE id = ?",
                    (_whole_json(db, child, stored, rev_id), child),
                )
            db.execute(
                "UPDATE revisions SET config_json = ?, config_yaml = ?, digest = ?, plan = ?, delta_base = NULL, depth = ?,"
                " keep = NULL, cuts = NULL WHERE id = ?",
                (config_json, config_yaml, config_digest(config_json), json.dumps(plan) if plan is not None else None,
                 0 if config_json.count(deltas.MARK) == 1 else NOT_A_BASE, rev_id),
            )  # fmt: skip

    def compact(self) -> None:
        """Rebuild the file (VACUUM) and empty the write-ahead log, so that no old page of a rewritten revision
        is left in either."""
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        try:
            db.execute("PRAGMA secure_delete = ON")
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        finally:
            db.close()

    def set_meta(self, key: str, value: Any) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # --- reading ------------------------------------------------------------------------------------

    def get(self, rev_id: int, with_config: bool = True) -> Revision | None:
        """One revision; `with_config=False` leaves its configuration out (a summary)."""
        columns = _COLUMNS if with_config else _SUMMARY_COLUMNS
        with self._connect(write=False) as db:
            row = db.execute(f"SELECT {columns} FROM revisions WHERE id = ?", (rev_id,)).fetchone()
            return _row(row, db) if row else None

    def current_id(self) -> int | None:
        """The id of the revision that runs (nothing else is read)."""
        with self._connect(write=False) as db:
            row = db.execute("SELECT MAX(id) FROM revisions WHERE applied = 1").fetchone()
        return row[0] if row else None

    def current(self) -> Revision | None:
        """The revision that runs: the applied one with the highest id."""
        with self._connect(write=False) as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM revisions WHERE applied = 1 ORDER BY id DESC LIMIT 1").fetchone()
            return _row(row, db) if row else None

    def previous_applied(self, rev_id: int) -> Revision | None:
        """The applied revision that ran before `rev_id` (the one it changed)."""
        with self._connect(write=False) as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM revisions WHERE applied = 1 AND id < ? ORDER BY id DESC LIMIT 1", (rev_id,)
            ).fetchone()
            return _row(row, db) if row else None

    def ids(self) -> list[int]:
        """The ids of every revision the store keeps (the secret store keeps theirs only)."""
        with self._connect(write=False) as db:
            return [row[0] for row in db.execute("SELECT id FROM revisions ORDER BY id")]

    def pending(self) -> list[Revision]:
        with self._connect(write=False) as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM revisions WHERE status = 'pending' ORDER BY id").fetchall()
            return [_row(r, db) for r in rows]

    def list(self, limit: int = 50, before: int | None = None) -> list[Revision]:
        """The latest revisions first, as summaries (without their configurations)."""
        query = f"SELECT {_SUMMARY_COLUMNS} FROM revisions"
        args: tuple = ()
        if before is not None:
            query += " WHERE id < ?"
            args = (before,)
        query += " ORDER BY id DESC LIMIT ?"
        with self._connect(write=False) as db:
            rows = db.execute(query, (*args, limit)).fetchall()
        return [_row(r) for r in rows]

    def retention(self) -> dict[str, Any]:
        """What the store keeps: the setting of the current revision, how many it holds, what was pruned."""
        with self._connect(write=False) as db:
            count, oldest = db.execute("SELECT COUNT(*), MIN(id) FROM revisions").fetchone()
            row = db.execute(
                f"SELECT COALESCE(keep, json_extract(config_json, '{_KEEP_PATH}')) FROM revisions"
                " WHERE applied = 1 ORDER BY id DESC LIMIT 1"
            ).fetchone()
            pruned = db.execute("SELECT value FROM meta WHERE key = ?", (pruning.META_PRUNED,)).fetchone()
            mode = db.execute("PRAGMA auto_vacuum").fetchone()[0]
        return {
            "keep": row[0] if row and isinstance(row[0], int) else pruning.DEFAULT_KEEP,
            "setting": pruning.KEEP_SETTING,
            "stored": count,
            "oldest": oldest,
            "pruned": json.loads(pruned[0]) if pruned else None,
            "incremental_vacuum": mode == 2,
        }

    def missing(self, rev_id: int) -> str:
        """Why revision `rev_id` cannot be read: it was pruned (and what the store keeps), or it never was."""
        info = self.retention()
        pruned = info["pruned"]
        if pruned and 0 < rev_id <= pruned["through"]:
            return (
                f"revision {rev_id} was pruned: the store keeps the latest {info['keep']} revisions "
                f"({info['stored']} now, the oldest {info['oldest']}); raise {pruning.KEEP_SETTING} to keep more"
            )
        return f"there is no revision {rev_id}"

    def meta(self, key: str) -> Any:
        with self._connect(write=False) as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def check_integrity(self) -> list[str]:
        """SQLite's own integrity check and the store's invariants; [] when all is well."""
        problems: list[str] = []
        with self._connect() as db:
            result = db.execute("PRAGMA integrity_check").fetchall()
            if result != [("ok",)]:
                problems += [r[0] for r in result]
            bad = db.execute(
                "SELECT id FROM revisions WHERE (status = 'applied') != (applied = 1) OR (applied = 1 AND applied_at IS NULL)"
            ).fetchall()
            problems += [f"revision {r[0]}: applied flag and status disagree" for r in bad]
            orphans = db.execute(
                "SELECT r.id, r.delta_base FROM revisions r LEFT JOIN revisions b ON b.id = r.delta_base"
                " WHERE r.delta_base IS NOT NULL AND (b.id IS NULL OR b.depth >= r.depth OR r.depth >= ?)",
                (deltas.SNAPSHOT_EVERY,),
            ).fetchall()
            problems += [
                f"revision {r[0]}: a delta of revision {r[1]}, which is missing or not nearer a whole one" for r in orphans
            ]
        return problems
