"""Reading and writing backup files and passphrases, with their limits (the CLI's and the API's edge)."""

from __future__ import annotations

from pathlib import Path

from .. import pki
from .archive import MAX_BACKUP_BYTES, BackupError


def read_backup(path: Path) -> bytes:
    """The bytes of a backup file (at most MAX_BACKUP_BYTES; a regular file)."""
    try:
        if not path.is_file():
            raise BackupError(f"{path} is not a regular file")
        with path.open("rb") as handle:
            data = handle.read(MAX_BACKUP_BYTES + 1)
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None
    if len(data) > MAX_BACKUP_BYTES:
        raise BackupError(f"{path} is larger than {MAX_BACKUP_BYTES} bytes: it is not a pacslb backup")
    return data


def write_backup(path: Path, data: bytes) -> None:
    """Write a backup, mode 0600 from its first byte (it holds password hashes and private keys)."""
    try:
        pki.write_atomic(path, data, mode=0o600)
    except OSError as exc:
        raise BackupError(f"cannot write {path}: {exc}") from None


def read_passphrase(path: Path, stdin_line=None) -> str:
    """The passphrase on the first line of `path` ('-': `stdin_line()`)."""
    try:
        text = stdin_line() if str(path) == "-" and stdin_line else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BackupError(f"--passphrase-file: cannot read {path}: {exc}") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise BackupError(f"--passphrase-file: {path} has no passphrase on its first line")
    return lines[0]
