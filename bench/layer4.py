#!/usr/bin/env python3
"""Layer 4 benchmark: nftables NAT and DR against HAProxy in TCP mode, in network namespaces (run as root).

    .venv/bin/python bench/layer4.py            # full run (10 s per measurement, 3 rounds)
    .venv/bin/python bench/layer4.py --quick    # smoke (3 s per measurement, 1 round; README untouched)

One test bed (the one of tests/netns: a client, the load balancer and two real servers on one bridge,
each in its own namespace), built once; every case is measured in it, in the same run:

  nat      client -> VIP:8001, nftables NAT rendered by pacslb (layer4-nat), replies back through the LB
  dr       client -> VIP:8002, nftables DR rendered by pacslb (layer4-dr), replies straight from the real server
  haproxy  client -> VIP:8003, HAProxy running the layer7-tcp configuration pacslb renders (`haproxy -db -f`)
  direct   client -> real server 1 (10.99.0.21:8004, no load balancer): the ceiling of client and servers

The real servers are nginx (one worker each), serving a 256-byte file and a 10 MiB file.
Workloads: small answers with keep-alive (requests/s), small answers with a new connection per request
(connections/s), 10 MiB answers with keep-alive (MiB/s), the latter also with MTU-sized packets
(gso_max_size 1500 on every veth) instead of the 64 KB segments veth carries by default.

CPU of the load balancer: the load balancer gets one CPU of its own (the last one this process may use);
the client, the real servers, the bridge and this harness are pinned to another one. Receive packet
steering (RPS) makes the kernel process every packet that arrives on the load balancer's interface on
the load balancer's CPU, and every other packet of the bed on the other CPU. A SCHED_IDLE busy loop keeps
the load balancer's CPU from idling, so that the tick (which /proc/stat samples) never stops. The load
balancer's CPU is then the system + irq + softirq time of its CPU in /proc/stat during the run (nftables,
conntrack, forwarding, HAProxy's system calls and its sockets' receive path), minus the same over an idle
second before and after the run, plus HAProxy's user time from /proc/PID/stat. See bench/README.md for
the limits.

Writes bench/results/<timestamp>-layer4.json and regenerates the section of bench/README.md between
``<!-- results:layer4 start -->`` and ``<!-- results:layer4 end -->``.

Network: traffic only inside the namespaces this script creates (pacslb-bench-<pid>-<n>-<role>),
with addresses that exist only inside them; the namespaces and every process started in them are
removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/lib, the benchmarks' shared helpers
from lib.checkout import use_checkout  # noqa: E402

use_checkout()
from lib import script, wrk  # noqa: E402
from lib.cli import measurement_counts, split_choices  # noqa: E402
from lib.engines import haproxy_nbthread, render_haproxy, validated  # noqa: E402
from lib.machine import machine_info, require_tools, versions  # noqa: E402
from lib.procfs import children_of, cpu_delta, cpu_times, interrupts, net_rx_softirqs, process_times  # noqa: E402
from lib.procs import log_tail as tail  # noqa: E402
from lib.procs import pinned, stop_process, wait_until  # noqa: E402
from lib.report import fmt, markers, replace_section, stamp, utc_now, write_results  # noqa: E402
from lib.rounds import schedule  # noqa: E402
from lib.stats import median, per_request_us  # noqa: E402
from lib.wrk import errors, medians, report_of, totals  # noqa: E402

from support.netns import Lab  # noqa: E402  (the tests' one namespace bed: tests/support/netns.py)

README = HERE / "README.md"
RESULTS_DIR = HERE / "results"
MARK_START, MARK_END = markers("layer4")


def update_readme(path: Path, section: str) -> None:
    """This benchmark's section of bench/README.md, between its markers; the rest of the file is kept."""
    replace_section(path, "layer4", section)


# The addresses of tests/netns/conftest.py; they exist only inside the namespaces.
VIP = "10.99.0.10"
CLIENT = "10.99.0.2"
LB_CLIENT_SIDE = "10.99.0.1"
LB_SERVER_SIDE = "10.99.1.1"
RS = {"rs1": "10.99.1.11", "rs2": "10.99.1.12"}
DIRECT = "10.99.0.21"  # a /32 of rs1 on the client's subnet, for the direct case
REPLY_TABLE = 100  # real servers: replies from the VIP (DR) or DIRECT go straight to the client

SMALL_BYTES = 256
BIG_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    port: int  # the port wrk talks to (the VIP's, or the real server's in the direct case)
    description: str


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("nat", 8001, "nftables NAT (layer4-nat rendered by pacslb): conntrack DNAT, replies back through the LB"),
        Case("dr", 8002, "nftables DR (layer4-dr rendered by pacslb): ingress MAC rewrite + fwd, replies bypass the LB"),
        Case("haproxy", 8003, "HAProxy, the layer7-tcp configuration pacslb renders, haproxy -db -f, nbthread = LB CPUs"),
        Case(
            "routed",
            8001,
            "no nftables, no proxy: the load balancer routes client <-> real server 1 (10.99.1.11) both ways: "
            "the floor of any path through its kernel, packet steering included",
        ),
        Case("direct", 8004, "no load balancer: client to real server 1 (the ceiling of client and servers)"),
    )
}


@dataclass(frozen=True)
class Workload(wrk.Workload):
    gso_max_size: int = 65536  # of every veth of the bed; 1500: one packet per MTU, as on a wire


WIRE = 1500


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("small-keepalive", "/small", 50, False, f"GET /small ({SMALL_BYTES}-byte file), keep-alive"),
        Workload("small-close", "/small", 50, True, "GET /small, Connection: close (a new connection per request)"),
        Workload("10mb-keepalive", "/10mb", 8, False, "GET /10mb (10 MiB file), keep-alive"),
        Workload(
            "10mb-keepalive-mtu",
            "/10mb",
            8,
            False,
            f"GET /10mb, keep-alive, gso_max_size {WIRE} on every veth: MTU-sized packets, as on a wire",
            WIRE,
        ),
    )
}


