"""Changes through revisions on the real appliance: `pacslb apply`, `revisions`, `diff`, `rollback`.

apply plans runtime operations (real servers added and removed without a reload) or a hitless reload,
and says which; a rollback restores the exact earlier model and traffic follows it; bad applies of
many kinds change nothing that runs; a controller killed with SIGKILL in the middle of an apply leaves
a consistent store and a serving HAProxy, and the next `pacslb up` settles the two.
"""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
from changes_support import answers, reloads, running_with, server_line, store, workers

from pacslb import pki
from support.appliance import PACSLB
from support.configs import http_service_config
from support.net import free_port
from support.wait import wait_until

pytestmark = pytest.mark.e2e

INTERVAL_MS = 300


@pytest.fixture
def servers(http_server):
    return [http_server("rs1"), http_server("rs2"), http_server("rs3")]


def config_text(port, servers, *, persistence: str = "", interval_ms: int = INTERVAL_MS, weights=None, extra: str = ""):
    text = http_service_config(port, servers, interval_ms=interval_ms, fall=2, weights=weights)
    if persistence:
        text = text.replace("    mode: layer7-http\n", f"    mode: layer7-http\n    persistence: {persistence}\n", 1)
    return text + extra


@pytest.fixture
def appliance(servers, start_appliance):
    port = free_port()
    appliance = start_appliance(config_text(port, servers[:2]))
    appliance.vip_port = port
    wait_until(lambda: up_servers(appliance) == {"rs1", "rs2"}, 10, what="rs1 and rs2 UP")
    return appliance


def up_servers(appliance, service: str = "web") -> set[str]:
    vs = next(v for v in appliance.api_status()["virtual_services"] if v["name"] == service)
    return {rs["name"] for rs in vs["real_servers"] if rs["state"] == "UP"}


def apply(appliance, text: str, *args: str, name: str = "next.yaml") -> subprocess.CompletedProcess:
    path = appliance.config.with_name(name)
    path.write_text(text)
    return appliance.cli("apply", "-c", str(path), *args)


def traffic(appliance, count: int = 9) -> set[str]:
    return set(answers("127.0.0.1", appliance.vip_port, count))


def test_dry_run_prints_the_plan_and_changes_nothing(appliance, servers):
    before = (workers(appliance), len(store(appliance).list()), appliance.paths.haproxy_config.read_text())
    done = apply(appliance, config_text(appliance.vip_port, servers), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "changes:",
        "  virtual_services[web].real_servers[rs3]: added",
        "HAProxy: runtime operations, no reload:",
        f"  add web/rs3 at {servers[2].host}:{servers[2].port}, online",
        "dry run: HAProxy accepts the new file; nothing was changed",
    ]
    assert (workers(appliance), len(store(appliance).list()), appliance.paths.haproxy_config.read_text()) == before


def test_real_servers_added_and_removed_without_reload(appliance, servers):
    before = workers(appliance)
    done = apply(appliance, config_text(appliance.vip_port, servers), "-m", "more capacity")
    assert done.returncode == 0, done.stderr
    assert "runtime operations, no reload" in done.stdout and "(unchanged)" in done.stdout
    wait_until(lambda: up_servers(appliance) == {"rs1", "rs2", "rs3"}, 10, what="rs3 UP")
    wait_until(lambda: traffic(appliance) == {"rs1", "rs2", "rs3"}, 10, what="traffic to rs3")
    assert server_line(appliance, "rs3").startswith(f"server rs3 {servers[2].host}:{servers[2].port} check")

    done = apply(appliance, config_text(appliance.vip_port, [servers[0], servers[2]]))
    assert done.returncode == 0, done.stderr
    assert "remove web/rs2" in done.stdout
    assert traffic(appliance) == {"rs1", "rs3"}
    assert "rs2" not in {rs["name"] for rs in appliance.api_status()["virtual_services"][0]["real_servers"]}
    assert "server rs2 " not in appliance.paths.haproxy_config.read_text()
    assert workers(appliance) == before and reloads(appliance) == 0
    current = store(appliance).current()
    assert current.kind == "apply" and current.plan["method"] == "runtime"
    assert [r.message for r in store(appliance).list(limit=2)][1] == "more capacity"


