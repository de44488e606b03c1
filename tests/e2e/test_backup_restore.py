"""Backup and restore end to end (docs/operations.md): a running appliance under traffic is backed up (plain and
encrypted), its state directory wiped, the backup restored into a fresh one, and `pacslb up` brings back the same
revisions, users, API keys and services; a wrong passphrase and a tampered backup are refused and change nothing;
a restore into the running appliance makes exactly one revision and puts back its users."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from pacslb import pki
from pacslb.store.users import UserStore
from support.appliance import Appliance
from support.configs import http_check, real_server, service
from support.first_admin import own_admin_password
from support.net import free_port, http_get, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHECK_SECRET = f"Amqp-Check-Secret-{uuid.uuid4().hex[:8]}"
PASSPHRASE = f"backup passphrase {uuid.uuid4().hex[:8]}"


def config_text(vip: str, port: int, tls_port: int, agent_port: int, servers, mq_port: int) -> str:
    lines = ["version: 1",
             f"settings: {{max_connections: 2000, log: {{requests: all}}, health: {{agent_port: {agent_port}}}, "
             "management: {address: 127.0.0.1, port: 0}}",
             "virtual_services:"]  # fmt: skip
    lines += service("web", "layer7-http", vip, port, [real_server(s) for s in servers], health_check=http_check(300))
    lines += service("secure", "layer7-http", vip, tls_port, [real_server(servers[0])], health_check=http_check(300),
                     tls="{certificates: [web.pem]}")  # fmt: skip
    lines += service("RMQ", "layer7-tcp", vip, free_port(vip), [real_server(("mq1", "127.0.0.1", mq_port))],
                     health_check=f'{{type: amqp, username: pacs, password: "{CHECK_SECRET}", interval: 1s, timeout: 900ms}}')  # fmt: skip
    return "\n".join(lines) + "\n"


class Traffic:
    """GETs on the VIP in a loop until stopped: counts answers and failures."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.ok, self.failed = host, port, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, _ = http_get(self.host, self.port, timeout=5)
                if status == 200:
                    self.ok += 1
                else:
                    self.failed.append(status)
            except OSError as exc:
                self.failed.append(repr(exc))

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def up_servers(appliance: Appliance, name: str = "web") -> set[str]:
    vs = next(v for v in appliance.api_status()["virtual_services"] if v["name"] == name)
    return {rs["name"] for rs in vs["real_servers"] if rs["state"] == "UP"}


def revisions(appliance: Appliance) -> list[dict]:
    response = appliance.api("GET", "/revisions", params={"limit": 1000})
    response.raise_for_status()
    return response.json()["revisions"]


def users(appliance: Appliance) -> list[tuple]:
    """Users and API keys as the store holds them (hashes included: a restore must bring back the same ones)."""
    store = UserStore(appliance.paths.users_db)
    return sorted((u.username, u.role, u.changed_at) for u in store.list()) + sorted((k.id, k.username) for k in store.api_keys())


def apply(appliance: Appliance, text: str, message: str) -> None:
    """A change through the controller API, as `pacslb apply` sends it (without a CLI process to start)."""
    answer = appliance.api("POST", "/apply", json={"yaml": text, "base_dir": str(appliance.config.parent), "message": message},
                           timeout=120)  # fmt: skip
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text


def add_user(appliance: Appliance, name: str, role: str, password: str) -> None:
    UserStore(appliance.paths.users_db).add(name, password, role)


def api_key_works(appliance: Appliance, token: str) -> bool:
    url = appliance.paths.management_url.read_text().strip().rstrip("/")
    with httpx.Client(base_url=url, verify=False, timeout=10) as client:
        return client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def secret_file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def appliance(tmp_path_factory):
    """One appliance for the module (its start is the slow part): the backup test wipes and restores it, and leaves
    it running the restored state, which the support-bundle test needs no more than running."""
    servers = [TinyHTTPServer(f"rs{i}", loopback_host(200 + i)).start() for i in (1, 2)]
    vip = loopback_host(240)
    port = free_port(vip)
    work = tmp_path_factory.mktemp("backup")
    (work / "web.pem").write_bytes(pki.self_signed("web.example", ["web.example"]).bundle())
    text = config_text(vip, port, free_port(vip), free_port(), servers, free_port())
    appliance = Appliance.create(text, work, "pacslb-backup-")
    appliance.vip, appliance.vip_port, appliance.text = vip, port, text
    try:
        appliance.up(wait=True)
        yield appliance
    finally:
        appliance.shut_down()
        for server in servers:
            server.stop()


