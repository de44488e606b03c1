"""The cluster's state in etcd, for real (issue 20): three `pacslb up` nodes on loopback addresses, each running its
own etcd member (three members), one shared configuration.

A change on one node reaches all three (each reports the revision it runs in its member key); two changes at once
on two nodes: one wins, the other is a 409; an etcd member killed with SIGKILL: changes still go through and every
node applies them; a node whose controller was down applies the latest revision when it starts; drain and undrain
show in `pacslb cluster status`.

The three nodes share one host: their VIP is one address and port (HAProxy binds with SO_REUSEPORT, so the three
listen side by side), their agent ports differ (settings.health.agent_port is node-local in a cluster), their
management APIs are off (node-local too). One module-wide cluster, started once: the tests run in order.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from pacslb.engines.haproxy.runtime import RuntimeAPI
from pacslb.paths import StatePaths
from support.appliance import Appliance
from support.net import free_port, http_get, loopback_host
from support.processes import pid_gone
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.slow]

NODES = ("n1", "n2", "n3")
# a /24 of its own (the e2e conftest's loopback_host numbers 2..249 for real servers): nodes at .231-.233
NODE_OCTETS = {"n1": 231, "n2": 232, "n3": 233}


def _privileged_ports(count: int) -> list[int]:
    """Free TCP ports below 1024 on 127.0.0.1 (the agent ports: pacslb warns about unprivileged ones)."""
    found: list[int] = []
    candidates = list(range(600, 1000))
    random.shuffle(candidates)
    for port in candidates:
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        found.append(port)
        if len(found) == count:
            return found
    raise AssertionError("not enough free ports below 1024")


def node_config(node: str, name: str, hosts: dict[str, str], etcd_ports: tuple[int, int], agent_port: int, vip: str,
                vip_port: int, server: TinyHTTPServer, weight: int = 1) -> str:  # fmt: skip
    nodes = ", ".join(f"{{name: {n}, address: {hosts[n]}}}" for n in NODES)
    return "\n".join([
        "version: 1",
        f"settings: {{max_connections: 2000, health: {{agent_port: {agent_port}}}, management: {{enabled: false}}}}",
        "cluster:",
        f"  name: {name}",
        f"  node: {node}",
        f"  nodes: [{nodes}]",
        f"  etcd: {{client_port: {etcd_ports[0]}, peer_port: {etcd_ports[1]}, lease: 3s}}",
        f"  bgp: {{local_as: 65010, neighbors: [{{address: {loopback_host(250)}, remote_as: 65000}}]}}",
        "virtual_services:",
        "  - name: web",
        "    mode: layer7-http",
        f"    listen: [{{address: {vip}, port: {vip_port}}}]",
        "    health_check: {type: connect, interval: 1s, timeout: 500ms}",
        "    persistence: {type: source-ip}",
        "    real_servers:",
        f"      - {{name: rs1, address: {server.host}, port: {server.port}, weight: {weight}}}",
    ]) + "\n"  # fmt: skip


class Cluster:
    def __init__(self, workdir: Path, server: TinyHTTPServer) -> None:
        self.hosts = {n: loopback_host(NODE_OCTETS[n]) for n in NODES}
        self.name = f"t{random.randint(1000, 9999)}"
        first = self.hosts["n1"]
        self.etcd_ports = (free_port(first), free_port(first))
        agent_ports = _privileged_ports(3)
        self.vip, self.vip_port = loopback_host(230), free_port(loopback_host(230))
        self.server = server
        self.nodes: dict[str, Appliance] = {}
        self.configs: dict[str, str] = {}
        for node, agent_port in zip(NODES, agent_ports, strict=True):
            text = node_config(node, self.name, self.hosts, self.etcd_ports, agent_port, self.vip, self.vip_port, server)
            self.configs[node] = text
            base = workdir / node
            base.mkdir(parents=True)
            (base / "pacslb.yaml").write_text(text)
            state = Path(tempfile.mkdtemp(prefix="pacslb-cl-", dir="/tmp")) / "state"
            self.nodes[node] = Appliance(state_dir=state, config=base / "pacslb.yaml", log=base / "pacslb-up.log")

    def status(self, node: str = "n1") -> dict:
        """GET /api/v1/cluster of `node`'s controller (what `pacslb cluster status --json` prints)."""
        response = self.nodes[node].api("GET", "/cluster", timeout=15)
        assert response.status_code == 200, response.text
        return response.json()

    def set_weight(self, node: str, weight: int) -> httpx.Response:
        """The real server's weight through `node`'s controller API: a change of the shared configuration."""
        return self.nodes[node].api("POST", "/virtual-services/web/real-servers/rs1/weight", timeout=60,
                                    json={"weight": weight})  # fmt: skip

    def revisions(self, node: str = "n1") -> dict[str, int | None]:
        found = self.status(node)
        return {n["name"]: n["revision"] for n in found["nodes"]}

    def apply_weight(self, node: str, weight: int) -> subprocess.CompletedProcess:
        """`pacslb apply` on `node` of its own file with the real server's weight changed (a shared change)."""
        appliance = self.nodes[node]
        text = self.configs[node].replace("weight: 1}", f"weight: {weight}}}")
        changed = appliance.config.with_name(f"pacslb-w{weight}.yaml")
        changed.write_text(text)
        return appliance.cli("apply", "-c", str(changed), "--json", timeout=60)

    def runs_everywhere(self, revision: int, nodes=NODES, via: str = "n1") -> dict | None:
        found = self.status(via)
        by_name = {n["name"]: n for n in found["nodes"]}
        ok = found["latest_revision"] == revision and all(by_name[n]["revision"] == revision for n in nodes)
        return found if ok else None

    def etcd_pid(self, node: str) -> int:
        return int(StatePaths(self.nodes[node].state_dir).root.joinpath("etcd", "etcd.pid").read_text())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: `make deps` installs Debian's etcd-server")
    workdir = tmp_path_factory.mktemp("cluster")
    server = TinyHTTPServer("rs1", loopback_host(229)).start()
    made = Cluster(workdir, server)
    try:
        for appliance in made.nodes.values():
            appliance.up(wait=False)
        for appliance in made.nodes.values():
            appliance.wait_healthy(timeout=180)
        wait_until(lambda: made.runs_everywhere(1), 60, 0.2, "every node to run cluster revision 1")
        yield made
    finally:
        stop_nodes(list(made.nodes.values()))
        server.stop()