# --- the configurations ------------------------------------------------------------------------


def max_connections_for_fd_limit() -> int | None:
    """settings.max_connections HAProxy can start with under this open-files limit (None: the default fits)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 30
    return None if 2 * 100_000 + 100 <= limit else max(1000, (limit - 100) // 2 // 1000 * 1000)


# --- the load balancer's CPU -----------------------------------------------------------------------


@dataclass(frozen=True)
class CpuPlan:
    """Which CPU the load balancer gets, and which one everything else shares."""

    lb: int | None  # None: fewer than 2 CPUs, nothing pinned, the whole machine is measured
    rest: int | None

    @classmethod
    def choose(cls, pin: bool = True) -> "CpuPlan":
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls(None, None)
        return cls(cpus[-1], cpus[0])

    @property
    def lb_key(self) -> str:
        return f"cpu{self.lb}" if self.lb is not None else "cpu"

    @property
    def rest_key(self) -> str:
        return f"cpu{self.rest}" if self.rest is not None else "cpu"

    @property
    def method(self) -> str:
        if self.lb is None:
            return (
                "no CPU split (fewer than 2 CPUs or --no-pin): system + irq + softirq time of the whole machine in "
                "/proc/stat minus its idle rate, plus HAProxy's utime (client and servers' kernel work included)"
            )
        return (
            f"the load balancer owns CPU {self.lb} (HAProxy pinned there, RPS steers the packets arriving on its "
            f"interface there, a SCHED_IDLE busy loop keeps the tick running), everything else runs on CPU {self.rest}: "
            f"LB CPU = system + irq + softirq time of CPU {self.lb} in /proc/stat minus its idle rate (idle seconds "
            "before and after each run), plus HAProxy's utime from /proc/PID/stat"
        )

    def lb_mask(self) -> str:
        return format(1 << self.lb, "x") if self.lb is not None else "0"

    def rest_mask(self) -> str:
        return format(1 << self.rest, "x") if self.rest is not None else "0"


# --- the test bed ---------------------------------------------------------------------------------

NGINX_CONF = """\
# real server {name}: written by bench/layer4.py
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;
    default_type application/octet-stream;
    server {{
        listen 8001 reuseport backlog=4096;
        listen 8002 reuseport backlog=4096;
        listen 8003 reuseport backlog=4096;
        listen 8004 reuseport backlog=4096;
        root {docroot};
        add_header X-Real-Server {name} always;
        add_header X-Peer $remote_addr always;
    }}
}}
"""


@dataclass
class Bed:
    lab: Lab
    plan: CpuPlan
    tmp: Path
    sw: str = ""
    client: str = ""
    lb: str = ""
    rs: dict[str, str] = field(default_factory=dict)
    nginx: dict[str, subprocess.Popen] = field(default_factory=dict)
    haproxy: subprocess.Popen | None = None
    haproxy_log: Path | None = None
    rulesets: dict[str, str] = field(default_factory=dict)  # case -> nft file applied for it
    haproxy_cfg: str = ""
    devices: list[tuple[str, str]] = field(default_factory=list)  # (namespace, device): every veth end
    gso_max_size: int = 65536
    soaker: subprocess.Popen | None = None

    def set_gso_max_size(self, size: int) -> None:
        """The largest segment the stack hands to each veth (65536: the default, 64 KB GSO segments cross the bed)."""
        if size != self.gso_max_size:
            for ns, dev in self.devices:
                self.sh(ns, f"ip link set dev {dev} gso_max_size {size}")
            self.gso_max_size = size

    def sh(self, ns: str, command: str) -> str:
        return self.lab.sh(ns, command)

    def nft(self, text: str) -> None:
        r = self.lab.run(self.lb, ["nft", "-f", "-"], check=False, input=text)
        if r.returncode != 0:
            raise RuntimeError(f"nft -f failed in the load balancer:\n{r.stderr}")

    def l0_bytes(self) -> dict[str, int]:
        keys = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")
        out = self.lab.sh(self.lb, "cat " + " ".join(f"/sys/class/net/l0/statistics/{k}" for k in keys))
        values = dict(zip(keys, (int(x) for x in out.split()), strict=False))
        return {"rx": values["rx_bytes"], "tx": values["tx_bytes"],
                "rx_packets": values["rx_packets"], "tx_packets": values["tx_packets"]}  # fmt: skip


def build_bed(lab: Lab, plan: CpuPlan, tmp: Path) -> Bed:
    """tests/netns/conftest.py's topology, plus what the benchmark needs (see the module's docstring)."""
    bed = Bed(lab, plan, tmp)
    sw = bed.sw = lab.ns("sw")
    bed.sh(sw, "ip link add br0 type bridge")
    bed.sh(sw, "ip link set br0 up")
    bed.client, bed.lb = lab.ns("client"), lab.ns("lb")
    bed.rs = {name: lab.ns(name) for name in RS}
    ends = [(bed.client, "c0"), (bed.lb, "l0"), (bed.rs["rs1"], "r0"), (bed.rs["rs2"], "r0")]
    for port, (ns, dev) in enumerate(ends):
        lab.veth(sw, f"p{port}", ns, dev)
        bed.sh(sw, f"ip link set p{port} master br0")
    bed.devices = [*((ns, dev) for ns, dev in ends), *((sw, f"p{i}") for i in range(len(ends)))]
    bed.sh(bed.client, f"ip addr add {CLIENT}/24 dev c0")
    bed.sh(bed.client, f"ip route add 10.99.1.0/24 via {LB_CLIENT_SIDE}")  # the routed case
    bed.sh(bed.lb, f"ip addr add {LB_CLIENT_SIDE}/24 dev l0")
    bed.sh(bed.lb, f"ip addr add {LB_SERVER_SIDE}/24 dev l0")
    bed.sh(bed.lb, f"ip addr add {VIP}/32 dev l0")
    bed.sh(bed.lb, "sysctl -qw net.ipv4.conf.all.send_redirects=0")
    bed.sh(bed.lb, "sysctl -qw net.ipv4.conf.l0.send_redirects=0")
    bed.sh(bed.lb, "sysctl -qw net.ipv4.ip_forward=1")
    for name, address in RS.items():
        ns = bed.rs[name]
        bed.sh(ns, f"ip addr add {address}/24 dev r0")
        bed.sh(ns, f"ip route add default via {LB_SERVER_SIDE}")  # NAT: replies go back through the LB
        # DR (docs/layer4.md): the VIP on lo, never answered in ARP
        bed.sh(ns, f"ip addr add {VIP}/32 dev lo")
        bed.sh(ns, "sysctl -qw net.ipv4.conf.all.arp_ignore=1")
        bed.sh(ns, "sysctl -qw net.ipv4.conf.all.arp_announce=2")
        # Replies from the VIP (DR) go straight to the client; replies from the server's own address
        # (NAT) still go through the LB. The test bed adds the client route to the main table instead,
        # which would break NAT; a rule by source address lets every case share one bed.
        bed.sh(ns, f"ip route add 10.99.0.0/24 dev r0 table {REPLY_TABLE}")
        bed.sh(ns, f"ip rule add from {VIP} lookup {REPLY_TABLE}")
    bed.sh(bed.rs["rs1"], f"ip addr add {DIRECT}/32 dev r0")
    bed.sh(bed.rs["rs1"], f"ip rule add from {DIRECT} lookup {REPLY_TABLE}")
    if plan.lb is not None:
        # Receive packet steering: what arrives on the LB's interface is processed on the LB's CPU,
        # everything else (client, bridge, real servers) on the other one.
        bed.sh(bed.lb, f"sh -c 'echo {plan.lb_mask()} > /sys/class/net/l0/queues/rx-0/rps_cpus'")
        for ns, dev in [(bed.client, "c0"), (bed.rs["rs1"], "r0"), (bed.rs["rs2"], "r0")] + [
            (sw, f"p{i}") for i in range(len(ends))
        ]:
            bed.sh(ns, f"sh -c 'echo {plan.rest_mask()} > /sys/class/net/{dev}/queues/rx-0/rps_cpus'")
        got = bed.sh(bed.lb, "cat /sys/class/net/l0/queues/rx-0/rps_cpus").strip().replace(",", "")
        if int(got, 16) != 1 << plan.lb:
            raise RuntimeError(f"RPS mask of the load balancer's interface did not take: {got}")
    return bed


def start_real_servers(bed: Bed) -> None:
    docroot = bed.tmp / "docroot"
    docroot.mkdir()
    (docroot / "small").write_bytes(b"x" * (SMALL_BYTES - 1) + b"\n")
    with open(docroot / "10mb", "wb") as f:
        f.write(os.urandom(BIG_BYTES))
    os.chmod(bed.tmp, 0o755)  # nginx workers run as nobody
    os.chmod(docroot, 0o755)
    for name, ns in bed.rs.items():
        prefix = bed.tmp / f"nginx-{name}"
        prefix.mkdir()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(name=name, prefix=prefix, docroot=docroot))
        cmd = ["nginx", "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(conf)]
        r = bed.lab.run(ns, [*cmd, "-t", "-q"], check=False)
        if r.returncode != 0:
            raise RuntimeError(f"nginx -t failed for {name}:\n{r.stdout}{r.stderr}")
        bed.nginx[name] = bed.lab.popen(ns, [*cmd, "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=pinned(bed.plan.rest))  # fmt: skip


def service(name: str, mode: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"bench/layer4.py: {mode} in front of two nginx real servers",
        "mode": mode,
        "listen": [{"address": VIP, "port": port}],
        "real_servers": [{"name": n, "address": a, "port": port} for n, a in RS.items()],
    }


def config_data(svc: dict[str, Any], max_connections: int | None = None) -> dict[str, Any]:
    return {
        "version": 1,
        **({"settings": {"max_connections": max_connections}} if max_connections is not None else {}),
        "virtual_services": [svc],
    }


def prepare_engines(bed: Bed, cases: tuple[str, ...]) -> None:
    """Render the nftables rulesets (checked with nft -c), render and start HAProxy."""
    from pacslb.engines.nftables.render import Layer4Env, removal, render

    dr_env = Layer4Env(
        vip_devices={VIP: "l0"},
        routes={address: "l0" for address in RS.values()},
        link_macs={"l0": bed.lab.mac(bed.lb, "l0")},
        neighbours={address: bed.lab.mac(bed.rs[name], "r0") for name, address in RS.items()},
    )
    bed.rulesets = {
        "nat": render(validated(config_data(service("bench_nat", "layer4-nat", CASES["nat"].port))), Layer4Env()),
        "dr": render(validated(config_data(service("bench_dr", "layer4-dr", CASES["dr"].port))), dr_env),
        "haproxy": removal(),
        "routed": removal(),
        "direct": removal(),
    }
    for case in ("nat", "dr"):
        if case in cases:
            r = bed.lab.run(bed.lb, ["nft", "-c", "-f", "-"], check=False, input=bed.rulesets[case])
            if r.returncode != 0:
                raise RuntimeError(f"nft -c refused the {case} ruleset:\n{r.stderr}")
    if "haproxy" in cases:
        threads = 1 if bed.plan.lb is not None else (os.cpu_count() or 1)
        data = config_data(service("bench_tcp", "layer7-tcp", CASES["haproxy"].port), max_connections_for_fd_limit())
        bed.haproxy_cfg = render_haproxy(data, bed.tmp / "state", threads)
        path = bed.tmp / "haproxy.cfg"
        path.write_text(bed.haproxy_cfg)
        r = bed.lab.run(bed.lb, ["haproxy", "-c", "-q", "-f", str(path)], check=False)
        if r.returncode != 0:
            raise RuntimeError(f"haproxy -c failed:\n{r.stdout}{r.stderr}")
        bed.haproxy_log = bed.tmp / "haproxy.log"
        with open(bed.haproxy_log, "ab") as log:
            bed.haproxy = bed.lab.popen(bed.lb, ["haproxy", "-db", "-f", str(path)], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, preexec_fn=pinned(bed.plan.lb))  # fmt: skip
        _wait_listening(bed, CASES["haproxy"].port)


def _wait_listening(bed: Bed, port: int, timeout: float = 15.0) -> None:
    """Measure only once HAProxy listens: a run that starts before it would count nothing."""

    def listening() -> bool:
        if bed.haproxy is not None and bed.haproxy.poll() is not None:
            raise RuntimeError(f"haproxy exited with status {bed.haproxy.returncode}:\n{tail(bed.haproxy_log)}")
        r = bed.lab.run(bed.lb, ["ss", "-Hltn", f"sport = :{port}"], check=False)
        return r.returncode == 0 and bool(r.stdout.strip())

    if not wait_until(listening, timeout):
        raise RuntimeError(f"haproxy is not listening on port {port} after {timeout:.0f} s:\n{tail(bed.haproxy_log)}")


def activate(bed: Bed, case: str) -> None:
    """The load balancer's state for `case`: its nftables table (a fresh one), or none."""
    bed.nft(bed.rulesets[case])


