"""A single node's VIP addresses (settings.network.interface, engines/addresses/), in network namespaces.

    client  c0 10.98.0.2/24, fd00:98::2/64  ---- veth ----  lb  vip0 10.98.0.1/24, fd00:98::1/64 (+ VIPs it adds)

The appliance runs in `lb` with its listeners on 10.98.0.10, 10.98.0.11 and fd00:98::10 and the interface
vip0, a fresh veth: after `pacslb up` the client reaches the three VIPs (and had heard the gratuitous ARP of
each IPv4 one before its first request); a change that drops 10.98.0.11 removes that address; after `pacslb
stop` none answers and all are gone. 10.98.0.20, added by hand before the appliance started and listened on
too, stays throughout.
"""

from __future__ import annotations

import json
import os
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
LB, CLIENT = "10.98.0.1", "10.98.0.2"
VIP, VIP2, BY_HAND = "10.98.0.10", "10.98.0.11", "10.98.0.20"
LB6, CLIENT6, VIP6 = "fd00:98::1", "fd00:98::2", "fd00:98::10"  # IPv6: added without DAD, announced by an unsolicited NA
BACKEND_PORT = 8080


def config(vips: list[str]) -> dict:
    return {
        "version": 1,
        "settings": {"network": {"interface": "vip0"}, "management": {"enabled": False}, "max_connections": 2000},
        "virtual_services": [
            {
                "name": "web",
                "mode": "layer7-http",
                "listen": [{"address": vip, "port": 80} for vip in vips],
                "health_check": {"type": "http", "interval": "300ms", "timeout": "300ms", "rise": 1, "fall": 2},
                "real_servers": [{"name": "rs1", "address": "127.0.0.1", "port": BACKEND_PORT}],
            }
        ],
    }


def addresses(lab: Lab, ns: str) -> set[str]:
    shown = json.loads(lab.sh(ns, "ip -j addr show dev vip0"))
    return {f"{a['local']}/{a['prefixlen']}" for link in shown for a in link["addr_info"]}


def fetch(lab: Lab, client: str, address: str) -> str:
    """The body the client gets from http://ADDRESS/, or '' when nothing answers (2 s)."""
    done = lab.run(client, ["curl", "-g", "-s", "-m", "2", f"http://{address}/"], check=False, timeout=15)
    return done.stdout if done.returncode == 0 else ""


def test_vips_come_up_with_the_appliance_and_go_with_it() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    work = Path(tempfile.mkdtemp(prefix="pvip-"))
    state = work / "s"
    (work / "www").mkdir()
    (work / "www" / "index.html").write_text("behind the VIP\n")
    lab = Lab()
    try:
        lb, client = lab.ns("lb"), lab.ns("client")
        lab.veth(lb, "vip0", client, "c0")
        lab.sh(lb, f"ip addr add {LB}/24 dev vip0")
        lab.sh(client, f"ip addr add {CLIENT}/24 dev c0")
        lab.sh(lb, f"ip addr add {LB6}/64 dev vip0 nodad")
        lab.sh(client, f"ip addr add {CLIENT6}/64 dev c0 nodad")
        lab.sh(lb, f"ip addr add {BY_HAND}/32 dev vip0")  # someone else's: pacslb must leave it
        lab.sh(client, "sysctl -qw net.ipv4.conf.c0.arp_accept=1")  # a gratuitous ARP then makes a neighbour entry
        lab.popen(lb, [sys.executable, "-m", "http.server", str(BACKEND_PORT), "--bind", "127.0.0.1",
                       "--directory", str(work / "www")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        (work / "pacslb.yaml").write_text(yaml.safe_dump(config([VIP, VIP2, BY_HAND, VIP6])))
        with open(work / "up.log", "wb") as log:
            controller = lab.popen(lb, [PACSLB, "up", "-c", str(work / "pacslb.yaml"), "--state-dir", str(state)],
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

        def ready() -> bool:
            assert controller.poll() is None, (work / "up.log").read_text()
            return "controller ready" in (work / "up.log").read_text()

        wait_until(ready, 60, what="the appliance")
        assert {f"{VIP}/32", f"{VIP2}/32", f"{BY_HAND}/32", f"{VIP6}/128"} <= addresses(lab, lb)
        # the announcement: the client learnt lb's MAC for each VIP before it sent anything there
        mac = lab.mac(lb, "vip0")
        for vip in (VIP, VIP2):
            assert mac in lab.sh(client, f"ip neigh show {vip} dev c0"), f"no gratuitous ARP for {vip}"
        for vip in (VIP, VIP2, BY_HAND, f"[{VIP6}]"):
            wait_until(lambda vip=vip: fetch(lab, client, vip) == "behind the VIP\n", 30, what=f"the client to reach {vip}")
        record = json.loads((state / "addresses" / "added.json").read_text())
        assert sorted(record["added"]) == [f"{VIP}/32", f"{VIP2}/32", f"{VIP6}/128"], record

        # a change drops VIP2: its address goes, the others stay
        (work / "pacslb.yaml").write_text(yaml.safe_dump(config([VIP, BY_HAND, VIP6])))
        controller.send_signal(signal.SIGHUP)  # `ip netns exec` execs pacslb: this PID is the controller
        wait_until(lambda: f"{VIP2}/32" not in addresses(lab, lb), 30, what=f"{VIP2} to be removed")
        assert {f"{VIP}/32", f"{BY_HAND}/32"} <= addresses(lab, lb)
        assert fetch(lab, client, VIP2) == ""

        # stop: the appliance's addresses go, the one added by hand stays
        done = lab.run(lb, [PACSLB, "stop", "--state-dir", str(state)], check=False, timeout=90)
        assert done.returncode == 0, done.stderr
        controller.wait(timeout=30)
        left = addresses(lab, lb)
        assert f"{VIP}/32" not in left and f"{VIP6}/128" not in left and f"{BY_HAND}/32" in left, left
        assert fetch(lab, client, VIP) == "" and fetch(lab, client, f"[{VIP6}]") == ""
        assert not (state / "addresses" / "added.json").exists()
    finally:
        lab.close()  # the controller and the web server by PID, then the namespaces (and vip0 with them)
        kill_pids([*processes_of(state), *haproxy_masters(state)])
        shutil.rmtree(work, ignore_errors=True)