def stop_nodes(appliances: list[Appliance]) -> None:
    """Teardown, also after a failure: the nodes stop side by side (each `pacslb stop` is a process of its own),
    then whatever is left is killed by its PID and the state directories removed."""

    def stop(appliance: Appliance) -> None:
        try:
            appliance.remember_pids()
            appliance.stop(timeout=15)
        except Exception:  # noqa: BLE001 - teardown goes on to the kill
            pass

    stoppers = [threading.Thread(target=stop, args=(a,)) for a in appliances]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join(timeout=60)
    for appliance in appliances:
        left = appliance.kill_leftovers()
        if left:
            print(f"teardown killed leftover processes {left} of {appliance.state_dir}", file=sys.stderr)
        shutil.rmtree(appliance.state_dir.parent, ignore_errors=True)


def _answer(done: subprocess.CompletedProcess) -> dict:
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"no JSON answer ({done.returncode}): {done.stdout}\n{done.stderr}") from None


def test_a_change_on_one_node_reaches_all_three(cluster: Cluster) -> None:
    found = cluster.status("n2")
    assert found["configured"] and found["etcd"]["reachable"], found
    assert {n["name"] for n in found["nodes"] if n["online"] and n["healthy"]} == set(NODES)
    done = cluster.apply_weight("n2", 7)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _answer(done)["outcome"] == "applied"
    wait_until(lambda: cluster.runs_everywhere(2), 30, 0.2, "every node to run cluster revision 2")
    for node in NODES:  # each applied it in its own transaction, recorded in its own store
        status = cluster.nodes[node].api_status()
        rs = Appliance.server(status, "web", "rs1")
        assert rs["weight"] == 7, (node, rs)
    # pacslb cluster status, as a person reads it: every node, its address, online, the revision it runs
    text = cluster.nodes["n3"].cli("cluster", "status").stdout
    for node in NODES:
        assert cluster.hosts[node] in text and node in text
    assert "latest revision 2" in text


