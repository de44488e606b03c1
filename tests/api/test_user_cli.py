"""`pacslb user add|passwd|del|list|role|apikey|unblock` on a state directory, with no appliance running."""

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
    secret = tmp_path / "alice.password"
    secret.write_text("alice-password\n")
    added = pacslb(tmp_path, "add", "alice", "--role", "operator", "--password-file", str(secret))
    assert added.returncode == 0, added.stderr
    users = UserStore(state.users_db(tmp_path))
    assert users.verify("alice", "alice-password").role == "operator"
    from_stdin = pacslb(tmp_path, "add", "bob", stdin="bob-password-1\n")
    assert from_stdin.returncode == 0 and users.verify("bob", "bob-password-1").role == "viewer"

    generated = pacslb(tmp_path, "passwd", "alice", "--generate")
    assert generated.returncode == 0
    new_password = generated.stdout.strip().rsplit(" ", 1)[-1]
    assert users.verify("alice", new_password) is not None and users.verify("alice", "alice-password") is None
    assert users.get("alice").must_change_password, "a generated password is a one-time password"
    assert "alice\toperator\t" in (listed := pacslb(tmp_path, "list").stdout) and "one-time password" in listed
    assert not users.get("bob").must_change_password, "a password given on the appliance is not"

    short = pacslb(tmp_path, "passwd", "alice", "--password-file", "-", stdin="short\n")
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


def test_a_password_never_goes_on_the_command_line(tmp_path):
    """Changed on purpose (issue 22, item 8): `--password P` showed the password to every local user (ps, /proc);
    it is refused with what to use instead, and nothing changes."""
    refused = pacslb(tmp_path, "add", "carol", "--password", "carol-password-1")
    assert refused.returncode == 2 and "--password-file" in refused.stderr and "carol-password-1" not in refused.stderr
    users = UserStore(state.users_db(tmp_path))
    assert users.get("carol") is None
    common = pacslb(tmp_path, "add", "carol", "--password-file", "-", stdin="Password2024!\n")
    assert common.returncode == 2 and "too common" in common.stderr
    missing = pacslb(tmp_path, "add", "carol", "--password-file", str(tmp_path / "nothing-here"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert pacslb(tmp_path, "add", "carol", "--password-file", "-", stdin="violet tram ladder\n").returncode == 0
    assert users.verify("carol", "violet tram ladder") is not None


def test_keys_expire_and_die_with_the_password_and_unblock_is_recorded(tmp_path):
    users = UserStore(state.users_db(tmp_path))
    users.add("dave", "dave-password-1", "operator")
    key = pacslb(tmp_path, "apikey", "dave", "--name", "ci", "--days", "7")
    assert key.returncode == 0 and "expires" in key.stderr
    (found,) = users.api_keys("dave")
    assert 6.9 * 86400 < found.expires_at - found.created_at <= 7 * 86400
    assert "expires" in pacslb(tmp_path, "list").stdout
    changed = pacslb(tmp_path, "passwd", "dave", "--password-file", "-", stdin="dave-password-2\n")
    assert changed.returncode == 0 and "deleted dave's 1 API key" in changed.stderr
    assert users.api_keys("dave") == [] and users.verify_api_key(key.stdout.strip()) is None
    unblocked = pacslb(tmp_path, "unblock", "dave")
    assert unblocked.returncode == 0 and users.unblocked_at("dave") is not None
    assert any(e.action == "user.unblock" and e.target == "dave" for e in AuditLog(state.audit_db(tmp_path)).list())
