"""Reading the history: which two revisions a diff compares, and what changed between them.

`pacslb diff` and GET /api/v1/diff share these rules:

  diff               what the last applied revision changed (the applied one before it -> the current one)
  diff REV           from revision REV to what runs now (what `pacslb rollback REV` would undo)
  diff REV OTHER     from revision REV to revision OTHER

Revisions hold their secrets as the placeholder; given the secret store, each revision's secrets are put
in as marks of their values (model/secrets.py), so that a changed secret is a change ("changed", no value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model.diff import Change, diff_data
from ..model.secrets import put
from ..model.types import SECRET_PLACEHOLDER, secret_mark
from .revisions import Revision, RevisionStore, StoreError
from .secrets import SecretStore


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


def _marked(rev: Revision, secrets: SecretStore | None) -> Any:
    """A revision's data with a mark of each stored secret where it holds the placeholder."""
    data = rev.config_data
    if secrets is not None:
        for path, value in secrets.get(rev.id).items():
            put(data, path, secret_mark(value), only_over=SECRET_PLACEHOLDER)
    return data


def revision_diff(store: RevisionStore, from_id: int | None = None, to_id: int | None = None,
                  secrets: SecretStore | None = None) -> RevisionDiff:  # fmt: skip
    """Raises StoreError when a revision does not exist or nothing has been applied yet. Without `secrets`
    (a reader who may not read them) a change of a secret alone is not seen."""
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
    changes = diff_data(_marked(old, secrets), _marked(new, secrets)) if old else []
    return RevisionDiff(old, new, changes)
