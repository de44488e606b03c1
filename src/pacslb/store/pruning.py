"""Pruning the revision store: keep the latest `settings.revisions.keep` revisions, give back the space.

Rules (RevisionStore.prune runs them in one transaction):
- keep the latest `keep` revisions by id, whatever their status (failed ones count: they are history too);
- never delete the revision that runs (the applied one with the highest id), even when older than those,
  nor a pending one (a change in flight, or one a killed controller left for the next start to settle);
- never delete the base of a kept delta (store/revision_delta.py), nor its base's base, back to a whole
  revision: a delta keeps what it needs to be read (at most SNAPSHOT_EVERY - 1 revisions beyond `keep`
  per chain; they go with the last delta that needs them);
- a kept revision whose parent is deleted keeps `parent = NULL` (the column is a foreign key); what was
  deleted is recorded in the meta table (`pruned`), so that `pacslb rollback N` can say "pruned" rather
  than "no such revision".

Space: a revision of 1,000 services x 10 real servers is about 2.7 MB. A store created by this release
is in `auto_vacuum = INCREMENTAL` mode: once a prune leaves more than a quarter of the file free,
`PRAGMA incremental_vacuum` gives the free pages back to the file system (a few tenths of a second per
revision moved). Below that, the free pages stay for the next revisions to reuse (one revision pruned
per applied one, the steady state, leaves the file's size as it is and costs no page moves). A full
`VACUUM` would rewrite the whole file under the write lock at every prune: never done automatically.

A store created before (auto_vacuum NONE, which SQLite can change only with a VACUUM) is pruned the
same way and reuses its free pages, so it stops growing but does not shrink; `pacslb revisions prune
--vacuum` converts it once (a VACUUM: it rewrites the file, needs as much free disk as the kept
revisions take, and holds the write lock meanwhile).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

MIN_KEEP = 10  # the model's lower bound on settings.revisions.keep: enough to undo the last few changes
DEFAULT_KEEP = 500  # the model's default, used when a revision's configuration predates the setting
KEEP_SETTING = "settings.revisions.keep"
META_PRUNED = "pruned"
VACUUM_FREE_SHARE = 0.25  # give free pages back once they are more than this share of the file


@dataclass(frozen=True)
class PruneResult:
    keep: int
    deleted: list[int]  # ids, oldest first
    kept: int  # revisions left in the store
    pages_freed: int  # pages given back to the file system (0: left for reuse, or not an incremental store)

    def as_dict(self) -> dict[str, Any]:
        return {"keep": self.keep, "deleted": self.deleted, "kept": self.kept, "pages_freed": self.pages_freed}


def check_keep(keep: int) -> None:
    if keep < MIN_KEEP:
        raise ValueError(f"keep must be at least {MIN_KEEP} (it is {keep}): rollback needs a few revisions to return to")


def doomed(db: sqlite3.Connection, keep: int) -> list[int]:
    """The ids to delete, oldest first (pure SQL reading; nothing is changed)."""
    check_keep(keep)
    row = db.execute("SELECT id FROM revisions ORDER BY id DESC LIMIT 1 OFFSET ?", (keep - 1,)).fetchone()
    if row is None:  # fewer than `keep` revisions
        return []
    current = db.execute("SELECT MAX(id) FROM revisions WHERE applied = 1").fetchone()[0]
    rows = db.execute(
        "SELECT id FROM revisions WHERE id < ? AND status != 'pending' AND id IS NOT ? ORDER BY id", (row[0], current)
    ).fetchall()
    ids = [r[0] for r in rows]
    if not ids:
        return []
    # the bases the kept deltas read through (the chain back to a whole revision), whatever their age
    needed = {r[0] for r in db.execute(
        "WITH RECURSIVE needed(id) AS ("
        " SELECT delta_base FROM revisions WHERE delta_base IS NOT NULL AND (id >= ? OR status = 'pending' OR id IS ?)"
        " UNION SELECT r.delta_base FROM revisions r JOIN needed n ON r.id = n.id WHERE r.delta_base IS NOT NULL"
        ") SELECT id FROM needed", (row[0], current))}  # fmt: skip
    return [i for i in ids if i not in needed]


def delete(db: sqlite3.Connection, ids: list[int], pruned_before: dict[str, Any] | None, keep: int, now: float) -> dict:
    """Delete `ids` (inside the caller's transaction) and return the new `pruned` meta record."""
    marks = ",".join("?" * len(ids))
    db.execute(f"UPDATE revisions SET parent = NULL WHERE parent IN ({marks})", ids)
    db.execute(f"DELETE FROM revisions WHERE id IN ({marks})", ids)
    before = pruned_before or {}
    return {
        "through": max(ids[-1], before.get("through", 0)),
        "count": before.get("count", 0) + len(ids),
        "keep": keep,
        "at": now,
    }


def should_vacuum(free_pages: int, page_count: int) -> bool:
    return page_count > 0 and free_pages > page_count * VACUUM_FREE_SHARE
