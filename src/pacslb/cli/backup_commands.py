"""`pacslb backup -o FILE`, `pacslb restore FILE`, `pacslb support-bundle -o FILE` (docs/operations.md).

backup copies the stores with SQLite's backup API, so it may run beside a running appliance. restore checks
the whole backup before it writes anything; on a fresh state directory (no stores, no controller) it fills
it, and `pacslb up` then runs the restored revision; on a running appliance it applies the restored
configuration as one revision through the controller (the change front door), then restores users and API keys.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from . import app
from .common import EXIT_INVALID, StateDirOption, lock_state_dir_or_exit, state_paths

PassphraseFileOption = Annotated[
    Path | None,
    typer.Option("--passphrase-file", metavar="FILE", help="the passphrase on the first line of FILE ('-': standard input)"),
]
CHANGE_TIMEOUT = 600.0


def _fail(message: str, code: int = EXIT_INVALID) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def _passphrase(path: Path | None) -> str | None:
    from ..backup.archive import BackupError
    from ..backup.files import read_passphrase

    if path is None:
        return None
    try:
        return read_passphrase(path, sys.stdin.readline)
    except BackupError as exc:
        _fail(str(exc))
    return None


def _audit(root: Path, action: str, target: str, outcome: str = "ok", detail=None) -> None:
    from ..api import state
    from ..change.service import default_author
    from ..store.audit import AuditLog

    try:
        AuditLog(state.audit_db(root)).record(f"{default_author()} (cli)", action, target=target, outcome=outcome,
                                              via="cli", detail=detail)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - StoreError, OSError: a backup is no less good for it
        print(f"warning: the audit log could not record {action}: {exc}", file=sys.stderr)


@app.command()
def backup(
    output: Annotated[Path, typer.Option("--output", "-o", help="the backup file to write (mode 0600)")],
    passphrase_file: PassphraseFileOption = None,
    state_dir_option: StateDirOption = None,
) -> None:
    """Back up the appliance: revisions with their secrets, users and API keys, the certificates the configuration
    names, the management and HA certificates; a consistent copy while it runs. With --passphrase-file, encrypted
    (scrypt + AES-256-GCM)."""
    from ..backup.archive import BackupError, pack
    from ..backup.collect import collect
    from ..backup.crypto import BackupCryptoError
    from ..backup.files import write_backup

    paths = state_paths(state_dir_option)
    passphrase = _passphrase(passphrase_file)
    try:
        members, about = collect(paths)
        write_backup(output, pack(members, about, passphrase))
    except (BackupError, BackupCryptoError) as exc:
        _audit(paths.root, "backup.create", str(output), "refused", {"message": str(exc)})
        _fail(f"{exc}; no backup was written", 1)
    for gone in about["certificates_missing"]:
        print(f"warning: {gone['fields'][0]}: {gone['path']} does not exist: it is not in the backup", file=sys.stderr)
    _audit(paths.root, "backup.create", str(output), detail={"encrypted": passphrase is not None, "revision": about["revision"]})
    print(f"wrote {output}: revision {about['revision']}, {len(members)} files"
          + (", encrypted" if passphrase is not None else " (not encrypted: keep it as safe as the appliance)"))  # fmt: skip


@app.command()
def restore(
    backup_file: Annotated[Path, typer.Argument(metavar="FILE", help="a backup made by 'pacslb backup'")],
    passphrase_file: PassphraseFileOption = None,
    replace_certificates: Annotated[
        bool, typer.Option("--replace-certificates", help="overwrite certificate files that exist with other content")
    ] = False,
    check_only: Annotated[bool, typer.Option("--check", help="check the backup and say what it holds; change nothing")] = False,
    state_dir_option: StateDirOption = None,
) -> None:
    """Restore a backup: on a fresh state directory, everything; on a running appliance, its configuration as one
    new revision, and its users and API keys. Everything is checked first; on any problem nothing is changed."""
    from ..backup.archive import BackupError, unpack
    from ..backup.crypto import BackupCryptoError
    from ..backup.files import read_backup
    from ..backup.restore import check, conflict_message

    paths = state_paths(state_dir_option, create=True)
    passphrase = _passphrase(passphrase_file)
    with tempfile.TemporaryDirectory(prefix="pacslb-restore-") as workdir:
        try:
            checked = check(unpack(read_backup(backup_file), passphrase), Path(workdir))
        except (BackupError, BackupCryptoError) as exc:
            _audit(paths.root, "backup.restore", str(backup_file), "refused", {"message": str(exc)})
            _fail(f"{backup_file}: {exc}")
        if check_only:
            print(json.dumps(checked.summary(), indent=2))
            if checked.conflicts:
                print(f"note: {conflict_message(checked)}", file=sys.stderr)
            return
        if _controller_answers(paths):
            _restore_running(paths, checked, backup_file, replace_certificates)
        else:
            _restore_fresh(paths, checked, backup_file, replace_certificates)


def _controller_answers(paths) -> bool:
    from ..controller.client import ControllerClient, ControllerUnavailable

    try:
        ControllerClient(paths, timeout=10).health()
    except ControllerUnavailable:
        return False
    return True


def _restore_fresh(paths, checked, backup_file: Path, replace_certificates: bool) -> None:
    from ..backup.archive import BackupError
    from ..backup.restore import restore_fresh

    lock = lock_state_dir_or_exit(paths)  # no controller starts on a half-restored directory
    try:
        restored = restore_fresh(checked, paths, replace_certificates)
    except BackupError as exc:
        _fail(f"{backup_file}: {exc}")
    finally:
        lock.release()
    _audit(paths.root, "backup.restore", str(backup_file), detail={"into": "fresh", **checked.summary()})
    print(f"restored {backup_file} into {paths.root}: revision {checked.revision_id}, users {', '.join(checked.users)}, "
          f"{checked.api_keys} API keys, {len(restored)} files")  # fmt: skip
    # the file it ran from: relative certificate paths are read from its folder (the copy in the state directory
    # would read them from there)
    print(f"start it with the configuration file it ran from: pacslb up -c {checked.config_file or 'FILE'} "
          f"--state-dir {paths.root}  ({paths.config} is a copy of what runs)")  # fmt: skip


def _restore_running(paths, checked, backup_file: Path, replace_certificates: bool) -> None:
    from ..backup.archive import BackupError
    from ..backup.restore import CertificateWrites, apply_arguments, restore_users
    from ..change.service import default_author
    from ..controller.client import ControllerClient, ControllerUnavailable
    from .change_commands import _report

    if checked.config is None:
        _fail(f"{backup_file}: the backup holds no revision to apply")
    certs = CertificateWrites()
    try:
        certs.write(checked, replace_certificates)
    except BackupError as exc:
        _fail(str(exc))
    args = apply_arguments(checked, backup_file.name)
    body = {"config": args["data"], "yaml": args["yaml_text"], "base_dir": args["base_dir"], "message": args["message"],
            "author": default_author()}  # fmt: skip
    try:
        result = ControllerClient(paths, timeout=CHANGE_TIMEOUT).apply(body)
    except ControllerUnavailable as exc:
        certs.undo()
        _fail(f"the controller stopped answering ({exc}); nothing was restored", 1)
    if result.get("outcome") not in ("applied", "unchanged"):
        certs.undo()
        _audit(paths.root, "backup.restore", str(backup_file), "refused", {"message": result.get("message")})
        _report(result, as_json=False)
        raise typer.Exit(1)
    users, keys = restore_users(checked, paths.users_db)
    _audit(paths.root, "backup.restore", str(backup_file),
           detail={"into": "running", "revision": result.get("revision"), **checked.summary()})  # fmt: skip
    _report(result, as_json=False)
    print(f"restored {users} users and {keys} API keys from {backup_file}")


@app.command("support-bundle")
def support_bundle(
    output: Annotated[Path, typer.Option("--output", "-o", help="the bundle to write (a gzip'd tar, mode 0600)")],
    hours: Annotated[float, typer.Option("--hours", help="the logs of how many hours (1 to 720)")] = 24.0,
    state_dir_option: StateDirOption = None,
) -> None:
    """Everything support needs in one file, with every secret redacted: versions, haproxy -vv, the configuration,
    status, revisions, the last hours of every log, the rendered engine files, the nft ruleset, addresses and routes."""
    from ..backup import bundle
    from ..backup.archive import BackupError
    from ..backup.files import write_backup
    from ..controller.client import ControllerClient, ControllerUnavailable

    paths = state_paths(state_dir_option)
    try:
        bundle.check_hours(hours)
    except ValueError as exc:
        _fail(str(exc))
    try:
        status = ControllerClient(paths, timeout=30).status()
    except ControllerUnavailable as exc:
        print(f"note: no status in the bundle: {exc}", file=sys.stderr)
        status = None
    members = bundle.collect_bundle(paths, status, hours=hours)
    try:
        write_backup(output, bundle.pack_bundle(members))
    except BackupError as exc:
        _fail(str(exc), 1)
    _audit(paths.root, "support-bundle.create", str(output))
    print(f"wrote {output}: {len(members)} files, secrets redacted (look before you send it: it names hosts and addresses)")
