"""The support bundle: what support needs to understand an appliance, in one gzip'd tar, with every secret redacted.

    manifest.json                 what is in it, when, and each command's exit status
    versions.txt                  pacslb, Python, HAProxy, keepalived, nftables, the kernel
    haproxy-vv.txt                `haproxy -vv` (build options, features, polling, OpenSSL)
    config.yaml                   the current revision's configuration, secrets as the placeholder
    status.json                   the live status (when the controller answers)
    revisions.json                the revisions (no configurations)
    engines/haproxy.cfg, engines/ruleset.nft, engines/keepalived.conf   the rendered engine files that run
    logs/<path in the state directory>   every log of the state directory written to in the last --hours
                                  (at most MAX_LOG_BYTES of its end each)
    system/nft-ruleset.txt, system/addresses.txt, system/routes.txt, system/routes6.txt, system/rules.txt

Redaction (`redact`, pure, applied to every member but the configuration, which the model redacts): every
secret value the appliance holds (the secret store's values of every revision: the model's Secret fields, so a
secret field added later is covered; the first admin's one-time password), every line of a field named like
a Secret field (`password ...`), PEM private keys and pacslb API keys. The bundle holds no store: no password
hash, no API key hash, no audit log.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import time
from typing import Any, Callable, Iterable

from .. import __version__
from ..model import Config, validate_data
from ..model.secrets import secret_field_names
from ..model.types import SECRET_PLACEHOLDER
from ..paths import StatePaths
from ..store import RevisionStore, SecretStore, StoreError

DEFAULT_HOURS = 24
MAX_HOURS = 24 * 30
MAX_LOG_BYTES = 8 * 1024 * 1024
MAX_LOGS = 50
MAX_COMMAND_BYTES = 4 * 1024 * 1024
COMMAND_TIMEOUT = 20.0
MIN_SECRET_LENGTH = 4  # shorter values would redact half the bundle; the model asks for more anyway

COMMANDS = {
    "haproxy-vv.txt": ["haproxy", "-vv"],
    "system/nft-ruleset.txt": ["nft", "list", "ruleset"],
    "system/addresses.txt": ["ip", "-d", "address", "show"],
    "system/routes.txt": ["ip", "route", "show", "table", "all"],
    "system/routes6.txt": ["ip", "-6", "route", "show", "table", "all"],
    "system/rules.txt": ["ip", "rule", "show"],
}
VERSIONS = {"HAProxy": ["haproxy", "-v"], "keepalived": ["keepalived", "--version"], "nftables": ["nft", "--version"]}

_PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END \1PRIVATE KEY-----|\Z)", re.S)
_API_KEY = re.compile(rb"pacslb_[0-9a-f]{6,}_[A-Za-z0-9_\-]{8,}")
REDACTED = SECRET_PLACEHOLDER.encode()

Run = Callable[[list[str]], tuple[int | None, bytes]]


def run_command(argv: list[str]) -> tuple[int | None, bytes]:
    """(exit status, stdout + stderr, bounded); None as the status when it could not run or timed out."""
    try:
        done = subprocess.run(argv, capture_output=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"could not run {' '.join(argv)}: {exc}\n".encode()
    return done.returncode, (done.stdout + done.stderr)[:MAX_COMMAND_BYTES]


def check_hours(hours: float) -> float:
    if not 0 < hours <= MAX_HOURS:
        raise ValueError(f"hours: {hours:g} is out of range: give 1 to {MAX_HOURS} (the logs of how many hours)")
    return hours


def _name_pattern(names: Iterable[str]) -> re.Pattern[bytes] | None:
    """`password: VALUE`, `password VALUE`, `"password": "VALUE"` for every name of a Secret field."""
    names = sorted({re.escape(n) for n in names if n})
    if not names:
        return None
    return re.compile(
        rb'(?i)(["\']?\b(?:' + "|".join(names).encode() + rb')\b["\']?\s*[:=]?\s*)("[^"\r\n]*"|\'[^\'\r\n]*\'|[^\s,}\]]+)'
    )


def redact(data: bytes, secrets: Iterable[str], names: Iterable[str] = ()) -> bytes:
    """`data` with every secret value, PEM private key, pacslb API key and value of a secret-named field replaced
    by the placeholder (pure)."""
    values = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)  # longest first
    for value in values:
        data = data.replace(value.encode(), REDACTED)
    data = _PRIVATE_KEY.sub(b"-----BEGIN PRIVATE KEY-----\n" + REDACTED + b"\n-----END PRIVATE KEY-----", data)
    data = _API_KEY.sub(b"pacslb_" + REDACTED, data)
    pattern = _name_pattern(names)
    if pattern is not None:
        data = pattern.sub(lambda m: m[1] + REDACTED, data)
    return data


def known_secrets(paths: StatePaths, running: Config | None = None) -> list[str]:
    """Every secret value this appliance holds: the secret store's (every revision), the running configuration's,
    and the first admin's one-time password."""
    found: list[str] = []
    if paths.secrets_db.exists():
        try:
            store = SecretStore(paths.secrets_db, create_file=False)
            for rev_id in RevisionStore(paths.revisions_db, create=False).ids():
                found += store.get(rev_id).values()
        except StoreError:
            pass  # the placeholder and field-name rules still apply
    if running is not None:
        from ..model.secrets import stored_form

        found += stored_form(running).values()
    try:
        found.append(paths.initial_admin_password.read_text().strip())
    except OSError:
        pass
    return found


