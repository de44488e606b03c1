"""Restoring a backup: everything is checked before anything is written, then either a fresh state directory
is filled, or (on a running appliance) the users and API keys are replaced and the caller applies the
restored configuration as one revision through the change front door.

`check` reads the unpacked backup (archive.unpack already checked its format version and hashes): the
stores open and pass SQLite's integrity check, their schemas are not newer than this pacslb's, the current
revision's configuration validates through the model with the secrets it ran with, at least one admin
exists, and every certificate is PEM with a certificate in it and an absolute path.

Certificates whose path exists with other content are refused (the restore names them) unless the caller
asks to replace them (`--replace-certificates`): a certificate renewed since the backup must not be put
back behind an operator's back; what was replaced is put back if the restore then fails.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import files, pki
from ..model import Config, validate_data
from ..model.files import Reserved
from ..model.secrets import resolve, revealed_dump
from ..paths import StatePaths
from ..store import RevisionStore, SecretStore, StoreError
from ..store import db as store_db
from ..store import revisions as revisions_store
from ..store import secrets as secrets_store
from ..store import users as users_store
from .archive import Backup, BackupError
from .collect import CERTS_DIR, KEYS, STORES

# each store: (member, the StatePaths attribute it is restored to, its mode, the newest schema this pacslb reads)
RESTORED_STORES = (
    (STORES["revisions_db"], "revisions_db", 0o640, revisions_store.SCHEMA_VERSION),
    (STORES["secrets_db"], "secrets_db", 0o600, secrets_store.SCHEMA_VERSION),
    (STORES["users_db"], "users_db", 0o600, users_store.SCHEMA_VERSION),
)


@dataclass
class Certificate:
    member: str
    path: Path
    fields: list[str]
    data: bytes
    conflict: bool = False  # the path exists with other content


@dataclass
class Checked:
    """A backup checked for restoring on `paths`: what it holds, and what restoring it would meet."""

    backup: Backup
    workdir: Path  # the stores, written out to be opened (a private temporary folder)
    revision_id: int | None
    config: Config | None  # the current revision's, with its secrets
    config_text: str
    base_dir: Path
    users: list[str] = field(default_factory=list)
    api_keys: int = 0
    certificates: list[Certificate] = field(default_factory=list)
    config_file: str | None = None  # the configuration file the appliance last read at startup (its path there)

    @property
    def conflicts(self) -> list[Certificate]:
        return [c for c in self.certificates if c.conflict]

    def summary(self) -> dict[str, Any]:
        return {
            "created_at": self.backup.manifest.get("created_at"),
            "pacslb_version": self.backup.manifest.get("pacslb_version"),
            "revision": self.revision_id,
            "users": self.users,
            "api_keys": self.api_keys,
            "certificates": [str(c.path) for c in self.certificates],
            "conflicting_certificates": [str(c.path) for c in self.conflicts],
        }


def _store_path(workdir: Path, member: str) -> Path:
    return workdir / member.replace("/", "_")


def _schema_version(path: Path, member: str) -> int:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"member {member}: SQLite's integrity check fails; the backup is damaged")
            return db.execute("PRAGMA user_version").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise BackupError(f"member {member}: not a readable SQLite store ({exc})") from None


def check(backup: Backup, workdir: Path) -> Checked:
    """The backup checked for restoring (nothing outside `workdir`, a private empty folder, is written);
    BackupError listing every problem otherwise."""
    for member, _, _, newest in RESTORED_STORES:
        data = backup.get(member)
        if data is None:
            if member == STORES["secrets_db"]:
                continue  # a configuration without secrets never made the store
            raise BackupError(f"member {member} is missing: the backup cannot be restored")
        path = _store_path(workdir, member)
        path.write_bytes(data)
        version = _schema_version(path, member)
        if version > newest:
            raise BackupError(f"member {member}: schema {version} was written by a newer pacslb (this one reads up to "
                              f"{newest}): restore it with that release or a newer one")  # fmt: skip
    problems: list[str] = []
    try:
        store = RevisionStore(_store_path(workdir, STORES["revisions_db"]))
        problems += [f"{STORES['revisions_db']}: {p}" for p in store.check_integrity()]
        current = store.current()
        seen = store.meta("config_file")
    except StoreError as exc:
        raise BackupError(f"member {STORES['revisions_db']}: {exc}") from None
    config, config_text, base_dir = None, "", Path("/")
    if current is not None:
        base_dir = Path(current.base_dir) if current.base_dir else Path("/")
        config_text = current.config_text
        loaded = validate_data(current.config_data)
        problems += [f"configuration (revision {current.id}): {p}" for p in loaded.problems if p.severity == "error"]
        if loaded.config is not None:
            secrets_path = _store_path(workdir, STORES["secrets_db"])
            stored = SecretStore(secrets_path, create_file=False).get(current.id) if secrets_path.exists() else {}
            config, unresolved = resolve(loaded.config, stored, f"revision {current.id}'s secrets in the backup")
            problems += [f"configuration (revision {current.id}): {p}" for p in unresolved]
    try:
        users = users_store.UserStore(_store_path(workdir, STORES["users_db"]))
        listed = users.list()
        keys = len(users.api_keys())
    except (StoreError, sqlite3.Error) as exc:
        raise BackupError(f"member {STORES['users_db']}: {exc}") from None
    if not any(u.role == "admin" for u in listed):
        problems.append(f"{STORES['users_db']}: no admin: a restore would lock every administrator out")
    certificates = []
    for entry in backup.manifest.get("certificates") or []:
        try:
            member, path, fields = entry["member"], Path(entry["path"]), list(entry["fields"])
        except (KeyError, TypeError) as exc:
            raise BackupError(f"manifest.json: certificates: an entry lacks {exc}") from None
        data = backup.get(member)
        if data is None:
            problems.append(f"{fields[0] if fields else member}: member {member} is missing")
            continue
        if not path.is_absolute() or ".." in path.parts:
            problems.append(f"{fields[0] if fields else member}: {path} is not an absolute path")
            continue
        if b"-----BEGIN CERTIFICATE-----" not in data:
            problems.append(f"{fields[0] if fields else member}: member {member} holds no PEM certificate")
            continue
        conflict = path.exists() and (not path.is_file() or path.read_bytes() != data)
        certificates.append(Certificate(member, path, fields, data, conflict))
    if problems:
        raise BackupError("the backup cannot be restored; nothing was changed:\n  " + "\n  ".join(problems))
    return Checked(backup, workdir, current.id if current else None, config, config_text, base_dir,
                   [f"{u.username} ({u.role})" for u in listed], keys, certificates,
                   seen.get("path") if isinstance(seen, dict) else None)  # fmt: skip


# --- certificates ------------------------------------------------------------------------------------


def conflict_message(checked: Checked) -> str:
    paths = ", ".join(str(c.path) for c in checked.conflicts)
    return (f"certificates exist with other content than in the backup: {paths}; nothing was changed: "
            "keep them (restore elsewhere, or move them away first) or replace them (--replace-certificates, "
            "or replace_certificates in the API)")  # fmt: skip


class CertificateWrites:
    """Certificates written by a restore, and how to put back what was there (`undo`) if the restore fails."""

    def __init__(self) -> None:
        self._before: list[tuple[Path, bytes | None]] = []

    def write(self, checked: Checked, replace: bool) -> None:
        if checked.conflicts and not replace:
            raise BackupError(conflict_message(checked))
        for cert in checked.certificates:
            if cert.path.exists() and not cert.conflict:
                continue  # the same bytes are there already
            previous = cert.path.read_bytes() if cert.path.is_file() else None
            self._before.append((cert.path, previous))
            pki.write_atomic(cert.path, cert.data, mode=0o600)

    def undo(self) -> None:
        for path, previous in reversed(self._before):
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                pki.write_atomic(path, previous, mode=0o600)
        self._before.clear()


# --- a fresh state directory -------------------------------------------------------------------------


def fresh_problem(paths: StatePaths) -> str | None:
    """Why the state directory is not fresh (it has stores a restore would overwrite), or None."""
    found = [p.name for p in (paths.revisions_db, paths.users_db, paths.secrets_db) if p.exists()]
    if found:
        return (f"{paths.root} is not a fresh state directory (it has {', '.join(found)}): restore into a new or empty "
                "state directory, or start the appliance and restore into it while it runs")  # fmt: skip
    return None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)


def restore_fresh(checked: Checked, paths: StatePaths, replace_certificates: bool = False) -> list[str]:
    """Fill a fresh state directory from the backup (the caller holds its controller lock); what was restored.

    Order: certificates, then the configuration is validated with its files where this appliance will read
    them (undoing the certificates on a problem), then the stores and keys."""
    if problem := fresh_problem(paths):
        raise BackupError(problem)
    certs = CertificateWrites()
    certs.write(checked, replace_certificates)
    try:
        if checked.config is not None:
            loaded = validate_data(revealed_dump(checked.config), checked.base_dir, Reserved(paths.root, paths.certs_dir))
            errors = [str(p) for p in loaded.problems if p.severity == "error"]
            if errors:
                raise BackupError(
                    "the restored configuration does not validate here; nothing was changed:\n  " + "\n  ".join(errors)
                )
    except BaseException:
        certs.undo()
        raise
    done = []
    for member, attribute, mode, _ in RESTORED_STORES:
        data = checked.backup.get(member)
        if data is not None:
            _write_new(getattr(paths, attribute), data, mode)
            done.append(member)
    for attribute, member in KEYS.items():
        data = checked.backup.get(member)
        if data is not None:
            if attribute == "config":
                files.atomic_write(paths.config, data.decode("utf-8"))
            else:
                _write_new(getattr(paths, attribute), data, 0o600)
            done.append(member)
    for member, data in sorted(checked.backup.members.items()):
        if member.startswith(CERTS_DIR):
            _write_new(paths.certs_dir / member[len(CERTS_DIR) :], data, 0o600)
            done.append(member)
    return done + [str(c.path) for c in checked.certificates]


# --- the users of a running appliance ----------------------------------------------------------------

USER_COLUMNS = "username, role, password_hash, created_at, changed_at, must_change_password"
KEY_COLUMNS = "id, username, name, secret_hash, created_at, last_used, expires_at"


def restore_users(checked: Checked, users_db: Path) -> tuple[int, int]:
    """Replace the users and API keys of a running appliance with the backup's, in one transaction (their
    sessions end: a session names a user whose row changed); (users, API keys) restored."""
    source = _store_path(checked.workdir, STORES["users_db"])
    with store_db.transaction(source, write=False) as conn:
        users = conn.execute(f"SELECT {USER_COLUMNS} FROM users").fetchall()
        keys = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys").fetchall()
    users_store.UserStore(users_db)  # the schema, when the appliance made none yet
    with store_db.transaction(users_db) as conn:
        conn.execute("DELETE FROM api_keys")
        conn.execute("DELETE FROM users")
        conn.executemany(f"INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", users)
        conn.executemany(f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", keys)
    return len(users), len(keys)


# --- a running appliance -----------------------------------------------------------------------------


def apply_arguments(checked: Checked, source: str) -> dict[str, Any]:
    """What the change front door applies for a restore on a running appliance: the backup's current configuration
    with the secrets it ran with (`data`), its stored text (secrets as the placeholder), and where its files are."""
    assert checked.config is not None
    when = checked.backup.manifest.get("created_at")
    made = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when)) if isinstance(when, (int, float)) else "?"
    return {
        "data": revealed_dump(checked.config),
        "yaml_text": checked.config_text,
        "base_dir": str(checked.base_dir),
        "message": f"restored from {source} (its revision {checked.revision_id}, backed up {made})",
    }
