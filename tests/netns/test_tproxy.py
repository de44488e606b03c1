"""TPROXY (transparent: true) through the real kernel, HAProxy and the appliance, in network namespaces.

    client  c0 10.95.0.2/24, fd00:95::2/64  ---- veth ----  lb  l0 10.95.0.1/24, fd00:95::1/64 (the VIPs)
            (default via lb)                                   lb  l1 10.95.1.1/24, fd00:95:1::1/64  ---- veth ----
                                                                   rs  r0 10.95.1.11/24, fd00:95:1::11/64 (default via lb)

The appliance runs in `lb` with a `layer7-tcp` and a `layer7-http` service on IPv4 and a `layer7-tcp` one on
IPv6, all transparent, in front of
tests/support/peer_server.py on rs (it answers with the peer address it sees). The real server sees the
client's own address through both; the policy rule, the local route and the nftables table are there, are
adopted by a controller started again after a SIGKILL, are gone after a change that leaves no service
transparent (the real server then sees the appliance's address), are taken away again when a change that
installed them fails on a later engine, and `pacslb stop` removes them when the controller that installed
them died.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from support.netns import Lab
from support.processes import haproxy_masters, kill_pids, processes_of
from support.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.e2e]

PACSLB = str(Path(sys.executable).with_name("pacslb"))
PEER_SERVER = str(Path(__file__).resolve().parents[1] / "support" / "peer_server.py")
VIP, CLIENT, LB_SERVER_SIDE, RS = "10.95.0.1", "10.95.0.2", "10.95.1.1", "10.95.1.11"
VIP6, CLIENT6, LB_SERVER_SIDE6, RS6 = "fd00:95::1", "fd00:95::2", "fd00:95:1::1", "fd00:95:1::11"
DICOM_PORT, HTTP_PORT, DICOM6_PORT = 11112, 8080, 11113
MARK, TABLE = 0x504C, 20556  # the defaults (settings.transparent)


def config(transparent: bool, layer4_weight: int = 100) -> dict:
    def service(name: str, mode: str, port: int, vip: str = VIP, rs: str = RS) -> dict:
        return {
            "name": name,
            "mode": mode,
            "listen": [{"address": vip, "port": port}],
            "transparent": transparent,
            "health_check": {"type": "connect", "interval": "500ms", "timeout": "500ms", "rise": 1, "fall": 2},
            "real_servers": [{"name": "rs1", "address": rs, "port": port}],
        }

    return {
        "version": 1,
        "settings": {"management": {"enabled": False}, "max_connections": 2000},
        "virtual_services": [
            service("dicom", "layer7-tcp", DICOM_PORT),
            service("web", "layer7-http", HTTP_PORT),
            service("dicom6", "layer7-tcp", DICOM6_PORT, VIP6, RS6),
            # Layer 4 too, only so that a change can fail after TPROXY committed (nftables commits later)
            {
                "name": "l4",
                "mode": "layer4-nat",
                "listen": [{"address": VIP, "port": 7000}],
                "health_check": {"type": "none"},
                "real_servers": [{"name": "rs1", "address": RS, "weight": layer4_weight}],
            },
        ],
    }


PEER_OVER_TCP = (
    "import socket, sys\n"
    "with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:\n"
    "    print(s.makefile().readline().strip())\n"
)


def peer_seen(lab: Lab, client: str, mode: str) -> str:
    """What the real server answered the client through the VIP: 'NAME PEER', or '' when nothing answered."""
    if mode in ("tcp", "tcp6"):
        vip, port = (VIP, DICOM_PORT) if mode == "tcp" else (VIP6, DICOM6_PORT)
        done = lab.run(client, [sys.executable, "-c", PEER_OVER_TCP, vip, str(port)], check=False, timeout=20)
    else:
        done = lab.run(client, ["curl", "-s", "-m", "5", f"http://{VIP}:{HTTP_PORT}/"], check=False, timeout=20)
    return done.stdout.strip() if done.returncode == 0 else ""


def kernel_state(lab: Lab, lb: str) -> dict:
    rules, routes = [], []
    for family in (4, 6):
        rules += [(family, r.get("fwmark"), r["table"]) for r in json.loads(lab.sh(lb, f"ip -j -{family} rule show"))
                  if r.get("table") == str(TABLE)]  # fmt: skip
        shown = lab.run(lb, ["ip", "-j", f"-{family}", "route", "show", "table", str(TABLE)], check=False)
        if shown.returncode == 0:  # a table that does not exist makes `ip` fail
            routes += [(family, r["type"], r["dst"], r["dev"]) for r in json.loads(shown.stdout or "[]")]
    table = lab.run(lb, ["nft", "list", "table", "inet", "pacslb_tproxy"], check=False)
    return {
        "rules": rules,
        "routes": routes,
        "nft": bool(re.search(rf"socket transparent 1 meta mark set 0x0*{MARK:x} ", table.stdout))
        if table.returncode == 0
        else None,
    }


INSTALLED = {
    "rules": [(4, f"{MARK:#x}", str(TABLE)), (6, f"{MARK:#x}", str(TABLE))],
    "routes": [(4, "local", "default", "lo"), (6, "local", "default", "lo")],
    "nft": True,
}
NOTHING = {"rules": [], "routes": [], "nft": None}


def test_real_servers_see_the_client_through_transparent_layer7_services() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    work = Path(tempfile.mkdtemp(prefix="ptpx-"))
    state = work / "s"
    lab = Lab()
    try:
        client, lb, rs = lab.ns("client"), lab.ns("lb"), lab.ns("rs")
        lab.veth(client, "c0", lb, "l0")
        lab.veth(lb, "l1", rs, "r0")
        lab.sh(client, f"ip addr add {CLIENT}/24 dev c0")
        lab.sh(client, f"ip route add default via {VIP}")
        lab.sh(lb, f"ip addr add {VIP}/24 dev l0")
        lab.sh(lb, f"ip addr add {LB_SERVER_SIDE}/24 dev l1")
        lab.sh(rs, f"ip addr add {RS}/24 dev r0")
        lab.sh(rs, f"ip route add default via {LB_SERVER_SIDE}")  # what the validation warning asks of real servers
        lab.sh(client, f"ip -6 addr add {CLIENT6}/64 dev c0 nodad")
        lab.sh(client, f"ip -6 route add default via {VIP6}")
        lab.sh(lb, f"ip -6 addr add {VIP6}/64 dev l0 nodad")
        lab.sh(lb, f"ip -6 addr add {LB_SERVER_SIDE6}/64 dev l1 nodad")
        lab.sh(rs, f"ip -6 addr add {RS6}/64 dev r0 nodad")
        lab.sh(rs, f"ip -6 route add default via {LB_SERVER_SIDE6}")
        for kind, address, port in (("tcp", "0.0.0.0", DICOM_PORT), ("http", "0.0.0.0", HTTP_PORT), ("tcp", "::", DICOM6_PORT)):
            server = lab.popen(rs, [sys.executable, PEER_SERVER, "rs1", address, str(port), kind],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        assert kernel_state(lab, lb) == NOTHING

        (work / "pacslb.yaml").write_text(yaml.safe_dump(config(transparent=True)))
        log_file = work / "up.log"

        def up() -> subprocess.Popen:
            with open(log_file, "ab") as log:
                return lab.popen(lb, [PACSLB, "up", "-c", str(work / "pacslb.yaml"), "--state-dir", str(state)],
                                 stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

        def expect(mode: str, seen: str) -> None:
            # HAProxy may be between two workers (a reload, a restarted controller's first checks): wait, bounded
            wait_until(lambda: peer_seen(lab, client, mode) == f"rs1 {seen}", 30, what=f"the real server to see {seen} ({mode})")

        def ready(controller: subprocess.Popen, count: int) -> bool:
            assert controller.poll() is None, log_file.read_text()
            return log_file.read_text().count("controller ready") >= count

        controller = up()
        wait_until(lambda: ready(controller, 1), 60, what="the appliance")
        assert kernel_state(lab, lb) == INSTALLED
        for mode, name, seen in (("tcp", "dicom", CLIENT), ("http", "web", CLIENT), ("tcp6", "dicom6", CLIENT6)):
            wait_until(lambda mode=mode, seen=seen: peer_seen(lab, client, mode) == f"rs1 {seen}", 30,
                       what=f"the real server to see the client's own address through {name}")  # fmt: skip

        # a controller killed outright leaves everything serving; the next one adopts it, adding nothing twice
        controller.send_signal(signal.SIGKILL)  # `ip netns exec` execs pacslb: this PID is the controller
        controller.wait(timeout=30)
        expect("tcp", CLIENT)
        controller = up()
        wait_until(lambda: ready(controller, 2), 60, what="the appliance started again")
        assert "TPROXY: adopting" in log_file.read_text()
        assert kernel_state(lab, lb) == INSTALLED  # one rule, one route: nothing added twice
        expect("http", CLIENT)

        # the last transparent service goes: the rule, the route and the table go with it
        (work / "pacslb.yaml").write_text(yaml.safe_dump(config(transparent=False)))
        controller.send_signal(signal.SIGHUP)
        wait_until(lambda: kernel_state(lab, lb) == NOTHING, 30, what="the TPROXY rule, route and table to be removed")
        wait_until(lambda: peer_seen(lab, client, "tcp") == f"rs1 {LB_SERVER_SIDE}", 30,
                   what="the real server to see the appliance's address")  # fmt: skip
        expect("http", LB_SERVER_SIDE)
        expect("tcp6", LB_SERVER_SIDE6)
        assert not (state / "tproxy" / "installed.json").exists() or json.loads(
            (state / "tproxy" / "installed.json").read_text())["added"] == []  # fmt: skip

        # a change that turns TPROXY on fails after it committed (nftables cannot update a table someone deleted):
        # the transaction takes TPROXY's rule, route and table away again
        lab.sh(lb, "nft delete table inet pacslb")
        (work / "failing.yaml").write_text(yaml.safe_dump(config(transparent=True, layer4_weight=50)))
        done = lab.run(lb, [PACSLB, "apply", "-c", str(work / "failing.yaml"), "--state-dir", str(state)], check=False,
                       timeout=90)  # fmt: skip
        assert done.returncode != 0 and "previous configuration keeps serving" in done.stderr, done.stderr
        wait_until(lambda: "tproxy set back to the previous configuration" in log_file.read_text(), 10, what="the undo logged")
        assert kernel_state(lab, lb) == NOTHING
        expect("tcp", LB_SERVER_SIDE)

        # transparent again, then the controller dies: `pacslb stop` without it removes what it had installed
        (work / "pacslb.yaml").write_text(yaml.safe_dump(config(transparent=True)))
        controller.send_signal(signal.SIGHUP)
        wait_until(lambda: kernel_state(lab, lb) == INSTALLED, 30, what="the TPROXY rule, route and table again")
        controller.send_signal(signal.SIGKILL)
        controller.wait(timeout=30)
        done = lab.run(lb, [PACSLB, "stop", "--state-dir", str(state)], check=False, timeout=90)
        assert done.returncode == 0, done.stderr
        assert "removed the TPROXY rule, route and nftables table" in done.stderr
        assert kernel_state(lab, lb) == NOTHING
        assert not (state / "tproxy" / "installed.json").exists()
    finally:
        lab.close()  # the controller and the real servers by PID, then the namespaces
        kill_pids([*processes_of(state), *haproxy_masters(state)])
        shutil.rmtree(work, ignore_errors=True)