def test_backup_under_traffic_then_restore_into_a_fresh_state_directory(appliance, tmp_path):
    wait_until(lambda: up_servers(appliance) == {"rs1", "rs2"}, 20, what="rs1 and rs2 UP")
    apply(appliance, appliance.text.replace("interval: 300ms", "interval: 400ms", 1), "a second revision")
    add_user(appliance, "alice", "operator", "alice long login words")
    _, token = UserStore(appliance.paths.users_db).add_api_key("alice", "monitoring")
    assert api_key_works(appliance, token)

    plain, sealed = tmp_path / "plain.backup", tmp_path / "sealed.backup"
    passphrase = secret_file(tmp_path, "passphrase", PASSPHRASE)
    with Traffic(appliance.vip, appliance.vip_port) as traffic:
        wait_until(lambda: traffic.ok >= 20, 20, what="traffic through the VIP")
        for args in (("-o", str(plain)), ("-o", str(sealed), "--passphrase-file", str(passphrase))):
            done = appliance.cli("backup", *args)
            assert done.returncode == 0, done.stderr
        at_backup = traffic.ok
        wait_until(lambda: traffic.ok >= at_backup + 20, 20, what="traffic after the backups")
    assert traffic.failed == [], traffic.failed[:5]
    assert plain.stat().st_mode & 0o777 == 0o600 and sealed.stat().st_mode & 0o777 == 0o600
    assert CHECK_SECRET.encode() not in sealed.read_bytes()

    before = {
        "revisions": revisions(appliance),
        "users": users(appliance),
        "services": appliance.api_status()["virtual_services"],
    }
    assert len(before["revisions"]) == 2
    stopped = appliance.stop()
    assert stopped.returncode == 0, stopped.stderr
    shutil.rmtree(appliance.state_dir)

    # a wrong passphrase: tests/unit/backup/test_archive.py and tests/web/test_backup_pages.py (each CLI start costs)
    tampered = tmp_path / "tampered.backup"
    data = bytearray(plain.read_bytes())
    data[len(data) // 2] ^= 0x40
    tampered.write_bytes(bytes(data))
    refused = appliance.cli("restore", str(tampered))
    assert refused.returncode == 2 and ("changed" in refused.stderr or "damaged" in refused.stderr), refused.stderr
    assert not appliance.paths.revisions_db.exists() and not appliance.paths.users_db.exists()

    restored = appliance.cli("restore", str(sealed), "--passphrase-file", str(passphrase))
    assert restored.returncode == 0, restored.stderr
    assert f"pacslb up -c {appliance.config} " in restored.stdout, restored.stdout  # the file it ran from
    appliance.up(wait=True)
    wait_until(lambda: up_servers(appliance) == {"rs1", "rs2"}, 20, what="rs1 and rs2 UP after the restore")
    assert revisions(appliance) == before["revisions"]
    assert users(appliance) == before["users"]
    assert api_key_works(appliance, token)
    names = [(v["name"], [(r["name"], r["address"]) for r in v["real_servers"]]) for v in before["services"]]
    after = appliance.api_status()["virtual_services"]
    assert [(v["name"], [(r["name"], r["address"]) for r in v["real_servers"]]) for v in after] == names
    assert http_get(appliance.vip, appliance.vip_port)[0] == 200

    # into the running appliance: exactly one revision, the backup's configuration and users come back
    apply(appliance, appliance.text.replace("      - {name: rs2", "      # - {name: rs2", 1), "rs2 removed")
    add_user(appliance, "bob", "viewer", "bob long login words")
    count = len(revisions(appliance))
    restored = appliance.cli("restore", str(plain))
    assert restored.returncode == 0, restored.stderr
    now = revisions(appliance)
    assert len(now) == count + 1 and now[0]["status"] == "applied", json.dumps(now[:2])
    assert "restored from plain.backup" in now[0]["message"]
    wait_until(lambda: up_servers(appliance) == {"rs1", "rs2"}, 20, what="rs2 back after restoring into the running appliance")
    assert users(appliance) == before["users"]  # bob, added after the backup, is gone
    assert api_key_works(appliance, token)


def unpacked(data: bytes) -> dict[str, bytes]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name.removeprefix("pacslb-support/"): tar.extractfile(m).read() for m in tar if m.isreg()}