def test_cookie_persistence_adds_a_real_server_with_a_hitless_reload(servers, start_appliance):
    port = free_port()
    appliance = start_appliance(config_text(port, servers[:2], persistence="{type: http-cookie}"))
    appliance.vip_port = port
    wait_until(lambda: up_servers(appliance) == {"rs1", "rs2"}, 10, what="rs1 and rs2 UP")
    before = workers(appliance)
    done = apply(appliance, config_text(port, servers, persistence="{type: http-cookie}"))
    assert done.returncode == 0, done.stderr
    assert "hitless reload" in done.stdout
    assert "HAProxy refuses the cookie keyword (cookie persistence) for servers added at runtime" in done.stdout
    assert workers(appliance) != before and reloads(appliance) == 1
    wait_until(lambda: traffic(appliance) == {"rs1", "rs2", "rs3"}, 10, what="traffic to rs3")


def test_rollback_restores_the_exact_model_and_traffic_follows(appliance, servers):
    first = store(appliance).current()
    assert first.kind == "file"
    # several changes: a weight, a server added, a new health check interval (a reload)
    assert apply(appliance, config_text(appliance.vip_port, servers, weights={"rs1": 10})).returncode == 0
    assert appliance.cli("server", "drain", "web", "rs2").returncode == 0
    slower = running_with(appliance, lambda d: d["virtual_services"][0]["health_check"].update(interval="500ms"))
    assert apply(appliance, slower).returncode == 0
    wait_until(lambda: traffic(appliance) == {"rs1", "rs3"}, 10, what="traffic to rs1 and rs3")

    since = appliance.cli("diff", str(first.id))
    assert since.returncode == 0
    assert "virtual_services[web].real_servers[rs3]: added" in since.stdout
    assert "virtual_services[web].real_servers[rs1].weight: 100 -> 10" in since.stdout
    assert "virtual_services[web].health_check.interval: 300ms -> 500ms" in since.stdout

    dry = appliance.cli("rollback", str(first.id), "--dry-run")
    assert dry.returncode == 0 and "dry run" in dry.stdout
    done = appliance.cli("rollback", str(first.id))
    assert done.returncode == 0, done.stderr
    assert "hitless reload" in done.stdout
    current = store(appliance).current()
    assert current.kind == "rollback" and current.message == f"rollback to revision {first.id}"
    assert current.config_json == first.config_json and current.digest == first.digest  # the exact model
    assert appliance.cli("diff", str(first.id)).stdout.splitlines()[1:] == ["  no change"]
    wait_until(lambda: up_servers(appliance) == {"rs1", "rs2"}, 10, what="rs1 and rs2 UP")
    assert traffic(appliance, 10) == {"rs1", "rs2"}
    names = [rs["name"] for rs in appliance.api_status()["virtual_services"][0]["real_servers"]]
    assert names == ["rs1", "rs2"]
    assert {rs["weight"] for rs in appliance.api_status()["virtual_services"][0]["real_servers"]} == {100}


def _mismatched_pem(path):
    cert = pki.self_signed("pacslb test", ["localhost"])
    other = pki.self_signed("other key", ["localhost"])
    path.write_bytes(cert.cert_pem + other.key_pem)  # a certificate with somebody else's key