def target(case: str) -> tuple[str, int]:
    host = {"direct": DIRECT, "routed": RS["rs1"]}.get(case, VIP)
    return host, CASES[case].port


GET_SCRIPT = r"""
import http.client, json, sys, time
host, port, n, deadline = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), time.monotonic() + float(sys.argv[4])
seen, last = [], None
while len(seen) < n and time.monotonic() < deadline:
    try:
        c = http.client.HTTPConnection(host, port, timeout=2)
        c.request("GET", "/small", headers={"Connection": "close"})
        r = c.getresponse(); body = r.read(); c.close()
        if r.status == 200 and len(body) == int(sys.argv[5]):
            seen.append([r.getheader("X-Real-Server"), r.getheader("X-Peer")])
        else:
            last = r.status
    except OSError as e:
        last = str(e); time.sleep(0.1)
print(json.dumps({"seen": seen, "last": last}))
"""


def route_check(bed: Bed, case: str, n: int = 8, timeout: float = 20) -> dict[str, Any]:
    """From the client: n requests on new connections; which real servers answered, what address they saw."""
    host, port = target(case)
    r = bed.lab.run(bed.client, [sys.executable, "-c", GET_SCRIPT, host, str(port), str(n), str(timeout), str(SMALL_BYTES)],
                    timeout=timeout + 30)  # fmt: skip
    out = json.loads(r.stdout)
    if len(out["seen"]) < n:
        raise RuntimeError(f"{case}: only {len(out['seen'])}/{n} answers from {host}:{port} (last: {out['last']})")
    servers: dict[str, int] = {}
    for name, _ in out["seen"]:
        servers[name] = servers.get(name, 0) + 1
    return {"real_servers": dict(sorted(servers.items())), "peers_seen": sorted({p for _, p in out["seen"]})}


