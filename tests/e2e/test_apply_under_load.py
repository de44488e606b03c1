"""20 structural applies while clients load the VIPs: not one request fails.

The applies add and remove a virtual service, real servers (at runtime) and change rules and health
checks (hitless reloads). Clients send requests back to back, some on keep-alive connections, some
with a new connection per request; the load is bounded in time and count. Nothing here is timed.
"""

from __future__ import annotations

import pytest
from changes_support import LoadGenerator, store

from support.net import free_port
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APPLIES = 20


# What each step changes, in turn: real servers at runtime, services, rules and checks by reloads.
STEPS = ["rs3", "extra", "prefix", "rs3", "a2", "interval", "extra", "a2", "prefix", "interval"]


def states(count: int) -> list[dict]:
    """The structure of each step: step 0, then each later step toggles one thing of the one before."""
    state = {"rs3": False, "extra": False, "prefix": False, "interval": False, "a2": False}
    found = [dict(state)]
    for step in range(count):
        what = STEPS[step % len(STEPS)]
        state[what] = not state[what]
        found.append(dict(state))
    return found


def config(port: int, extra_port: int, web, api, state: dict) -> str:
    rs1, rs2, rs3 = web
    a1, a2 = api
    servers = [rs1, rs2] + ([rs3] if state["rs3"] else [])
    prefix = "/api/" if state["prefix"] else "/api"
    interval = 400 if state["interval"] else 300
    lines = [
        "version: 1",
        "settings: {max_connections: 2000}",
        "virtual_services:",
        "  - name: web",
        "    mode: layer7-http",
        f"    listen: [{{address: 127.0.0.1, port: {port}}}]",
        f"    health_check: {{type: http, path: /, interval: {interval}ms, timeout: 300ms, rise: 1, fall: 2}}",
        f"    rules: [{{name: api, match: {{path_begins: ['{prefix}']}}, use_service: api}}]",
        "    real_servers:",
        *[f"      - {{name: {s.name}, address: {s.host}, port: {s.port}}}" for s in servers],
        "  - name: api",
        "    mode: backend-only",
        "    health_check: {type: http, path: /, interval: 300ms, timeout: 300ms, rise: 1, fall: 2}",
        "    real_servers:",
        *[f"      - {{name: {s.name}, address: {s.host}, port: {s.port}}}" for s in [a1] + ([a2] if state["a2"] else [])],
    ]
    if state["extra"]:
        lines += [
            "  - name: extra",
            "    mode: layer7-http",
            f"    listen: [{{address: 127.0.0.1, port: {extra_port}}}]",
            "    health_check: {type: none}",
            f"    real_servers: [{{name: x1, address: {rs1.host}, port: {rs1.port}}}]",
        ]
    return "\n".join(lines) + "\n"


def test_twenty_structural_applies_under_load(http_server, start_appliance):
    web = [http_server("rs1"), http_server("rs2"), http_server("rs3")]
    api = [http_server("a1"), http_server("a2")]
    port, extra_port = free_port(), free_port()
    steps = states(APPLIES)
    appliance = start_appliance(config(port, extra_port, web, api, steps[0]))
    wait_until(lambda: all(rs["state"] == "UP" for vs in appliance.api_status()["virtual_services"]
                           for rs in vs["real_servers"]), 10, what="every real server UP")  # fmt: skip

    methods = []
    with LoadGenerator("127.0.0.1", port, keepalive=2, close=2, path="/", max_seconds=600) as root, \
         LoadGenerator("127.0.0.1", port, keepalive=1, close=1, path="/api/x", max_seconds=600) as rules:  # fmt: skip
        root.wait_for(200)
        rules.wait_for(100)
        for step in range(1, APPLIES + 1):
            path = appliance.config.with_name(f"step{step}.yaml")
            path.write_text(config(port, extra_port, web, api, steps[step]))
            done = appliance.cli("apply", "-c", str(path), "-m", f"step {step}")
            assert done.returncode == 0, f"step {step}: {done.stdout}{done.stderr}"
            methods.append(store(appliance).current().plan["method"])
        # let the clients run on the last configuration a little
        target = root.total + 200
        root.wait_for(target)

    for name, load in (("/", root), ("/api/x", rules)):
        for kind, stats in load.stats.items():
            print(f"{name} {kind}: {stats.ok} ok, {stats.failed} failed {stats.errors}, answered by {stats.answered_by}")
            assert stats.failed == 0, f"{name} {kind}: {stats.errors}"
            assert stats.ok >= 50, f"{name} {kind}: the load did not run ({stats.ok} requests)"
    print("plans:", methods)
    assert methods == ["runtime" if STEPS[i % len(STEPS)] in ("rs3", "a2") else "reload" for i in range(APPLIES)]
    assert len(store(appliance).list(limit=100)) == APPLIES + 1
    assert store(appliance).check_integrity() == []