def current_config(paths: StatePaths) -> tuple[int | None, str, list[dict[str, Any]]]:
    """(current revision, its configuration as YAML with secrets as the placeholder, the revisions' summaries)."""
    from ..change.service import config_yaml

    try:
        store = RevisionStore(paths.revisions_db, create=False)
        current = store.current()
        summaries = [r.summary() for r in store.list(limit=10_000)]
    except StoreError as exc:
        return None, f"# no revisions: {exc}\n", []
    if current is None:
        return None, "# no revision is applied yet\n", summaries
    loaded = validate_data(current.config_data)
    if loaded.config is None:
        return (
            current.id,
            "# the current revision no longer validates:\n" + "".join(f"# {p}\n" for p in loaded.problems),
            summaries,
        )
    return current.id, config_yaml(loaded.config), summaries


def recent_logs(paths: StatePaths, hours: float, now: float) -> dict[str, bytes]:
    """Every *.log (and rotated *.log.N) under the state directory written to in the last `hours`: the end of each."""
    found: dict[str, bytes] = {}
    candidates = sorted(p for p in paths.root.rglob("*.log*") if p.is_file() and not p.is_symlink())
    for path in candidates:
        if len(found) >= MAX_LOGS:
            break
        try:
            stat = path.stat()
            if now - stat.st_mtime > hours * 3600:
                continue
            with path.open("rb") as handle:
                handle.seek(max(0, stat.st_size - MAX_LOG_BYTES))
                found[f"logs/{path.relative_to(paths.root)}"] = handle.read(MAX_LOG_BYTES)
        except OSError:
            continue
    return found


def collect_bundle(paths: StatePaths, status: dict[str, Any] | None, *, hours: float = DEFAULT_HOURS,
                   running: Config | None = None, run: Run = run_command, now: float | None = None) -> dict[str, bytes]:  # fmt: skip
    """The members of the support bundle of the appliance of `paths`, redacted; `status` from the controller (None:
    it does not answer)."""
    check_hours(hours)
    now = time.time() if now is None else now
    members: dict[str, bytes] = {}
    commands: dict[str, Any] = {}
    versions = [f"pacslb {__version__}", f"Python {sys.version.split()[0]}", f"kernel {' '.join(platform.uname())}"]
    for name, argv in VERSIONS.items():
        code, out = run(argv)
        first = out.decode(errors="replace").strip().splitlines()
        versions.append(f"{name}: {first[0] if first else '?'}" + ("" if code == 0 else f" (exit {code})"))
    members["versions.txt"] = ("\n".join(versions) + "\n").encode()
    for name, argv in COMMANDS.items():
        code, out = run(argv)
        commands[name] = {"command": " ".join(argv), "exit": code}
        members[name] = out
    revision, config_text, summaries = current_config(paths)
    members["revisions.json"] = json.dumps(summaries, indent=1).encode()
    members["status.json"] = json.dumps(status if status is not None else {"error": "the controller does not answer"},
                                        indent=1, default=str).encode()  # fmt: skip
    for name, path in {"engines/haproxy.cfg": paths.haproxy_config, "engines/ruleset.nft": paths.nftables_ruleset,
                       "engines/keepalived.conf": paths.keepalived_dir / "keepalived.conf"}.items():  # fmt: skip
        if path.is_file():
            members[name] = path.read_bytes()[:MAX_COMMAND_BYTES]
    members.update(recent_logs(paths, hours, now))
    secrets, names = known_secrets(paths, running), secret_field_names(Config)
    members = {name: redact(data, secrets, names) for name, data in members.items()}
    members["config.yaml"] = redact(config_text.encode(), secrets)  # the model put the placeholder in; values once more
    members["manifest.json"] = json.dumps({
        "kind": "pacslb-support-bundle", "pacslb_version": __version__, "created_at": now, "state_dir": str(paths.root),
        "hours": hours, "revision": revision, "commands": commands, "members": sorted(members),
        "redacted": "secret values, fields named " + ", ".join(sorted(names)) + ", PEM private keys, pacslb API keys",
        "host": os.uname().nodename,
    }, indent=1).encode()  # fmt: skip
    return members


def pack_bundle(members: dict[str, bytes]) -> bytes:
    """The members as a gzip'd tar, mode 0600 each."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(f"pacslb-support/{name}")
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
