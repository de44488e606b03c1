"""Reading the history: which two revisions a diff compares, and what changed between them.

`pacslb diff` and GET /api/v1/diff share these rules:

  diff               what the last applied revision changed (the applied one before it -> the current one)
  diff REV           from revision REV to what runs now (what `pacslb rollback REV` would undo)
  diff REV OTHER     from revision REV to revision OTHER
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.diff import Change, diff_data
from .revisions import Revision, RevisionStore, StoreError


@dataclass(frozen=True)
class RevisionDiff:
    old: Revision | None  # None: `new` is the first revision, there is nothing to compare it with
    new: Revision
    changes: list[Change]

    def as_dict(self) -> dict:
        return {
            "from": self.old.summary() if self.old else None,
            "to": self.new.summary(),
            "changes": [c.as_dict() for c in self.changes],
        }


def revision_diff(store: RevisionStore, from_id: int | None = None, to_id: int | None = None) -> RevisionDiff:
    """Raises StoreError when a revision does not exist or nothing has been applied yet."""
    current = store.current()
    if to_id is not None:
        new = store.get(to_id)
        if new is None:
            raise StoreError(store.missing(to_id))
    else:
        if current is None:
            raise StoreError("no revision has been applied yet")
        new = current
    if from_id is not None:
        old = store.get(from_id)
        if old is None:
            raise StoreError(store.missing(from_id))
    else:
        old = store.previous_applied(new.id)
    changes = diff_data(old.config_data, new.config_data) if old else []
    return RevisionDiff(old, new, changes)