def test_persistence_entries_reach_every_node(cluster: Cluster) -> None:
    """HAProxy's peers name every node of the cluster: a client's source-IP entry, made by whichever node took its
    request (the three share the VIP here by SO_REUSEPORT, as routers share it by ECMP), is in every node's table."""

    def entries(node: str) -> int:
        text = RuntimeAPI(StatePaths(cluster.nodes[node].state_dir).haproxy_admin_socket).command("show table web")
        return int(text.split("used:", 1)[1].split()[0]) if "used:" in text else 0

    assert http_get(cluster.vip, cluster.vip_port, timeout=10)[0] == 200
    for node in NODES:
        wait_until(lambda node=node: entries(node) >= 1, 20, 0.2, f"the client's persistence entry on {node}")


def test_two_changes_at_once_one_wins_the_other_is_a_conflict(cluster: Cluster) -> None:
    """Two threads released together send a change to n1 and to n3: both nodes run the same revision and compare
    against it. Should the two not overlap (the second arrives after the first reached it: both applied, the second
    on top of the first), the round is played again, at most 3 times; no overlap in 3 rounds fails the test."""
    rounds = []
    for round_ in range(3):
        before = cluster.status()["latest_revision"]
        wait_until(lambda: cluster.runs_everywhere(before), 30, 0.1, "every node to run the same revision")  # noqa: B023
        barrier = threading.Barrier(2)
        answers: dict[str, httpx.Response] = {}

        def change(node: str, weight: int, barrier: threading.Barrier, answers: dict[str, httpx.Response]) -> None:
            barrier.wait(timeout=10)
            answers[node] = cluster.set_weight(node, weight)

        pairs = (("n1", 11), ("n3", 13))
        threads = [threading.Thread(target=change, args=(n, w + 10 * round_, barrier, answers)) for n, w in pairs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=70)
        codes = sorted(r.status_code for r in answers.values())
        rounds.append({n: (r.status_code, r.json().get("outcome"), r.json().get("message")) for n, r in answers.items()})
        if codes == [200, 200]:
            wait_until(lambda: cluster.runs_everywhere(before + 2), 30, 0.1, "both changes everywhere")  # noqa: B023
            continue
        assert codes == [200, 409], rounds
        loser = next(r.json() for r in answers.values() if r.status_code == 409)
        assert loser["outcome"] == "conflict" and "another node's change landed first" in loser["message"], loser
        # exactly one revision more, and every node runs the winner's
        found = wait_until(lambda: cluster.runs_everywhere(before + 1), 30, 0.1, "every node to run the winner's revision")  # noqa: B023
        winner = next(n for n, r in answers.items() if r.status_code == 200)
        weight = {"n1": 11, "n3": 13}[winner] + 10 * round_
        for node in NODES:
            assert Appliance.server(cluster.nodes[node].api_status(), "web", "rs1")["weight"] == weight, (node, found)
        return
    pytest.fail(f"the two changes never overlapped in 3 rounds: {rounds}")