EXPECTED_PEER = {"nat": CLIENT, "dr": CLIENT, "haproxy": LB_SERVER_SIDE, "routed": CLIENT, "direct": CLIENT}


# --- measuring ------------------------------------------------------------------------------------


def wrk_command(host: str, port: int, workload: Workload, duration: int) -> list[str]:
    """wrk -t1 from the client to host:port (run in the client's namespace)."""
    return wrk.wrk_command(f"http://{host}:{port}{workload.path}", workload, duration)


def idle_baseline(seconds: float) -> dict[str, Any]:
    before = cpu_times()
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    after = cpu_times()
    return {"wall": wall, "cpus": {k: cpu_delta(before, after, k) for k in after}}


def measure(bed: Bed, case: str, workload: Workload, duration: int, baseline_s: float) -> dict[str, Any]:
    """Activate the case, take an idle baseline, run wrk from the client; CPU, bytes through the LB, wrk's report."""
    activate(bed, case)
    bed.set_gso_max_size(workload.gso_max_size)
    host, port = target(case)
    base = idle_baseline(baseline_s) if baseline_s > 0 else None
    hap = [bed.haproxy.pid] if bed.haproxy is not None and bed.haproxy.poll() is None else []
    nginx = [p.pid for p in bed.nginx.values()]
    nginx_all = nginx + children_of(nginx)
    hap0, nginx0 = process_times(hap), process_times(nginx_all)
    l0_before = bed.l0_bytes()
    rx0, irq0 = net_rx_softirqs(), interrupts()
    before = cpu_times()
    t0 = time.monotonic()
    r = bed.lab.run(bed.client, wrk_command(host, port, workload, duration), check=False, timeout=duration + 60)
    wall = time.monotonic() - t0
    after = cpu_times()
    hap1 = process_times(hap)
    rx1, irq1 = net_rx_softirqs(), interrupts()
    l0_after = bed.l0_bytes()
    data = report_of(r, f"for {case}")
    if base is not None:  # the idle rate: the mean of an idle stretch before the run and one after it
        time.sleep(0.2)  # connections finishing
        later = idle_baseline(baseline_s)
        base = {"wall": base["wall"] + later["wall"],
                "cpus": {k: {kind: base["cpus"][k][kind] + later["cpus"][k][kind] for kind in base["cpus"][k]}
                         for k in base["cpus"]}}  # fmt: skip
    cpus = {k: cpu_delta(before, after, k) for k in after}
    lb, rest = cpus[bed.plan.lb_key], cpus[bed.plan.rest_key]

    def net_of_baseline(kind: str, cpu_key: str) -> float | None:
        if base is None:
            return None
        return cpus[cpu_key][kind] - base["cpus"][cpu_key][kind] / base["wall"] * wall

    data["cpu"] = {
        "wall_s": round(wall, 3),
        "lb_cpu": bed.plan.lb_key,
        "lb_busy_s": round(lb["busy"], 3),
        "lb_softirq_s": round(lb["softirq"], 3),
        "lb_user_s": round(lb["user"] + lb["nice"], 3),
        "lb_system_s": round(lb["system"], 3),
        "lb_steal_s": round(lb["steal"], 3),
        "lb_net_s": None if base is None else round(net_of_baseline("busy", bed.plan.lb_key), 3),
        "lb_softirq_net_s": None if base is None else round(net_of_baseline("softirq", bed.plan.lb_key), 3),
        "rest_cpu": bed.plan.rest_key,
        "rest_busy_s": round(rest["busy"], 3),
        "rest_net_s": None if base is None else round(net_of_baseline("busy", bed.plan.rest_key), 3),
        "haproxy_user_s": round(hap1[0] - hap0[0], 3) if hap and case == "haproxy" else None,
        "haproxy_system_s": round(hap1[1] - hap0[1], 3) if hap and case == "haproxy" else None,
        "haproxy_process_s": round(sum(hap1) - sum(hap0), 3) if hap and case == "haproxy" else None,
        "nginx_process_s": round(sum(process_times(nginx_all)) - sum(nginx0), 3),
        "baseline": None if base is None else {
            "wall_s": round(base["wall"], 3),
            "lb_busy_s": round(base["cpus"][bed.plan.lb_key]["busy"], 3),
            "lb_softirq_s": round(base["cpus"][bed.plan.lb_key]["softirq"], 3),
            "rest_busy_s": round(base["cpus"][bed.plan.rest_key]["busy"], 3),
        },
    }  # fmt: skip
    cpu = data["cpu"]
    kernel = ("system", "irq", "softirq")  # each tick of a CPU falls in exactly one /proc/stat kind
    run_kernel = sum(lb[k] for k in kernel)
    if base is not None:
        run_kernel -= sum(base["cpus"][bed.plan.lb_key][k] for k in kernel) / base["wall"] * wall
    cpu["lb_kernel_net_s"] = round(run_kernel, 3)
    cpu.update(lb_cpu(cpu))
    data["net_rx_softirqs_per_cpu"] = [b - a for a, b in zip(rx0, rx1, strict=False)]
    data["ipis_per_cpu"] = {k: [b - a for a, b in zip(irq0[k], irq1[k], strict=False)] for k in irq1 if k in irq0}
    data["lb_l0_bytes"] = {k: l0_after[k] - l0_before[k] for k in l0_after}
    if bed.haproxy is not None and bed.haproxy.poll() is not None:
        raise RuntimeError(f"haproxy died during the run: {tail(bed.haproxy_log)}")
    for name, p in bed.nginx.items():
        if p.poll() is not None:
            raise RuntimeError(f"nginx {name} died during the run")
    return data


