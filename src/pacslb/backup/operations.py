"""Backup and restore for the management API and the WebUI (the CLI has its own edge: cli/backup_commands.py).

Both run in the appliance's process: a backup is collected and packed in a thread (SQLite's backup API, so
the appliance goes on serving and changing); a restore is checked whole first, then its configuration goes
through the change front door as one revision (`kind="restore"`, audited as config.restore by the front
door), and only when that is applied (or unchanged) are the users and API keys replaced. The caller records
backup.create / backup.restore in the audit log with the answer's outcome.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..change.result import Outcome
from ..paths import StatePaths
from .archive import BackupError, pack, unpack
from .collect import collect
from .crypto import BackupCryptoError
from .restore import CertificateWrites, apply_arguments, check, conflict_message, restore_users


@dataclass
class Answer:
    """An HTTP answer: status and JSON body (outcome, message, and what the restore did)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


def backup_name(now: float | None = None) -> str:
    return time.strftime("pacslb-backup-%Y%m%d-%H%M%S.tar.gz", time.gmtime(now)) if now else "pacslb-backup.tar.gz"


async def make_backup(paths: StatePaths, passphrase: str | None) -> tuple[bytes, dict[str, Any]]:
    """The backup file's bytes and what it holds (`revision`, `files`, `encrypted`); BackupError, BackupCryptoError."""

    def run() -> tuple[bytes, dict[str, Any]]:
        members, about = collect(paths)
        return pack(members, about, passphrase), {"revision": about["revision"], "files": len(members),
                                                 "encrypted": passphrase is not None,
                                                 "certificates_missing": about["certificates_missing"]}  # fmt: skip

    return await asyncio.to_thread(run)


async def restore_running(changes: Any, paths: StatePaths, data: bytes, passphrase: str | None, *, origin: Any,
                          replace_certificates: bool = False, source: str = "an uploaded backup") -> Answer:  # fmt: skip
    """Restore a backup into the running appliance: its configuration as one revision through `changes` (the
    change front door), then its users and API keys. Nothing changes on any problem."""
    with tempfile.TemporaryDirectory(prefix="pacslb-restore-") as workdir:
        try:
            checked = await asyncio.to_thread(lambda: check(unpack(data, passphrase), Path(workdir)))
        except (BackupError, BackupCryptoError) as exc:
            return Answer(422, {"outcome": "invalid", "message": str(exc)})
        if checked.config is None:
            return Answer(422, {"outcome": "invalid", "message": "the backup holds no revision to apply; nothing was changed"})
        if checked.conflicts and not replace_certificates:
            return Answer(409, {"outcome": "conflict", "message": conflict_message(checked),
                                "certificates": [str(c.path) for c in checked.conflicts]})  # fmt: skip
        certs = CertificateWrites()
        try:
            await asyncio.to_thread(certs.write, checked, replace_certificates)
        except OSError as exc:
            await asyncio.to_thread(certs.undo)
            return Answer(409, {"outcome": "refused", "message": f"a certificate cannot be written: {exc}; nothing was changed"})
        result = await changes.apply(**apply_arguments(checked, source), origin=origin, kind="restore",
                                     action="config.restore", target="config")  # fmt: skip
        body = result.as_dict()
        if result.outcome not in (Outcome.APPLIED, Outcome.UNCHANGED):
            await asyncio.to_thread(certs.undo)
            body["message"] = f"{result.message}; the backup was not restored (users and API keys are unchanged)"
            return Answer(result.http_status, body)
        users, keys = await asyncio.to_thread(restore_users, checked, paths.users_db)
        body.update(restored={**checked.summary(), "users_restored": users, "api_keys_restored": keys})
        body["message"] = f"{result.message}; restored {users} users and {keys} API keys"
        return Answer(200, body)