def test_drain_and_undrain_show_in_cluster_status(cluster: Cluster) -> None:
    done = cluster.nodes["n1"].cli("cluster", "drain", "n2")
    assert done.returncode == 0, done.stderr
    by_name = lambda found: {n["name"]: n for n in found["nodes"]}  # noqa: E731 - a one-line view
    wait_until(lambda: by_name(cluster.status("n3"))["n2"]["drained"], 15, 0.2, "n2 to show drained")
    # n2 itself saw its drain key and reports it in its member key
    wait_until(lambda: cluster.status("n2")["drained"], 15, 0.2, "n2 to know it is drained")
    assert "yes" in [line for line in cluster.nodes["n1"].cli("cluster", "status").stdout.splitlines() if " n2 " in line][0]
    assert cluster.nodes["n1"].cli("cluster", "drain", "nope").returncode == 1  # no such node: said, nothing written
    done = cluster.nodes["n3"].cli("cluster", "undrain", "n2")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: not cluster.status("n2")["drained"], 15, 0.2, "n2 to be back from drain")
    assert not by_name(cluster.status("n1"))["n2"]["drained"]


def test_one_etcd_member_killed_changes_still_go_through(cluster: Cluster) -> None:
    before = cluster.status()["latest_revision"]
    pid = cluster.etcd_pid("n3")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: pid_gone(pid), 10, 0.05, "the killed etcd member to be gone")
    t0 = time.monotonic()
    done = cluster.apply_weight("n1", 21)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _answer(done)["outcome"] == "applied"
    # every node applies it: n3 too, its client reaching the two members left
    wait_until(lambda: cluster.runs_everywhere(before + 1), 30, 0.2, "every node to apply the change with 2 of 3 members")
    print(f"change with one etcd member killed: applied everywhere in {time.monotonic() - t0:.2f}s")
    # n3's supervisor starts its member again; it catches up from the others
    wait_until(lambda: cluster.etcd_pid("n3") != pid and not pid_gone(cluster.etcd_pid("n3")), 30, 0.1, "etcd on n3 again")


def test_without_quorum_changes_are_refused_and_every_node_keeps_serving(cluster: Cluster) -> None:
    """Two of the three members frozen (SIGSTOP: they hold their ports and answer nothing): a change is refused with
    etcd's trouble named and nothing changed; the nodes keep serving the revision they run. Thawed, changes go on."""
    before = cluster.status()["latest_revision"]
    weight = Appliance.server(cluster.nodes["n1"].api_status(), "web", "rs1")["weight"]
    frozen = [cluster.etcd_pid("n2"), cluster.etcd_pid("n3")]
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        refused = cluster.set_weight("n1", 41)
        took = time.monotonic() - t0
        body = refused.json()
        assert refused.status_code == 409 and body["outcome"] == "refused", body
        # the live member took the proposal and could not commit it: the answer cannot say it never happens
        assert "the cluster's etcd did not confirm the change in time" in body["message"], body["message"]
        assert "nothing was changed on this node" in body["message"]
        print(f"a change without quorum was refused in {took:.2f}s")
        for node in NODES:  # nothing changed anywhere, and every node serves
            assert Appliance.server(cluster.nodes[node].api_status(), "web", "rs1")["weight"] == weight
            assert cluster.nodes[node].api("GET", "/health").status_code == 200
        assert http_get(cluster.vip, cluster.vip_port)[0] == 200
        assert cluster.status("n2")["etcd"]["reachable"] is False
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)

    def settled() -> dict | None:  # quorum again: the proposal committed (n1 still leads) or was dropped; all agree
        found = cluster.status()
        latest = found["latest_revision"] if found["etcd"]["reachable"] else None
        return found if latest in (before, before + 1) and cluster.runs_everywhere(latest) else None

    latest = wait_until(settled, 30, 0.2, "every node to run the same revision after the thaw")["latest_revision"]
    expected = 41 if latest == before + 1 else weight
    print(f"the unconfirmed change {'was committed after the thaw' if expected == 41 else 'was dropped'}")
    for node in NODES:
        assert Appliance.server(cluster.nodes[node].api_status(), "web", "rs1")["weight"] == expected
    answer = cluster.set_weight("n1", 42)
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text
    wait_until(lambda: cluster.runs_everywhere(latest + 1), 30, 0.2, "every node to run the change made after the thaw")


