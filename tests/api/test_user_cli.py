"""`pacslb user add|passwd|del|list|role|apikey` on a state directory, with no appliance running."""

from __future__ import annotations

import subprocess
import sys

from pacslb.api import state
from pacslb.store.audit import AuditLog
from pacslb.store.users import UserStore


def pacslb(state_dir, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pacslb", "user", *args, "--state-dir", str(state_dir)],
                          capture_output=True, text=True, timeout=60, input=stdin)  # fmt: skip


def test_user_commands_work_on_the_state_directory(tmp_path):
    added = pacslb(tmp_path, "add", "alice", "--role", "operator", "--password", "alice-password")
    assert added.returncode == 0, added.stderr
    users = UserStore(state.users_db(tmp_path))
    assert users.verify("alice", "alice-password").role == "operator"
    from_stdin = pacslb(tmp_path, "add", "bob", stdin="bob-password-1\n")
    assert from_stdin.returncode == 0 and users.verify("bob", "bob-password-1").role == "viewer"

    generated = pacslb(tmp_path, "passwd", "alice", "--generate")
    assert generated.returncode == 0
    new_password = generated.stdout.strip().rsplit(" ", 1)[-1]
    assert users.verify("alice", new_password) is not None and users.verify("alice", "alice-password") is None

    short = pacslb(tmp_path, "passwd", "alice", "--password", "short")
    assert short.returncode == 2 and "too short" in short.stderr
    unknown = pacslb(tmp_path, "del", "nobody")
    assert unknown.returncode == 2 and "no user nobody" in unknown.stderr

    key = pacslb(tmp_path, "apikey", "alice", "--name", "monitoring")
    token = key.stdout.strip()
    assert key.returncode == 0 and token.startswith("pacslb_") and "cannot be shown again" in key.stderr
    assert users.verify_api_key(token)[0].username == "alice"

    assert pacslb(tmp_path, "role", "alice", "admin").returncode == 0
    listed = pacslb(tmp_path, "list")
    assert "alice\tadmin" in listed.stdout and "bob\tviewer" in listed.stdout and "monitoring" in listed.stdout
    key_id = token.split("_")[1]
    assert pacslb(tmp_path, "apikey", "alice", "--delete", key_id).returncode == 0
    assert users.verify_api_key(token) is None

    assert pacslb(tmp_path, "del", "bob").returncode == 0
    last = pacslb(tmp_path, "del", "alice")
    assert last.returncode == 2 and "last admin" in last.stderr
    events = AuditLog(state.audit_db(tmp_path)).list()
    actions = [(e.action, e.outcome) for e in events]
    assert ("user.create", "ok") in actions and ("user.delete", "refused") in actions and ("api-key.delete", "ok") in actions
    assert all(e.via == "cli" and e.username.endswith("(cli)") for e in events)
