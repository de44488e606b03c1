"""The secrets of each revision, kept apart from the revisions (<state>/secrets.sqlite, mode 0600).

revisions.sqlite holds every configuration with its secrets as the placeholder ("********"): it is
group-readable, the CLI and the viewers' endpoints read it, and a password must be in none of them. This
store holds the values, one row per revision and field path:

    (revision 12, "virtual_services[RMQ].health_check.password", "s3cret")

so that a rollback to revision 12 (or a restart that runs it) puts back the secret revision 12 ran with.
A revision's secrets are written after the revision is recorded pending and before any engine is
touched: a controller killed in between leaves a pending revision that no engine ran, which the next
start marks failed. Rows of revisions that the revision store pruned are deleted (`forget` after each
applied revision, `keep_only` at startup and after `pacslb revisions prune`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from .db import StoreError, create, transaction

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS secrets (
    revision INTEGER NOT NULL,
    path     TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (revision, path)
) WITHOUT ROWID
"""


class SecretStore:
    """The secrets of the revisions of one appliance: `SecretStore(paths.secrets_db)`.

    `create=False` opens an existing store only; StoreError when there is none (or it cannot be read,
    e.g. by a user who may read revisions.sqlite but not this file).
    """

    def __init__(self, path: Path, create_file: bool = True) -> None:
        self.path = Path(path)
        if not create_file:
            if not self.path.exists():
                raise StoreError(f"no secrets are stored ({self.path} does not exist)")
            return
        create(self.path, SCHEMA, SCHEMA_VERSION, mode=0o600)

    def put(self, revision: int, secrets: Mapping[str, str]) -> None:
        """Record the secrets a revision runs with (replacing any recorded for it before)."""
        with transaction(self.path) as db:
            db.execute("DELETE FROM secrets WHERE revision = ?", (revision,))
            db.executemany("INSERT INTO secrets (revision, path, value) VALUES (?, ?, ?)",
                           [(revision, path, value) for path, value in secrets.items()])  # fmt: skip

    def get(self, revision: int) -> dict[str, str]:
        """The secrets of a revision, by field path ({} for none recorded)."""
        with transaction(self.path, write=False) as db:
            rows = db.execute("SELECT path, value FROM secrets WHERE revision = ?", (revision,)).fetchall()
        return dict(rows)

    def forget(self, revisions: Iterable[int]) -> None:
        """Delete the secrets of these revisions (pruned by the revision store)."""
        with transaction(self.path) as db:
            db.executemany("DELETE FROM secrets WHERE revision = ?", [(i,) for i in revisions])

    def keep_only(self, revisions: Iterable[int]) -> int:
        """Delete the secrets of every revision not in `revisions` (the ones the revision store keeps);
        the number of rows deleted."""
        kept = sorted(set(revisions))
        with transaction(self.path) as db:
            db.execute("CREATE TEMP TABLE kept (id INTEGER PRIMARY KEY)")
            db.executemany("INSERT INTO kept (id) VALUES (?)", [(i,) for i in kept])
            deleted = db.execute("DELETE FROM secrets WHERE revision NOT IN (SELECT id FROM kept)").rowcount
            db.execute("DROP TABLE kept")
        return deleted
