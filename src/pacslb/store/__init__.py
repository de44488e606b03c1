"""What the appliance remembers, in SQLite in its state directory.

- `revisions`: every configuration applied or attempted (author, time, message, the whole model),
  and which one runs.
"""

from .revisions import Revision, RevisionStatus, RevisionStore, StoreError

__all__ = ["Revision", "RevisionStatus", "RevisionStore", "StoreError"]
