"""The GSLB bed (issue 19): a GSLB node (pacslb + PowerDNS), two sites and clients in two subnets, each in its own
network namespace on one bridge. Used by tests/netns/test_gslb.py and bench/gslb.py.

    gslb    l0 10.50.0.1/24 (DNS on port 53), 10.61.0.1/24, 10.62.0.1/24; VIP 10.50.0.10 (+ fd50::1, fd50::10)
            site dc2 is this appliance: its virtual service `wfc` (10.50.0.10:8080) in front of rs2
    s1      r0 10.50.0.11/24, fd50::11/64: site dc1, a real HTTP server on 8080 (checked by the GSLB node)
    rs2     r0 10.50.0.12/24: the real server behind dc2's virtual service
    client  c0 10.61.0.2/24 (near dc1) and 10.62.0.2/24 (near dc2), route to 10.50.0.0/24 on-link

Port 53 is fixed, but only inside the bed's own namespace (nothing else can listen there). Every namespace is
named pacslb-<pid>-<n>-<role> and removed by Lab.close; every process is stopped by its PID.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the support package, also when bench/ imports this module

from support.appliance import controller_api, pacslb  # noqa: E402
from support.netns import Lab  # noqa: E402
from support.processes import kill_pids, processes_of  # noqa: E402
from support.wait import wait_until  # noqa: E402

PY = sys.executable
DNS = "10.50.0.1"
DNS_PORT = 53
VIP = "10.50.0.10"
S1 = "10.50.0.11"
RS2 = "10.50.0.12"
NEAR1_CLIENT, NEAR2_CLIENT = "10.61.0.2", "10.62.0.2"
HTTP_PORT = 8080
CHECK_INTERVAL = 1.0  # dc1's check; the issue's bound for a changed answer is this plus 1 s


def config_text(dns_port: int = DNS_PORT, ttl: int = 20, interval_ms: int = int(CHECK_INTERVAL * 1000)) -> str:
    return f"""version: 1
settings:
  max_connections: 2000
  management: {{enabled: false}}
virtual_services:
  - name: wfc
    mode: layer7-http
    listen: [{{address: {VIP}, port: {HTTP_PORT}}}]
    health_check: {{type: http, interval: 300ms, timeout: 250ms, rise: 1, fall: 1}}
    real_servers: [{{name: rs2, address: {RS2}, port: {HTTP_PORT}}}]
