"""What the appliance remembers, in SQLite in its state directory.

- `revisions`: every configuration applied or attempted (author, time, message, the whole model),
  and which one runs.
- `secrets`: the secrets each revision ran with (mode 0600), kept out of the revisions.
"""

from .revisions import Revision, RevisionStatus, RevisionStore, StoreError
from .secrets import SecretStore

__all__ = ["Revision", "RevisionStatus", "RevisionStore", "SecretStore", "StoreError"]
