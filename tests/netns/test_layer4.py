"""Layer 4 NAT, SNAT and DR through the real kernel, in network namespaces (see conftest.py for the drawing)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pacslb.engines.nftables.render import Layer4Env, render
from pacslb.model import validate_data
from support.netns import CLIENT, LB_SERVER_SIDE, PORT, RS, VIP, Bed
from support.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.root]

PACSLB = str(Path(sys.executable).with_name("pacslb"))


def config_data(mode: str, weights=(100, 100), protocol: str = "tcp", **fields) -> dict:
    return {
        "version": 1,
        "virtual_services": [
            {
                "name": "svc",
                "mode": mode,
                "protocol": protocol,
                "listen": [{"address": VIP, "port": PORT}],
                "real_servers": [
                    {"name": name, "address": address, "weight": weight}
                    for (name, address), weight in zip(RS.items(), weights, strict=False)
                ],
                **fields,
            }
        ],
    }


def apply(bed: Bed, data: dict, env: Layer4Env = Layer4Env()) -> None:
    loaded = validate_data(data)
    assert loaded.ok, [str(p) for p in loaded.problems]
    bed.lab.sh(bed.lb, "sysctl -qw net.ipv4.ip_forward=1")
    bed.nft(render(loaded.config, env))


def tally(answers: list[str]) -> tuple[Counter, set[str]]:
    assert not [a for a in answers if a.startswith("ERROR")], answers
    names = Counter(a.split()[0] for a in answers)
    peers = {a.split()[1] for a in answers}
    return names, peers


def test_nat_weighted_round_robin_keeps_the_client_address(bed: Bed) -> None:
    apply(bed, config_data("layer4-nat", weights=(150, 50)))
    names, peers = tally(bed.client_run("tcp", 40))
    assert names == {"rs1": 30, "rs2": 10}  # 3:1, numgen inc is exact
    assert peers == {CLIENT}


def test_snat_real_servers_see_the_load_balancer(bed: Bed) -> None:
    apply(bed, config_data("layer4-snat"))
    names, peers = tally(bed.client_run("tcp", 20))
    assert names == {"rs1": 10, "rs2": 10}
    assert peers == {LB_SERVER_SIDE}


def test_udp_in_nat(bed: Bed) -> None:
    apply(bed, config_data("layer4-nat", protocol="udp"))
    names, peers = tally(bed.client_run("udp", 20))
    assert names == {"rs1": 10, "rs2": 10}
    assert peers == {CLIENT}


def test_source_ip_persistence_sticks(bed: Bed) -> None:
    apply(bed, config_data("layer4-nat", persistence={"type": "source-ip", "timeout": "5m"}))
    names, _ = tally(bed.client_run("tcp", 10))
    assert len(names) == 1 and sum(names.values()) == 10


def dr_env(bed: Bed) -> Layer4Env:
    return Layer4Env(
        vip_devices={VIP: "l0"},
        routes={address: "l0" for address in RS.values()},
        link_macs={"l0": bed.mac(bed.lb, "l0")},
        neighbours={address: bed.mac(bed.rs[name], "r0") for name, address in RS.items()},
    )


def test_dr_carries_tcp_and_replies_come_straight_from_the_real_servers(bed: Bed) -> None:
    bed.direct_routing()
    # count, in the client's namespace, replies from the VIP by the source MAC that carried them
    rs_macs = {name: bed.mac(ns, "r0") for name, ns in bed.rs.items()}
    lb_mac = bed.mac(bed.lb, "l0")
    counters = "\n".join(
        f'\t\tether saddr {mac} ip saddr {VIP} tcp sport {PORT} counter comment "{who}"'
        for who, mac in [*rs_macs.items(), ("lb", lb_mac)]
    )
    result = bed.lab.run(
        bed.client,
        ["nft", "-f", "-"],
        input=(
            'table netdev watch {\n\tchain in {\n\t\ttype filter hook ingress device "c0" priority 0; policy accept;\n'
            f"{counters}\n\t}}\n}}\n"
        ),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    apply(bed, config_data("layer4-dr"), dr_env(bed))
    names, peers = tally(bed.client_run("tcp", 20))
    assert names == {"rs1": 10, "rs2": 10}
    assert peers == {CLIENT}
    listing = bed.lab.sh(bed.client, "nft list chain netdev watch in")
    packets = {}
    for line in listing.splitlines():
        if "counter packets" in line:
            who = line.split('comment "')[1].rstrip('"').strip('" ')
            packets[who] = int(line.split("counter packets ")[1].split()[0])
    assert packets["rs1"] > 0 and packets["rs2"] > 0, packets
    assert packets["lb"] == 0, f"replies went through the load balancer: {packets}"


# --- the appliance: health checks, drain, online ------------------------------------------------------


class Appliance:
    def __init__(self, bed: Bed, data: dict) -> None:
        self.bed = bed
        self.dir = Path(tempfile.mkdtemp(prefix="pl4-"))
        self.config = self.dir / "pacslb.yaml"
        self.data = data
        self.config.write_text(yaml.safe_dump(data))
        self.log = open(self.dir / "up.log", "w")
        self.proc = bed.lab.popen(
            bed.lb,
            [PACSLB, "up", "-c", str(self.config), "--state-dir", str(self.dir / "s")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ruleset = self.dir / "s" / "nftables" / "ruleset.nft"
        try:
            wait_until(lambda: "controller ready" in self.logs() or self.proc.poll() is not None, 60, what="the appliance")
            assert self.proc.poll() is None, (self.dir / "up.log").read_text()
        except BaseException:
            self.close()  # a controller that failed may leave its HAProxy serving (fail static)
            raise

    def set_state(self, server: str, state: str) -> None:
        for rs in self.data["virtual_services"][0]["real_servers"]:
            if rs["name"] == server:
                rs["state"] = state
        self.config.write_text(yaml.safe_dump(self.data))
        self.proc.send_signal(signal.SIGHUP)  # `ip netns exec` execs pacslb: this PID is the controller
        wait_until(lambda: f"real server {server} ({state}," in self.ruleset.read_text(), 30, what=f"{server} {state}")

    def logs(self) -> str:
        return (self.dir / "up.log").read_text()

    def close(self) -> None:
        self.bed.lab.stop(self.proc, timeout=30)
        # HAProxy outlives its controller by design; `pacslb stop` ends one left without it, by its PID.
        self.bed.lab.run(self.bed.lb, [PACSLB, "stop", "--state-dir", str(self.dir / "s")], check=False, timeout=60)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def appliance(bed: Bed):
    made: list[Appliance] = []

    def start(data: dict) -> Appliance:
        made.append(Appliance(bed, data))
        return made[-1]

    yield start
    for a in made:
        a.close()


INTERVAL, FALL, RISE = 0.5, 2, 1


def checked(mode: str = "layer4-nat") -> dict:
    return config_data(
        mode,
        health_check={"type": "connect", "interval": f"{int(INTERVAL * 1000)}ms", "timeout": "400ms", "fall": FALL, "rise": RISE},
    )


def test_failed_check_stops_new_flows_and_recovery_brings_them_back(bed: Bed, appliance) -> None:
    app = appliance(checked())
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 5, "rs2": 5}
    bed.stop_server("rs2")
    started = time.monotonic()
    schedule = lambda: bed.lab.sh(bed.lb, "nft list map inet pacslb sched_svc")  # noqa: E731
    wait_until(lambda: "rs2_svc_rs2" not in schedule(), INTERVAL * FALL + 0.4 + 10, what="rs2 out of the schedule")
    took = time.monotonic() - started
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 10}, app.logs()
    bed.start_server("rs2")
    wait_until(lambda: "rs2_svc_rs2" in schedule(), INTERVAL * RISE + 10, what="rs2 back in the schedule")
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 5, "rs2": 5}
    assert took < INTERVAL * FALL + 0.4 + 10


def test_drain_keeps_the_established_connection_and_online_restores(bed: Bed, appliance) -> None:
    app = appliance(checked())
    holders = []
    # open connections until one lands on rs2 (round robin: within two)
    for _ in range(2):
        h = bed.hold()
        holders.append(h)
        greeting = h.stdout.readline().strip()
        if greeting.startswith("rs2"):
            break
    else:
        pytest.fail("no connection reached rs2")
    app.set_state("rs2", "drain")
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 10}
    h.stdin.write("still-there\n")
    h.stdin.flush()
    assert h.stdout.readline().strip() == "rs2 still-there"
    app.set_state("rs2", "halt")
    h.stdin.write("after-halt\n")
    h.stdin.flush()
    assert h.stdout.readline().startswith("ERROR")  # halt drops the established connection (conntrack mark)
    app.set_state("rs2", "online")
    names, _ = tally(bed.client_run("tcp", 10))
    assert names == {"rs1": 5, "rs2": 5}
    for holder in holders:
        bed.lab.stop(holder)
