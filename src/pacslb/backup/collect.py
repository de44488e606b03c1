"""What a backup holds, collected from a state directory while the appliance may run.

The SQLite stores are copied with SQLite's online backup API (a consistent snapshot, whatever writers do
meanwhile: a file copy of a store in WAL mode can tear between the file and its -wal). Certificates are
read from the paths the current revision names (with their keys: a PEM of HAProxy holds both), each at
most model/files.MAX_PEM_BYTES. Pages and external check scripts are not backed up: a script is a
program root runs, and taking one from a backup file would let that file choose it.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from ..model import validate_data
from ..model.files import MAX_PEM_BYTES, named_files, read_named_file, resolve
from ..model.problems import Problem
from ..paths import StatePaths
from ..store import RevisionStore, StoreError
from .archive import MAX_MEMBER_BYTES, BackupError

STORES = {"revisions_db": "state/revisions.sqlite", "secrets_db": "state/secrets.sqlite", "users_db": "state/users.sqlite"}
KEYS = {
    "config": "state/pacslb.yaml",
    "management_certificate": "state/management/server.pem",
    "ha_node_certificate": "state/ha/node.pem",
    "ha_node_key": "state/ha/node.key",
    "initial_admin_password": "state/initial-admin-password",  # while the first admin's password is unchanged
}
CERTS_DIR = "state/certs/"
CERTIFICATES_DIR = "certificates/"


def sqlite_copy(path: Path) -> bytes:
    """A consistent copy of a SQLite file, through SQLite's backup API (readers and writers may go on)."""
    with tempfile.TemporaryDirectory(prefix="pacslb-backup-") as tmp:
        target = Path(tmp) / "copy.sqlite"
        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                copy = sqlite3.connect(target)
                try:
                    source.backup(copy)
                    copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
                finally:
                    copy.close()
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise BackupError(f"cannot copy {path}: {exc}") from None
        return target.read_bytes()


def _read_small(path: Path, what: str, limit: int = MAX_PEM_BYTES) -> bytes:
    """A file of the backup, read as every named file is (model/files.py: a regular file, bounded)."""
    found = read_named_file(what, path, limit, what)
    if isinstance(found, Problem):
        raise BackupError(f"{what}: {found.message}")
    return found.data


def collect(paths: StatePaths) -> tuple[dict[str, bytes], dict[str, Any]]:
    """(members, about) of a backup of the appliance of `paths`; BackupError when there is nothing to back up."""
    if not paths.revisions_db.exists():
        raise BackupError(f"{paths.root} has no revisions ({paths.revisions_db.name}): there is nothing to back up")
    members: dict[str, bytes] = {}
    for attribute, name in STORES.items():
        path = getattr(paths, attribute)
        if path.exists():
            members[name] = sqlite_copy(path)
    for attribute, name in KEYS.items():
        path = getattr(paths, attribute)
        if path.exists():
            members[name] = _read_small(path, name, MAX_MEMBER_BYTES if attribute == "config" else MAX_PEM_BYTES)
    if paths.certs_dir.is_dir():
        for path in sorted(paths.certs_dir.iterdir()):
            if path.is_file() and not path.is_symlink():
                members[CERTS_DIR + path.name] = _read_small(path, f"{CERTS_DIR}{path.name}")
    try:
        current = RevisionStore(paths.revisions_db, create=False).current()
    except StoreError as exc:
        raise BackupError(str(exc)) from None
    certificates, missing = [], []
    if current is not None:
        loaded = validate_data(current.config_data)
        base_dir = Path(current.base_dir) if current.base_dir else paths.root
        if loaded.config is not None:
            wanted: dict[str, list[str]] = {}
            for named in named_files(loaded.config):
                if named.kind == "certificate":
                    wanted.setdefault(str(resolve(named.value, base_dir).absolute()), []).append(named.field)
            for i, (path, fields) in enumerate(sorted(wanted.items())):
                if not Path(path).exists():  # gone since it was loaded: the backup says so, the restore will too
                    missing.append({"path": path, "fields": fields})
                    continue
                member = f"{CERTIFICATES_DIR}{i}.pem"
                members[member] = _read_small(Path(path), fields[0])
                certificates.append({"member": member, "path": path, "fields": fields})
    about = {
        "state_dir": str(paths.root),
        "revision": current.id if current is not None else None,
        "certificates": certificates,
        "certificates_missing": missing,
    }
    return members, about