def lb_cpu(cpu: dict[str, Any]) -> dict[str, Any]:
    """The load balancer's CPU seconds in one run, from the raw numbers `measure` records.

    nftables (and plain routing) work only in softirq: their CPU is the softirq time of the LB's CPU, net of
    its idle rate. HAProxy adds its process time, and a softirq tick that lands while HAProxy runs counts both
    in softirq and in HAProxy's stime, so its CPU lies between utime + max(softirq, stime) and
    utime + stime + softirq. Within these bounds the estimate is system + irq + softirq of the LB's CPU
    (each tick counted once), net of the idle rate, plus HAProxy's utime; other work's system calls on that
    CPU can push this estimate outside the bounds, which is why it is clamped to them.
    """
    softirq = max(0.0, cpu["lb_softirq_net_s"] if cpu["lb_softirq_net_s"] is not None else cpu["lb_softirq_s"])
    if cpu.get("haproxy_process_s") is None:
        return {"lb_cpu_s": round(softirq, 3), "lb_cpu_low_s": round(softirq, 3), "lb_cpu_high_s": round(softirq, 3)}
    hu, hs = cpu["haproxy_user_s"], cpu["haproxy_system_s"]
    low, high = hu + max(softirq, hs), hu + hs + softirq
    estimate = max(0.0, cpu.get("lb_kernel_net_s", high)) + hu
    return {"lb_cpu_s": round(min(max(estimate, low), high), 3), "lb_cpu_low_s": round(low, 3), "lb_cpu_high_s": round(high, 3)}


@dataclass
class Options:
    duration: int = 10
    rounds: int = 3
    warmup: int = 1
    baseline: float = 1.0
    cases: tuple[str, ...] = tuple(CASES)
    workloads: tuple[str, ...] = tuple(WORKLOADS)
    pin: bool = True
    soak: bool = True
    quick: bool = False
    log: Callable[[str], None] = print

    def budget(self) -> float:
        """An upper bound of the whole run, in seconds (the soaker's lifetime)."""
        per = 2 * self.baseline + self.duration + 10
        return 120 + len(self.workloads) * len(self.cases) * (self.warmup + 10 + self.rounds * per)


