"""The backup's format: a gzip'd tar of named members with a manifest of their SHA-256, read with limits.

    manifest.json              format, format_version, pacslb version, when, what (below), members: {name: {sha256, size}}
    state/revisions.sqlite     the revisions (SQLite backup API copy)
    state/secrets.sqlite       their secrets, by revision and field path
    state/users.sqlite         users (argon2 hashes) and API keys (SHA-256 of the key)
    state/pacslb.yaml          the copy of the configuration that runs
    state/management/server.pem, state/ha/node.pem, state/ha/node.key, state/certs/NAME,
    state/initial-admin-password (while the first admin still has it)
    certificates/N.pem         each certificate file the configuration names (its path in the manifest)

A backup is read as hostile input: the file is bounded (MAX_BACKUP_BYTES), and so are the members' count
(MAX_MEMBERS), each member's size (MAX_MEMBER_BYTES) and their sum (MAX_TOTAL_BYTES); a member is a regular file
with a plain relative name (no '..', no absolute path, no link, device or folder, no name twice), listed in
the manifest with its hash; and members are never extracted by their names: the reader returns bytes, and
the restore writes each known member to a path of its own choosing. Without a passphrase the hashes find a
damaged or naively changed backup; only an encrypted one (crypto.py) is authenticated.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import __version__
from .crypto import decrypt, encrypt, is_encrypted

FORMAT = "pacslb-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_BACKUP_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 1000
MAX_MEMBER_BYTES = 128 * 1024 * 1024
MAX_TOTAL_BYTES = 512 * 1024 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")


class BackupError(ValueError):
    """The backup cannot be read or used; the message names the member or field and what to do."""


@dataclass
class Backup:
    """A backup's contents, checked: its manifest and members by name."""

    manifest: dict[str, Any]
    members: dict[str, bytes] = field(default_factory=dict)

    def get(self, name: str) -> bytes | None:
        return self.members.get(name)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_name(name: str) -> str:
    if len(name) > 200 or not _NAME.match(name) or ".." in name.split("/"):
        raise BackupError(f"member {name[:200]!r}: not a plain relative name; the backup is refused")
    return name


def pack(
    members: Mapping[str, bytes], about: Mapping[str, Any], passphrase: str | None = None, now: float | None = None
) -> bytes:
    """The backup file: members (name -> bytes) with a manifest (`about` and their hashes), sealed if a passphrase is given."""
    if len(members) + 1 > MAX_MEMBERS:
        raise BackupError(f"{len(members)} members: a backup holds at most {MAX_MEMBERS - 1}")
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pacslb_version": __version__,
        "created_at": time.time() if now is None else now,
        **about,
        "members": {check_name(n): {"sha256": sha256(d), "size": len(d)} for n, d in sorted(members.items())},
    }
    buffer = io.BytesIO()
    # mtime 0 in gzip and tar: the same contents give the same bytes (before encryption)
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode()), *sorted(members.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, 0
            tar.addfile(info, io.BytesIO(data))
    plain = buffer.getvalue()
    if len(plain) > MAX_BACKUP_BYTES:
        raise BackupError(f"the backup would be {len(plain)} bytes: at most {MAX_BACKUP_BYTES} are read back")
    return encrypt(plain, passphrase) if passphrase is not None else plain


class _Bounded:
    """The decompressed stream, refused once it passes what a backup within the limits can be: tar reads headers
    (a pax header may declare any size) before the member checks below see them."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.read_so_far = 0
        self.limit = MAX_TOTAL_BYTES + MAX_MANIFEST_BYTES + (MAX_MEMBERS + 2) * 3 * 512 + 20 * 10240

    def read(self, size: int = -1) -> bytes:
        if size < 0 or self.read_so_far + size > self.limit:
            raise BackupError(f"the archive unpacks to more than {self.limit} bytes; the backup is refused")
        data = self.stream.read(size)
        self.read_so_far += len(data)
        return data


def unpack(data: bytes, passphrase: str | None = None) -> Backup:
    """The checked contents of a backup file; BackupError (or crypto.BackupCryptoError) on any problem."""
    if len(data) > MAX_BACKUP_BYTES:
        raise BackupError(f"the file is {len(data)} bytes: a backup is at most {MAX_BACKUP_BYTES}")
    if is_encrypted(data):
        data = decrypt(data, passphrase)
    elif passphrase is not None:
        raise BackupError("the backup is not encrypted, but a passphrase was given: leave it out, or use the encrypted backup")
    if not data.startswith(b"\x1f\x8b"):
        raise BackupError("this is not a pacslb backup (neither an encrypted one nor a gzip'd tar)")
    members: dict[str, bytes] = {}
    total = 0
    try:
        stream = _Bounded(gzip.GzipFile(fileobj=io.BytesIO(data)))
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                name = check_name(info.name)
                if not info.isreg():
                    raise BackupError(f"member {name}: not a regular file (a link, folder or device); the backup is refused")
                if name in members:
                    raise BackupError(f"member {name}: present twice; the backup is refused")
                if len(members) >= MAX_MEMBERS:
                    raise BackupError(f"more than {MAX_MEMBERS} members; the backup is refused")
                limit = MAX_MANIFEST_BYTES if name == MANIFEST else MAX_MEMBER_BYTES
                if info.size > limit:
                    raise BackupError(f"member {name}: {info.size} bytes, more than the {limit} allowed; the backup is refused")
                total += info.size
                if total > MAX_TOTAL_BYTES:
                    raise BackupError(f"the members add up to more than {MAX_TOTAL_BYTES} bytes; the backup is refused")
                extracted = tar.extractfile(info)
                members[name] = extracted.read(limit + 1) if extracted is not None else b""
        while stream.read(65536):  # to the end: gzip checks its CRC-32 of everything there, tar stops before it
            pass
    except (tarfile.TarError, OSError, EOFError, zlib.error, UnicodeError) as exc:
        raise BackupError(f"the backup is damaged: {exc}") from None
    raw = members.pop(MANIFEST, None)
    if raw is None:
        raise BackupError(f"the backup has no {MANIFEST}; it is not a pacslb backup")
    return Backup(check_manifest(raw, members), members)


def check_manifest(raw: bytes, members: Mapping[str, bytes]) -> dict[str, Any]:
    """The manifest when it is of a format this pacslb reads and every member matches it."""
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise BackupError(f"{MANIFEST}: not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{MANIFEST}: format is not {FORMAT!r}; this is not a pacslb backup")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BackupError(f"{MANIFEST}: format_version {version!r} is not a version")
    if version > FORMAT_VERSION:
        raise BackupError(f"{MANIFEST}: format_version {version} was written by a newer pacslb "
                          f"({manifest.get('pacslb_version', '?')}); this pacslb ({__version__}) reads up to version "
                          f"{FORMAT_VERSION}: restore it with that release or a newer one")  # fmt: skip
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        raise BackupError(f"{MANIFEST}: members is missing")
    for name in sorted(set(listed) | set(members)):
        if name not in members:
            raise BackupError(f"member {name}: listed in {MANIFEST} but missing; the backup is incomplete")
        entry = listed.get(name)
        if not isinstance(entry, dict):
            raise BackupError(f"member {name}: not listed in {MANIFEST}; the backup was changed")
        if entry.get("size") != len(members[name]) or entry.get("sha256") != sha256(members[name]):
            raise BackupError(f"member {name}: its SHA-256 differs from {MANIFEST}; the backup was changed or damaged")
    return manifest