def test_the_support_bundle_holds_no_secret(appliance, tmp_path):
    wait_until(lambda: up_servers(appliance) == {"rs1", "rs2"}, 20, what="rs1 and rs2 UP")
    carol_login = "carol long login words 7"
    add_user(appliance, "carol", "operator", carol_login)
    _, token = UserStore(appliance.paths.users_db).add_api_key("carol", "support")
    admin_password = appliance.paths.initial_admin_password.read_text().strip()
    key_pem = (appliance.config.parent / "web.pem").read_bytes().split(b"-----BEGIN PRIVATE KEY-----")[1]
    key_lines = [line for line in key_pem.split(b"\n") if len(line) > 20 and b"-----" not in line]
    secrets = [CHECK_SECRET.encode(), carol_login.encode(), admin_password.encode(), token.encode(), *key_lines]
    # a client that puts secrets in a URL: HAProxy's log holds them, the bundle must not
    leak = f"/?check={CHECK_SECRET}&key={token}&login={carol_login.replace(' ', '+')}"
    assert http_get(appliance.vip, appliance.vip_port, leak)[0] == 200
    wait_until(lambda: CHECK_SECRET in appliance.haproxy_log(), 20, what="the request with secrets in HAProxy's log")

    written = tmp_path / "support.tar.gz"
    done = appliance.cli("support-bundle", "-o", str(written), "--hours", "2")
    assert done.returncode == 0, done.stderr
    assert written.stat().st_mode & 0o777 == 0o600
    url = appliance.paths.management_url.read_text().strip().rstrip("/")
    with httpx.Client(base_url=url, verify=False, timeout=60) as client:
        assert client.post("/api/v1/support-bundle", headers={"Authorization": f"Bearer {token}"}).status_code == 403
        own = own_admin_password(url, appliance.paths.root)  # the one-time password is changed before anything else
        secrets.append(own.encode())
        answer = client.post("/api/v1/login", json={"username": "admin", "password": own})
        assert answer.status_code == 200, answer.text
        fetched = client.post("/api/v1/support-bundle", headers={"X-CSRF-Token": answer.json()["csrf_token"]})
        assert fetched.status_code == 200, fetched.text

    for bundle in (written.read_bytes(), fetched.content):
        members = unpacked(bundle)
        everything = bundle + b"".join(members.values())
        leaked = [s[:12] for s in secrets if s in everything]
        assert leaked == [], f"secrets in the bundle: {leaked}"
        assert {"versions.txt", "haproxy-vv.txt", "config.yaml", "status.json", "revisions.json", "engines/haproxy.cfg",
                "logs/haproxy/haproxy.log", "logs/controller.log", "system/nft-ruleset.txt", "system/addresses.txt",
                "system/routes.txt"} <= set(members), sorted(members)  # fmt: skip
        assert b"HAProxy version 2." in members["versions.txt"] and b"keepalived" in members["versions.txt"]
        assert b"Build options" in members["haproxy-vv.txt"]
        assert b"password: '********'" in members["config.yaml"] or b'password: "********"' in members["config.yaml"]
        assert b"check=********" in members["logs/haproxy/haproxy.log"]  # the request is there, its secret is not
        assert b'"web"' in members["status.json"] and b"inet 127.0.0.1" in members["system/addresses.txt"]