def test_a_restarted_node_applies_the_latest_revision(cluster: Cluster) -> None:
    """n3's controller killed with SIGKILL leaves its etcd member serving (fail static); `pacslb stop` without a
    controller stops it by PID; a change made meanwhile reaches n3 when it starts again."""
    n3 = cluster.nodes["n3"]
    etcd = cluster.etcd_pid("n3")
    n3.kill9()
    assert not pid_gone(etcd)
    done = n3.stop(timeout=20)
    assert done.returncode == 0 and f"stopping etcd (PID {etcd})" in done.stderr, done.stdout + done.stderr
    assert pid_gone(etcd)
    before = cluster.status()["latest_revision"]
    done = cluster.apply_weight("n2", 31)  # n3 is away: 2 of 3 etcd members still make a quorum
    assert done.returncode == 0, done.stdout + done.stderr
    wait_until(lambda: cluster.runs_everywhere(before + 1, ("n1", "n2")), 30, 0.2, "n1 and n2 to run the change")
    # killed, n3 could not revoke its lease: its member key goes when the lease (3 s here) runs out
    online = lambda: {n["name"]: n["online"] for n in cluster.status()["nodes"]}["n3"]  # noqa: E731 - a one-line view
    wait_until(lambda: online() is False, 15, 0.2, "n3's member key to expire with its lease")
    n3.up(wait=False)
    n3.wait_healthy(timeout=180)
    wait_until(lambda: cluster.runs_everywhere(before + 1), 30, 0.2, "the restarted n3 to run the latest revision")
    assert Appliance.server(n3.api_status(), "web", "rs1")["weight"] == 31


def test_a_member_whose_data_was_lost_rejoins_with_pacslb_cluster_rejoin(cluster: Cluster) -> None:
    """n3 stopped, its etcd data directory wiped, started again: its member cannot serve on an empty data directory
    (etcd still counts the old one). `pacslb cluster rejoin` on n3 removes and adds its member through n1 and n2 and
    starts it with `initial-cluster-state: existing`: `pacslb cluster members` shows three started members, and the
    cluster's keys, written before, are read through n3's member alone."""
    n3 = cluster.nodes["n3"]
    assert n3.stop(timeout=20).returncode == 0
    data = StatePaths(n3.state_dir).etcd_dir / "data"
    shutil.rmtree(data)
    n3.up(wait=False)
    n3.wait_healthy(timeout=180)  # the controller starts without its member: etcd refused it on an empty directory
    waiting = n3.cli("cluster", "members")
    assert waiting.returncode == 0 and "run `pacslb cluster rejoin`" in waiting.stdout, waiting.stdout + waiting.stderr
    t0 = time.monotonic()
    done = n3.cli("cluster", "rejoin", timeout=150)
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rejoined the cluster's etcd as member" in done.stdout and "caught up" in done.stdout, done.stdout
    print(f"pacslb cluster rejoin took {took:.2f}s: {done.stdout.strip()}")
    listed = json.loads(n3.cli("cluster", "members", "--json").stdout)
    assert sorted((m["name"], m["started"]) for m in listed["members"]) == [(n, True) for n in NODES], listed
    # what n1 wrote before, read through n3's member alone (a linearizable read: n3's member is in the quorum)
    answer = httpx.post(f"http://{cluster.hosts['n3']}:{cluster.etcd_ports[0]}/v3/kv/range", timeout=10,
                        json={"key": base64.b64encode(f"/pacslb/{cluster.name}/revision".encode()).decode()})  # fmt: skip
    kvs = answer.json().get("kvs") or []
    assert kvs and int(base64.b64decode(kvs[0]["value"])) == cluster.status()["latest_revision"], answer.text
    # a second rejoin of the healthy member is refused, nothing changed
    again = n3.cli("cluster", "rejoin", timeout=60)
    assert again.returncode == 1 and "is healthy" in again.stderr, again.stdout + again.stderr
    # and the cluster goes on: a change reaches all three
    before = cluster.status()["latest_revision"]
    assert cluster.apply_weight("n1", 51).returncode == 0
    wait_until(lambda: cluster.runs_everywhere(before + 1), 30, 0.2, "every node to run the change after the rejoin")