SOAK = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def start_soaker(cpu: int, lifetime: float) -> subprocess.Popen:
    """A SCHED_IDLE busy loop on the load balancer's CPU, bounded in time, so that the CPU never idles.

    With NO_HZ_IDLE the scheduler tick stops while a CPU idles; softirq work done when an interrupt wakes an
    idle CPU is then never sampled, and /proc/stat undercounts it by an amount that depends on how busy
    the CPU was. With the CPU always busy, the tick always runs and samples softirq time fairly. SCHED_IDLE
    yields to every other task (HAProxy preempts it on wakeup); its own time is user time, which the
    load balancer's CPU figure leaves out.
    """

    def preexec() -> None:
        pinned(cpu)()
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    return subprocess.Popen([sys.executable, "-c", SOAK, str(lifetime)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec)  # fmt: skip


@contextlib.contextmanager
def running_bed(opts: Options, tmp: Path) -> Iterator[Bed]:
    """The namespaces, real servers and HAProxy; everything removed on exit, also on failure."""
    plan = CpuPlan.choose(opts.pin)
    saved_affinity = os.sched_getaffinity(0)
    lab = Lab()
    lab.tag = lab.tag.replace("pacslb-", "pacslb-bench-", 1)  # pacslb-bench-<pid>-<n>-<role>
    soaker = None
    try:
        if plan.rest is not None:
            os.sched_setaffinity(0, {plan.rest})  # this harness, wrk and every helper command: the other CPU
        bed = build_bed(lab, plan, tmp)
        start_real_servers(bed)
        prepare_engines(bed, opts.cases)
        if opts.soak and plan.lb is not None:
            soaker = bed.soaker = start_soaker(plan.lb, opts.budget())
        yield bed
    finally:
        try:
            stop_process(soaker)
        finally:
            lab.close()  # stops every process it started (by PID), deletes the namespaces (and their nftables tables)
            os.sched_setaffinity(0, saved_affinity)


def run_bench(opts: Options) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise RuntimeError("bench/layer4.py needs root (network namespaces, nftables)")
    require_tools(
        ("wrk", "nginx", "nft", "ip", *(["haproxy"] if "haproxy" in opts.cases else [])),
        "apt-get install -y wrk nginx-light nftables haproxy iproute2",
    )
    started = utc_now()
    load_at_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pacslb-bench-l4-") as tmpname:
        tmp = Path(tmpname)
        with running_bed(opts, tmp) as bed:
            cases = list(opts.cases)
            routes: dict[str, Any] = {}
            for c in cases:
                activate(bed, c)
                routes[c] = route_check(bed, c)
                if routes[c]["peers_seen"] != [EXPECTED_PEER[c]]:
                    raise RuntimeError(f"{c}: the real servers saw {routes[c]['peers_seen']}, not {EXPECTED_PEER[c]}")
                opts.log(f"{c:8} {target(c)[0]}:{target(c)[1]} -> {routes[c]}")
            opts.log(f"CPU: {bed.plan.method}")
            for wname in opts.workloads:
                workload = WORKLOADS[wname]
                if opts.warmup > 0:
                    for c in cases:
                        measure(bed, c, workload, opts.warmup, 0)
                for rnd, pos, c in schedule(cases, opts.rounds):
                    data = measure(bed, c, workload, opts.duration, opts.baseline)
                    runs.append({"workload": wname, "case": c, "round": rnd, "position": pos, **data})
                    cpu = data["cpu"]
                    opts.log(
                        f"{wname:16} round {rnd} {c:8} {data['rps']:9.1f} req/s {data['mib_per_s']:8.1f} MiB/s"
                        f"  LB CPU {cpu['lb_cpu_s'] / cpu['wall_s']:5.2f} cores"
                        f" ({cpu['lb_cpu_s'] / max(data['requests'], 1) * 1e6:8.1f} us/req)"
                        f"  rest {cpu['rest_busy_s'] / cpu['wall_s']:4.2f}"
                        f"  errors {data['socket_errors']}/{data['errors']['status']}"
                    )
            haproxy_log_bytes = bed.haproxy_log.stat().st_size if bed.haproxy_log and bed.haproxy_log.exists() else None
            doc = {
                "benchmark": "layer4",
                "started": started.isoformat(timespec="seconds"),
                "finished": utc_now().isoformat(timespec="seconds"),
                "quick": opts.quick,
                "parameters": {
                    "duration_s": opts.duration,
                    "rounds": opts.rounds,
                    "warmup_s": opts.warmup,
                    "baseline_s": opts.baseline,
                    "wrk_threads": 1,
                    "workloads": {w: WORKLOADS[w].parameters() for w in opts.workloads},
                    "order": "per workload: every round runs every case, order rotated by one each round",
                    "cpu_plan": {
                        "lb_cpu": bed.plan.lb,
                        "rest_cpu": bed.plan.rest,
                        "method": bed.plan.method,
                        "soaker": opts.soak and bed.plan.lb is not None,
                    },
                    "haproxy_nbthread": haproxy_nbthread(bed.haproxy_cfg) if bed.haproxy_cfg else None,
                    "nginx": "2 real servers, 1 worker each, sendfile on, access_log off",
                    "topology": "client, load balancer and 2 real servers in their own namespaces, veth pairs on one bridge "
                    "(tests/netns/conftest.py); VIP 10.99.0.10",
                },
                "machine": {**machine_info(), "loadavg_at_start": load_at_start},
                "versions": versions(("haproxy", "nginx", "nft", "wrk")),
                "cases": {
                    c: {"description": CASES[c].description, "target": "%s:%d" % target(c), "route": routes[c]} for c in cases
                },  # fmt: skip
                "configs": {"nat": bed.rulesets.get("nat"), "dr": bed.rulesets.get("dr"), "haproxy": bed.haproxy_cfg or None},
                "haproxy_log_bytes": haproxy_log_bytes,
                "runs": runs,
            }
    doc["summary"] = summarize(runs)
    return doc


# --- summary and report ---------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for w in dict.fromkeys(r["workload"] for r in runs):
        per_case: dict[str, Any] = {}
        for c in [c for c in CASES if any(r["workload"] == w and r["case"] == c for r in runs)]:
            rs = [r for r in runs if r["workload"] == w and r["case"] == c]
            for r in rs:
                if "haproxy_user_s" in r["cpu"]:  # results of the current format: recompute from the raw numbers
                    r["cpu"].update(lb_cpu(r["cpu"]))
            per_case[c] = {
                **medians(rs),
                "lb_cpu_us_per_req": median([per_request_us(r["cpu"]["lb_cpu_s"], r["requests"]) for r in rs]),
                "lb_cpu_low_us_per_req": median([per_request_us(r["cpu"].get("lb_cpu_low_s"), r["requests"]) for r in rs]),
                "lb_cpu_high_us_per_req": median([per_request_us(r["cpu"].get("lb_cpu_high_s"), r["requests"]) for r in rs]),
                "lb_cores": median([r["cpu"]["lb_cpu_s"] / r["cpu"]["wall_s"] for r in rs]),
                "lb_softirq_us_per_req": median(
                    [per_request_us(r["cpu"]["lb_softirq_net_s"] if r["cpu"]["lb_softirq_net_s"] is not None
                                 else r["cpu"]["lb_softirq_s"], r["requests"]) for r in rs]),
                "lb_softirq_cores": median(
                    [(r["cpu"]["lb_softirq_net_s"] if r["cpu"]["lb_softirq_net_s"] is not None
                      else r["cpu"]["lb_softirq_s"]) / r["cpu"]["wall_s"] for r in rs]),
                "haproxy_process_us_per_req": median([per_request_us(r["cpu"]["haproxy_process_s"], r["requests"]) for r in rs]),
                "lb_busy_net_cores": median(
                    [r["cpu"]["lb_net_s"] / r["cpu"]["wall_s"] for r in rs if r["cpu"]["lb_net_s"] is not None]),
                "rest_busy": median([r["cpu"]["rest_busy_s"] / r["cpu"]["wall_s"] for r in rs]),
                "lb_packets_per_req": median(
                    [(r["lb_l0_bytes"].get("rx_packets", 0) + r["lb_l0_bytes"].get("tx_packets", 0)) / r["requests"]
                     for r in rs if r["requests"] and "rx_packets" in r["lb_l0_bytes"]]),
                "lb_tx_per_byte_served": median([r["lb_l0_bytes"]["tx"] / r["bytes"] for r in rs if r["bytes"]]),
                **totals(rs),
            }  # fmt: skip
        ratios: dict[str, Any] = {}
        for num in ("nat", "dr"):
            for den in ("haproxy", "direct"):
                if num in per_case and den in per_case and per_case[den]["rps"]:
                    ratios[f"{num}/{den} rps"] = per_case[num]["rps"] / per_case[den]["rps"]
            if num in per_case and "routed" in per_case and per_case["routed"]["lb_cpu_us_per_req"]:
                a, b = per_case[num]["lb_cpu_us_per_req"], per_case["routed"]["lb_cpu_us_per_req"]
                if a is not None and b and b > 0:
                    ratios[f"{num}/routed lb_cpu_per_req"] = a / b
            if num in per_case and "haproxy" in per_case:
                a, b = per_case[num]["lb_cpu_us_per_req"], per_case["haproxy"]["lb_cpu_us_per_req"]
                if a is not None and b:
                    ratios[f"{num}/haproxy lb_cpu_per_req"] = a / b
        if "haproxy" in per_case and "direct" in per_case and per_case["direct"]["rps"]:
            ratios["haproxy/direct rps"] = per_case["haproxy"]["rps"] / per_case["direct"]["rps"]
        out[w] = {"cases": per_case, "ratios": ratios}
    return out


def markdown_table(doc: dict[str, Any], results_name: str | None = None) -> str:
    p, v, m = doc["parameters"], doc["versions"], doc["machine"]
    plan = p["cpu_plan"]
    lines = [
        f"Run {doc['started']}{' (--quick)' if doc.get('quick') else ''}"
        + (f", raw numbers in `bench/results/{results_name}`" if results_name else "") + ".",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, load average (1 min) at start "
        f"{m['loadavg_at_start'][0]:.2f}, at end {m['loadavg_at_end'][0]:.2f}; {v['haproxy']}, {v['nft']}, nginx {v['nginx']}, wrk {v['wrk']}, "
        f"pacslb {v['pacslb']} ({v['git_commit'][:10]}{', uncommitted changes' if v['git_dirty'] else ''}).",
        f"wrk -t1, {p['duration_s']} s per measurement, {p['rounds']} round(s) per case (median shown), "
        + (f"load balancer on CPU {plan['lb_cpu']}, client and real servers on CPU {plan['rest_cpu']}, "
           if plan["lb_cpu"] is not None else "no CPU split (fewer than 2 CPUs), ")
        + f"HAProxy nbthread {p['haproxy_nbthread']}.",
        "",
        "| workload | case | req/s | MiB/s | p50 ms | p99 ms | LB softirq µs/req | HAProxy process µs/req | "
        "LB CPU µs/req | LB CPU (cores) | client+servers CPU | LB packets / req | LB sent / bytes served | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for w, s in doc["summary"].items():
        wl = p["workloads"][w]
        label = f"{w} (-c{wl['connections']})"
        for c, r in s["cases"].items():
            if c == "direct":  # nothing goes through the load balancer: its CPU shows the noise left after the baseline
                lb = f"({fmt(r['lb_softirq_us_per_req'], ',.1f')}) | - | - | ({fmt(r['lb_cores'], '.2f')})"
                sent = "- | -"
            else:
                lb = (
                    f"{fmt(r['lb_softirq_us_per_req'], ',.1f')} | {fmt(r['haproxy_process_us_per_req'], ',.1f')} | "
                    f"{fmt(r['lb_cpu_us_per_req'], ',.1f')} | {fmt(r['lb_cores'], '.2f')}"
                )
                sent = f"{fmt(r.get('lb_packets_per_req'), ',.1f')} | {fmt(r['lb_tx_per_byte_served'], '.2f')}"
            lines.append(
                f"| {label} | {c} | {fmt(r['rps'], ',.0f')} | {fmt(r['mib_per_s'], ',.1f')} | "
                f"{fmt(r['p50_ms'], '.2f')} | {fmt(r['p99_ms'], '.2f')} | {lb} | "
                f"{fmt(r['rest_busy'] * 100, '.0f')}% | {sent} | {r['socket_errors']}/{r['non_2xx_3xx']} |"
            )  # fmt: skip
    lines += [
        "",
        "LB softirq: softirq time of the load balancer's CPU during the run, minus its rate over idle seconds "
        "before and after (in parentheses for direct, where nothing crosses the load balancer: the noise of other work). "
        "HAProxy process: user + system time of the HAProxy process (/proc/PID/stat); a softirq tick that lands "
        "while HAProxy runs counts in both columns. "
        "LB CPU: for nftables and routing, LB softirq; for HAProxy, system + irq + softirq time of the load balancer's "
        "CPU net of the idle rate plus HAProxy's utime (each tick counted once), kept between utime + max(softirq, stime) "
        "and utime + stime + softirq. "
        "client+servers CPU: busy fraction of the other CPU (wrk, nginx, the bridge, and any other work on the machine). "
        "LB packets / req: packets received and sent by the load balancer's interface per request (GSO/GRO "
        "segments of up to 64 KB count as one). "
        "LB sent / bytes served: bytes sent by the load balancer's interface per byte wrk received. "
        "Errors: socket errors / statuses >= 400.",
        "",
        "| workload | nat/haproxy req/s | dr/haproxy req/s | nat/direct req/s | dr/direct req/s | haproxy/direct req/s | "
        "nat/routed LB CPU per req | dr/routed LB CPU per req | nat/haproxy LB CPU per req | dr/haproxy LB CPU per req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w, s in doc["summary"].items():
        r = s["ratios"]
        lines.append(
            f"| {w} | {fmt(r.get('nat/haproxy rps'), '.2f')} | {fmt(r.get('dr/haproxy rps'), '.2f')} | "
            f"{fmt(r.get('nat/direct rps'), '.2f')} | {fmt(r.get('dr/direct rps'), '.2f')} | "
            f"{fmt(r.get('haproxy/direct rps'), '.2f')} | "
            f"{fmt(r.get('nat/routed lb_cpu_per_req'), '.2f')} | {fmt(r.get('dr/routed lb_cpu_per_req'), '.2f')} | "
            f"{fmt(r.get('nat/haproxy lb_cpu_per_req'), '.2f')} | {fmt(r.get('dr/haproxy lb_cpu_per_req'), '.2f')} |"
        )
    return "\n".join(lines) + "\n"


# --- command line ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke: 3 s per measurement, 1 round; README untouched")
    ap.add_argument("--duration", type=int, help="seconds per measurement (default 10, --quick 3)")
    ap.add_argument("--rounds", type=int, help="rounds per workload; the median is reported (default 3, --quick 1)")
    ap.add_argument("--warmup", type=int, help="seconds of unrecorded load per case before each workload (default 1)")
    ap.add_argument("--baseline", type=float, help="idle seconds measured before and after each run (default 1)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of " + ",".join(WORKLOADS))
    ap.add_argument("--no-pin", action="store_true", help="no CPU split: measure the whole machine's CPU instead")
    ap.add_argument("--no-soak", action="store_true", help="no SCHED_IDLE busy loop on the load balancer's CPU")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where <timestamp>-layer4.json goes")
    ap.add_argument(
        "--readme", type=Path, help="regenerate the results section of this file (default bench/README.md, not with --quick)"
    )
    ap.add_argument("--no-readme", action="store_true", help="leave the README alone")
    ap.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="measure nothing: recompute the derived numbers of this results file, print its tables "
        "(and write them to --readme if given)",
    )
    return ap.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    cases = split_choices(args.cases, CASES, "case")
    workloads = split_choices(args.workloads, WORKLOADS, "workload")
    duration, rounds, warmup = measurement_counts(args)
    baseline = args.baseline if args.baseline is not None else 1.0
    if not 0 < duration <= 120 or not 1 <= rounds <= 20 or not 0 <= warmup <= 30 or not 0 <= baseline <= 10:
        raise SystemExit("bounds: 0 < duration <= 120, 1 <= rounds <= 20, 0 <= warmup <= 30, 0 <= baseline <= 10")
    return Options(duration=duration, rounds=rounds, warmup=warmup, baseline=baseline, cases=cases,
                   workloads=workloads, pin=not args.no_pin, soak=not args.no_soak, quick=args.quick)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:  # derived numbers (LB CPU, summary) are recomputed and written back
        doc = json.loads(args.report.read_text())
        doc["summary"] = summarize(doc["runs"])
        args.report.write_text(json.dumps(doc, indent=2) + "\n")
        table = markdown_table(doc, args.report.name)
        print(table)
        if args.readme is not None and not args.no_readme:
            update_readme(args.readme, table)
        return 0
    opts = options_from(args)
    doc = script.unwinding_sigterm(run_bench, opts)
    results = write_results(args.results_dir, f"{stamp(doc['started'])}-layer4.json", doc)
    table = markdown_table(doc, results.name)
    print()
    print(table)
    print(f"results: {results}")
    readme = args.readme or (None if args.quick else README)
    if readme is not None and not args.no_readme:
        update_readme(readme, table)
        print(f"table written to {readme}")
    failed = errors(doc["runs"])
    if failed:
        print(f"warning: {failed} socket errors or error statuses during the runs", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