def test_bad_applies_change_nothing_that_runs(appliance, servers, tmp_path):
    port = appliance.vip_port
    good = config_text(port, servers[:2])
    busy = socket.socket()  # holds a port, so that a reload onto it fails (haproxy -c does not bind)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    _mismatched_pem(appliance.config.with_name("bad.pem"))
    new_vip = "  - name: extra\n    mode: layer7-http\n    listen: [{address: 127.0.0.1, port: PORT}]\n" \
              f"    real_servers: [{{name: a, address: {servers[2].host}, port: {servers[2].port}}}]\n"  # fmt: skip
    cases = [
        # (what, file text, exit status, words in the output)
        ("broken YAML", "version: 1\nvirtual_services: [\n", 2, "not valid YAML"),
        ("unknown mode", good.replace("mode: layer7-http", "mode: fastest"), 2, "virtual_services[web].mode:"),
        (
            "unknown field",
            good.replace("    mode: layer7-http\n", "    mode: layer7-http\n    colour: blue\n"),
            2,
            "virtual_services[web].colour: unknown field",
        ),
        (
            "duplicate real server",
            good.replace("      - {name: rs2", "      - {name: rs1"),
            2,
            "virtual_services[web].real_servers[rs1]: two real servers are called 'rs1'",
        ),
        (
            "weight out of range",
            good.replace("port: %d}" % servers[0].port, "port: %d, weight: 999}" % servers[0].port),
            2,
            "virtual_services[web].real_servers[rs1].weight:",
        ),
        (
            "missing certificate",
            good.replace("    mode: layer7-http\n", "    mode: layer7-http\n    tls: {certificates: [nope.pem]}\n"),
            2,
            "virtual_services[web].tls.certificates[0]: file",
        ),
        (
            "haproxy -c rejects",
            good.replace("    mode: layer7-http\n", "    mode: layer7-http\n    tls: {certificates: [bad.pem]}\n"),
            1,
            "HAProxy refuses the rendered configuration",
        ),
        ("the reload fails", good + new_vip.replace("PORT", str(busy.getsockname()[1])), 1, "the reload failed"),
    ]
    try:
        before_workers = workers(appliance)
        before_file = appliance.paths.haproxy_config.read_text()
        before_current = store(appliance).current().id
        for what, text, code, words in cases:
            done = apply(appliance, text)
            output = done.stdout + done.stderr
            assert done.returncode == code, f"{what}: {output}"
            assert words in output, f"{what}: {output}"
            assert workers(appliance) == before_workers, what
            assert appliance.paths.haproxy_config.read_text() == before_file, what
            assert store(appliance).current().id == before_current, what
            assert traffic(appliance, 4) == {"rs1", "rs2"}, what
        assert "previous configuration keeps serving" in done.stderr
        failed = [r for r in store(appliance).list(limit=20) if r.status.value == "failed"]
        assert len(failed) == 2  # the two that passed validation: recorded, never applied
        assert all(not r.applied and r.error for r in failed)
        missing = appliance.cli("rollback", "999")
        assert missing.returncode == 1 and "there is no revision 999" in missing.stderr
        listed = appliance.cli("revisions", "--json")
        assert json.loads(listed.stdout)["current"] == before_current
        assert store(appliance).check_integrity() == []
    finally:
        busy.close()


@pytest.mark.parametrize("stage, applied", [("engine-confirmed", True), ("before-engine", False)])
def test_kill9_in_the_middle_of_an_apply(servers, start_appliance, stage, applied):
    port = free_port()
    # the checkpoint injected into the change transaction (change/runner.py) pauses there, so the test can kill
    appliance = start_appliance(config_text(port, servers[:2]), up_args=("--pause-at", f"{stage}:120"))
    appliance.vip_port = port
    wait_until(lambda: up_servers(appliance) == {"rs1", "rs2"}, 10, what="rs1 and rs2 UP")
    first = store(appliance).current()
    path = appliance.config.with_name("structural.yaml")
    path.write_text(config_text(port, servers[:2], interval_ms=450))
    cli = subprocess.Popen(
        [*PACSLB, "apply", "-c", str(path), "--state-dir", str(appliance.state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: f"at stage {stage}" in appliance.read_log(), 60, what=f"the controller to pause at {stage}")
        appliance.kill9()
        cli.wait(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    # fail static: HAProxy serves on; the store is consistent, the revision still pending
    assert traffic(appliance) == {"rs1", "rs2"}
    revs = store(appliance)
    assert revs.check_integrity() == []
    (pending,) = revs.pending()
    assert revs.current().id == first.id

    appliance.up()
    revs = store(appliance)
    assert revs.pending() == []
    settled = revs.get(pending.id)
    assert settled.applied is applied
    expected = pending.id if applied else first.id
    assert revs.current().id == expected
    assert ("inter 450ms" in appliance.paths.haproxy_config.read_text()) is applied
    if not applied:
        assert "interrupted" in settled.error
    assert traffic(appliance) == {"rs1", "rs2"}