gslb:
  listen: {{address: {DNS}, port: {dns_port}}}
  zones:
    - {{name: pacs.test, nameservers: [ns1.pacs.test], nameserver_addresses: [{DNS}]}}
  sites:
    - name: dc1
      addresses: [{S1}, "fd50::11"]
      near: [10.61.0.0/16]
      weight: 75
      health_check: {{type: http, port: {HTTP_PORT}, interval: {interval_ms}ms, timeout: {interval_ms * 4 // 5}ms, rise: 1, fall: 1}}
    - name: dc2
      addresses: [{VIP}, "fd50::10"]
      near: [10.62.0.0/16]
      weight: 25
      virtual_service: wfc
  names:
    - {{name: wfc.pacs.test, policy: topology, sites: [dc1, dc2], ttl: {ttl}}}
    - {{name: sr.pacs.test, policy: failover, sites: [dc1, dc2], fallback: [10.50.0.99]}}
    - {{name: w.pacs.test, policy: weighted, sites: [dc1, dc2]}}
"""


@dataclass
class GslbBed:
    lab: Lab
    spaces: dict[str, str]
    workdir: Path
    state: Path
    config: Path
    log: Path
    proc: subprocess.Popen | None = None
    servers: dict[str, subprocess.Popen] = field(default_factory=dict)

    # --- the sites' real servers ------------------------------------------------------------------------

    def start_server(self, name: str) -> None:
        """s1 (site dc1) or rs2 (behind dc2's virtual service): a real HTTP server on port 8080."""
        address = {"s1": S1, "rs2": RS2}[name]
        proc = self.lab.popen(self.spaces[name], [PY, str(HERE / "ha_http_server.py"), name, address, str(HTTP_PORT)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.servers[name] = proc

    def stop_server(self, name: str) -> None:
        self.lab.stop(self.servers.pop(name))

    # --- the appliance ------------------------------------------------------------------------------------

    def up(self, timeout: float = 90.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = self.lab.popen(self.spaces["gslb"], pacslb("up", "-c", str(self.config), state_dir=self.state),
                                       stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"pacslb up exited {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            status = self.status()
            return bool(status and status["running"] and all(s["up"] for s in status["sites"]))

        wait_until(ready, timeout, 0.2, "PowerDNS to answer with both sites up")

    def status(self) -> dict | None:
        try:
            response = controller_api(self.state, "GET", "/gslb", timeout=10)
        except Exception:  # noqa: BLE001 - not listening yet
            return None
        return response.json() if response.status_code == 200 else None

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(pacslb(*args, state_dir=self.state), capture_output=True, text=True, timeout=timeout)

    # --- the clients --------------------------------------------------------------------------------------

    def client(self, command: str, args: dict, port: int = DNS_PORT, timeout: float = 120) -> dict:
        done = self.lab.run(self.spaces["client"], [PY, str(HERE / "gslb_client.py"), DNS, str(port), command,
                                                    json.dumps(args)], timeout=timeout)  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])

    def query(self, name: str, rtype: str = "A", subnet: str | None = None, source: str = NEAR1_CLIENT) -> dict:
        return self.client("query", {"name": name, "type": rtype, "subnet": subnet, "source": source})

    def queries(self, *asked: tuple) -> list[dict]:
        """Many queries in one client process: each (name, type, subnet, source), the last three optional."""
        defaults = ("", "A", None, NEAR1_CLIENT)
        batch = [dict(zip(("name", "type", "subnet", "source"), (*q, *defaults[len(q) :]), strict=True)) for q in asked]
        return self.client("batch", batch)

    def watch(self, name: str, old: str, subnet: str, timeout: float = 30) -> subprocess.Popen:
        """A client polling `name` until its answer is no longer `old` (started before the change it waits for)."""
        proc = self.lab.popen(self.spaces["client"], [PY, str(HERE / "gslb_client.py"), DNS, str(DNS_PORT), "watch",
                                                      json.dumps({"name": name, "old": old, "subnet": subnet,
                                                                  "source": NEAR1_CLIENT, "timeout": timeout})],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    @staticmethod
    def watched(proc: subprocess.Popen) -> dict:
        out, _ = proc.communicate(timeout=120)
        return json.loads(out.strip().splitlines()[-1])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(pacslb("stop", state_dir=self.state), capture_output=True, timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        kill_pids(processes_of(self.state))  # whatever survived (pdns_server, HAProxy of a failed stop)
        self.lab.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def build_bed(config: str | None = None, tag: str = "") -> GslbBed:
    """The whole bed with the appliance up and both sites healthy; the caller closes it (GslbBed.close).
    `tag` goes into the namespaces' names (pacslb-<tag>-<pid>-<n>-<role>), e.g. "bench"."""
    lab = Lab()
    if tag:
        lab.tag = lab.tag.replace("pacslb-", f"pacslb-{tag}-", 1)
    bed: GslbBed | None = None
    try:
        sw = lab.ns("sw")
        lab.sh(sw, "ip link add br0 type bridge")
        lab.sh(sw, "ip link set br0 up")
        roles = {"gslb": "l0", "s1": "r0", "rs2": "r0", "client": "c0"}
        spaces = {role: lab.ns(role) for role in roles}
        for i, (role, dev) in enumerate(roles.items()):
            lab.veth(sw, f"p{i}", spaces[role], dev)
            lab.sh(sw, f"ip link set p{i} master br0")
        addresses = {
            "gslb": [f"{DNS}/24", "10.61.0.1/24", "10.62.0.1/24", f"{VIP}/24", "fd50::1/64", "fd50::10/64"],
            "s1": [f"{S1}/24", "fd50::11/64"],
            "rs2": [f"{RS2}/24"],
            "client": [f"{NEAR1_CLIENT}/24", f"{NEAR2_CLIENT}/24"],
        }
        for role, listed in addresses.items():
            for address in listed:
                flags = " nodad" if ":" in address else ""
                lab.sh(spaces[role], f"ip addr add {address} dev {roles[role]}{flags}")
        lab.sh(spaces["client"], f"ip route add 10.50.0.0/24 dev c0 src {NEAR1_CLIENT}")
        workdir = Path(tempfile.mkdtemp(prefix="pgslb", dir="/tmp"))
        bed = GslbBed(lab, spaces, workdir, workdir / "state", workdir / "pacslb.yaml", workdir / "controller.log")
        bed.config.write_text(config or config_text())
        bed.start_server("s1")
        bed.start_server("rs2")
        bed.up()
        return bed
    except BaseException:
        if bed is not None:
            bed.close()
        else:
            lab.close()
        raise


def now() -> float:
    return time.monotonic()
