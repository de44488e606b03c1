"""The one audit recorder of changes: every answer of the change front door (change/service.py), whichever
door it came through (CLI, REST API, WebUI, HA sync, SIGHUP), as one line of <state>/audit.sqlite."""

from __future__ import annotations

import threading
from pathlib import Path

from ..store.audit import AuditLog
from .result import ChangeResult

MAX_PROBLEMS = 20


class ChangeAudit:
    """Opens the audit log at the first change (its schema made then), and keeps it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log: AuditLog | None = None
        self._lock = threading.Lock()

    def __call__(self, origin, action: str, target: str, result: ChangeResult) -> None:
        detail: dict = {"message": result.message, "revision": result.revision.id if result.revision else None}
        if result.problems:
            detail["problems"] = [str(p) for p in result.problems][:MAX_PROBLEMS]
        with self._lock:
            if self._log is None:
                self._log = AuditLog(self.path)
            self._log.record(origin.author, action, target=target, outcome=result.outcome.value, via=origin.via,
                             client_ip=origin.client_ip, detail=detail)  # fmt: skip
