"""Which node of an HA pair takes changes: the primary, or a secondary promoted with `pacslb ha promote`.

The secondary refuses direct changes (CLI, API, WebUI) with a message that names the primary; it takes
configurations pushed by the primary (kind `sync`) only. The promotion is a marker file in the state
directory (<state>/ha/promoted), so it outlives controller restarts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from .. import files
from ..model.ha import HA
from ..paths import StatePaths

SYNC_KIND = "sync"


class Roles:
    def __init__(self, state_root: Path, ha: Callable[[], HA | None]) -> None:
        self.paths = StatePaths(state_root)
        self.dir = self.paths.ha_dir
        self._ha = ha  # the running configuration's `ha` section

    @property
    def ha(self) -> HA | None:
        return self._ha()

    @property
    def promoted(self) -> bool:
        return self.paths.ha_promoted.exists()

    def set_promoted(self, value: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        marker = self.paths.ha_promoted
        if value:
            files.atomic_write(marker, f"{time.time()}\n")
        else:
            marker.unlink(missing_ok=True)

    @property
    def pushes(self) -> bool:
        """This node sends its configuration to the peer: the primary."""
        return self.ha is not None and self.ha.role == "primary"

    @property
    def takes_pushes(self) -> bool:
        """This node applies what its peer sends: a secondary that was not promoted."""
        return self.ha is not None and self.ha.role == "secondary" and not self.promoted

    def guard(self, kind: str) -> str | None:
        """Why this node refuses a change of `kind`, or None (the change front door asks before anything)."""
        ha = self.ha
        if kind == SYNC_KIND or ha is None or ha.role != "secondary" or self.promoted:
            return None
        return (f"this node is the secondary of an HA pair: make changes on the primary {ha.peer_address}, "
                "or promote this node with `pacslb ha promote`")  # fmt: skip
