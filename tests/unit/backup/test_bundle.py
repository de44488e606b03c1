"""The support bundle's redaction (backup/bundle.py, pure) and its limits."""

from __future__ import annotations

import os
import time

import pytest

from pacslb import pki
from pacslb.backup.bundle import check_hours, redact

KEY = pki.self_signed("x").key_pem


def test_every_kind_of_secret_is_redacted():
    text = (b"GET /?p=s3cret-value HTTP/1.1\npassword: 'Quoted Secret'\n\"password\": \"json secret\"\n"
            b"Authorization: Bearer pacslb_0123456789ab_AbCdEfGhIjKlMnOpQrStUv\n" + KEY)  # fmt: skip
    found = redact(text, ["s3cret-value"], {"password"})
    for secret in (b"s3cret-value", b"Quoted Secret", b"json secret", b"AbCdEfGhIjKlMnOpQrStUv", KEY.split(b"\n")[1]):
        assert secret not in found
    assert found.count(b"********") == 5 and b"GET /?p=******** HTTP/1.1" in found


def test_the_longest_secret_goes_first_and_short_values_are_left():
    assert redact(b"abcdefgh abcd", ["abcd", "abcdefgh"]) == b"******** ********"
    assert redact(b"a ab abc", ["ab"]) == b"a ab abc"  # under MIN_SECRET_LENGTH: would redact half the bundle


@pytest.mark.parametrize("hours", [0, -1, 24 * 30 + 1])
def test_hours_out_of_range(hours):
    with pytest.raises(ValueError, match="hours: .* is out of range: give 1 to 720"):
        check_hours(hours)


def test_collect_bundle_redacts_what_commands_logs_and_engine_files_hold(tmp_path):
    """With real stores and a stand-in for the commands (their output holds the secret too)."""
    from pacslb.backup.bundle import collect_bundle
    from pacslb.model import load_text
    from pacslb.paths import StatePaths
    from pacslb.store import RevisionStore, SecretStore

    secret = "check-secret-value-42"
    text = f"""version: 1
virtual_services:
  - name: RMQ
    mode: layer7-tcp
    listen: [{{address: 127.0.0.1, port: 5672}}]
    health_check: {{type: amqp, username: pacs, password: "{secret}"}}
    real_servers: [{{name: mq1, address: 127.0.0.2, port: 5672}}]
"""
    paths = StatePaths(tmp_path / "state")
    loaded = load_text(text)
    store = RevisionStore(paths.revisions_db)
    rev = store.add(loaded.config.model_dump_json(), "x", author="t", message="m", kind="file", parent=None)
    store.mark_applied(rev.id)
    SecretStore(paths.secrets_db).put(rev.id, {"virtual_services[RMQ].health_check.password": secret})
    paths.haproxy_dir.mkdir()
    paths.haproxy_log.write_text(f"GET /?p={secret} HTTP/1.1\n")
    paths.haproxy_config.write_text(f"# {secret}\n")
    old = paths.root / "old.log"
    old.write_text(f"{secret}\n")
    os.utime(old, (1, 1))  # written long before the window: left out

    def run(argv):
        return 0, f"{' '.join(argv)} said {secret}\n".encode()

    members = collect_bundle(paths, {"virtual_services": []}, hours=1, run=run)
    assert "logs/haproxy/haproxy.log" in members and "logs/old.log" not in members
    assert b"password: '********'" in members["config.yaml"] or b'password: "********"' in members["config.yaml"]
    leaked = [name for name, data in members.items() if secret.encode() in data]
    assert leaked == []
    assert b"said ********" in members["system/nft-ruleset.txt"]


def test_commands_are_bounded_in_output_and_time(monkeypatch):
    from pacslb.backup import bundle

    monkeypatch.setattr(bundle, "MAX_COMMAND_BYTES", 10)
    code, out = bundle.run_command(["echo", "x" * 100])
    assert code == 0 and out == b"x" * 10
    monkeypatch.setattr(bundle, "COMMAND_TIMEOUT", 0.5)
    code, out = bundle.run_command(["sleep", "5"])  # subprocess.run kills it at the timeout
    assert code is None and b"timed out" in out
    code, out = bundle.run_command(["/nonexistent/command"])
    assert code is None and b"could not run" in out


def test_logs_are_bounded_in_size_and_count(tmp_path, monkeypatch):
    from pacslb.backup import bundle
    from pacslb.paths import StatePaths

    paths = StatePaths(tmp_path)
    for i in range(5):
        (tmp_path / f"l{i}.log").write_bytes(b"a" * 100 + b"END")
    monkeypatch.setattr(bundle, "MAX_LOG_BYTES", 10)
    monkeypatch.setattr(bundle, "MAX_LOGS", 3)
    found = bundle.recent_logs(paths, 1, time.time())
    assert len(found) == 3 and all(data == b"a" * 7 + b"END" for data in found.values())  # the end of each
