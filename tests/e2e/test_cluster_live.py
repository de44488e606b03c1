"""A change of the `cluster` section on a running node, for real (issue 20; cluster/live.py): one `pacslb up` cluster
node with its own etcd member and BIRD, changed with `pacslb apply`.

A second node listed and a longer lease: applied; the cluster's state lists the new node at once and its
member key moves to a lease of the new TTL in etcd (asked of etcd itself). Another `cluster.node`, and the section
removed: refused with the field and the restart, and nothing changed (the revision, the node, etcd's keys).
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from test_cluster_etcd import _privileged_ports

from support.appliance import Appliance, new_state_dir
from support.net import free_port, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.slow]

# a /24 of its own per session (support/net.py): this module's nodes at .221-.222, its VIP .220, its real server .219
NODE_OCTETS = {"n1": 221, "n2": 222}


class Node:
    def __init__(self, workdir: Path, server: TinyHTTPServer) -> None:
        self.hosts = {n: loopback_host(o) for n, o in NODE_OCTETS.items()}
        self.name = f"l{random.randint(1000, 9999)}"
        self.client_port, self.peer_port = free_port(self.hosts["n1"]), free_port(self.hosts["n1"])
        self.agent_port = _privileged_ports(1)[0]
        self.vip, self.vip_port = loopback_host(220), free_port(loopback_host(220))
        self.server = server
        self.workdir = workdir
        (workdir / "pacslb.yaml").write_text(self.text())
        state = new_state_dir("pacslb-cl-")  # short: HAProxy's and BIRD's Unix sockets
        self.appliance = Appliance(state_dir=state, config=workdir / "pacslb.yaml", log=workdir / "pacslb-up.log")

    def text(self, node: str = "n1", nodes: tuple[str, ...] = ("n1",), lease: str = "3s", cluster: bool = True) -> str:
        listed = ", ".join(f"{{name: {n}, address: {self.hosts[n]}, etcd_member: {str(n == 'n1').lower()}}}" for n in nodes)
        section = [
            "cluster:",
            f"  name: {self.name}",
            f"  node: {node}",
            f"  nodes: [{listed}]",
            f"  etcd: {{client_port: {self.client_port}, peer_port: {self.peer_port}, lease: {lease}}}",
            f"  bgp: {{local_as: 65010, neighbors: [{{address: {loopback_host(250)}, remote_as: 65000}}]}}",
        ]  # fmt: skip
        return "\n".join([
            "version: 1",
            f"settings: {{health: {{agent_port: {self.agent_port}}}, management: {{enabled: false}}}}",
            *(section if cluster else []),
            "virtual_services:",
            "  - name: web",
            "    mode: layer7-http",
            f"    listen: [{{address: {self.vip}, port: {self.vip_port}}}]",
            "    health_check: {type: connect, interval: 1s, timeout: 500ms}",
            "    real_servers:",
            f"      - {{name: rs1, address: {self.server.host}, port: {self.server.port}}}",
        ]) + "\n"  # fmt: skip

    def apply(self, label: str, **kwargs) -> tuple[int, dict]:
        """`pacslb apply --json` of a file with the section changed as `kwargs` say; its exit status and answer."""
        changed = self.workdir / f"pacslb-{label}.yaml"
        changed.write_text(self.text(**kwargs))
        done = self.appliance.cli("apply", "-c", str(changed), "--json", timeout=90)
        try:
            return done.returncode, json.loads(done.stdout)
        except ValueError:
            raise AssertionError(f"no JSON answer ({done.returncode}): {done.stdout}\n{done.stderr}") from None

    def status(self) -> dict:
        response = self.appliance.api("GET", "/cluster", timeout=15)
        assert response.status_code == 200, response.text
        return response.json()

    def etcd(self, path: str, body: dict) -> dict:
        """A call to this node's etcd member itself (its JSON gateway), not through pacslb."""
        response = httpx.post(f"http://{self.hosts['n1']}:{self.client_port}{path}", json=body, timeout=5)
        response.raise_for_status()
        return response.json()

    def member_lease_ttl(self) -> int | None:
        """The granted TTL of the lease n1's member key is bound to, as etcd says (None: no member key)."""
        key = base64.b64encode(f"/pacslb/{self.name}/members/n1".encode()).decode()
        kvs = self.etcd("/v3/kv/range", {"key": key}).get("kvs") or []
        if not kvs or not kvs[0].get("lease"):
            return None
        return int(self.etcd("/v3/lease/timetolive", {"ID": kvs[0]["lease"]}).get("grantedTTL") or 0)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: `make deps` installs Debian's etcd-server")
    workdir = tmp_path_factory.mktemp("clusterlive")
    server = TinyHTTPServer("rs1", loopback_host(219)).start()
    made = Node(workdir, server)
    try:
        made.appliance.up(wait=False)
        made.appliance.wait_healthy(timeout=180)
        wait_until(lambda: made.status()["runs"] == 1 and made.member_lease_ttl() == 3, 60, 0.2, "n1 on cluster revision 1")
        yield made
    finally:
        try:
            made.appliance.remember_pids()
            made.appliance.stop(timeout=30)
        except Exception:  # noqa: BLE001 - teardown goes on to the kill by PID
            pass
        left = made.appliance.kill_leftovers()
        if left:
            print(f"teardown killed leftover processes {left} of {made.appliance.state_dir}", file=sys.stderr)
        shutil.rmtree(made.appliance.state_dir.parent, ignore_errors=True)
        server.stop()


def test_a_second_node_and_a_longer_lease_are_taken_by_the_running_node(node: Node) -> None:
    code, answer = node.apply("n2", nodes=("n1", "n2"), lease="7s")
    assert code == 0 and answer["outcome"] == "applied", answer
    found = node.status()  # the cluster's state took the section with the change: no wait
    assert [(n["name"], n["address"]) for n in found["nodes"]] == [("n1", node.hosts["n1"]), ("n2", node.hosts["n2"])]
    by_name = {n["name"]: n for n in found["nodes"]}
    assert by_name["n2"]["online"] is False and by_name["n1"]["revision"] == 1  # n2 is listed, not running
    # etcd itself: n1's member key is on a lease of 7 s now (etcd cannot change a lease's TTL: a new lease)
    wait_until(lambda: node.member_lease_ttl() == 7, 20, 0.2, "n1's member key on a lease of 7 s")
    assert found["etcd"]["reachable"] and found["latest_revision"] == 1  # node-local: no cluster revision
    text = node.appliance.cli("cluster", "status").stdout
    assert node.hosts["n2"] in text and "n2" in text


def test_another_node_name_and_a_removed_section_are_refused_and_change_nothing(node: Node) -> None:
    before = node.appliance.cli("revisions", "--json").stdout
    code, answer = node.apply("renamed", node="n2", nodes=("n1", "n2"), lease="7s")
    assert code != 0 and answer["outcome"] == "refused", answer
    assert answer["message"].startswith("cluster.node: node n1 -> n2: ") and "`pacslb stop`" in answer["message"]
    code, answer = node.apply("single", cluster=False)
    assert code != 0 and answer["outcome"] == "refused", answer
    assert answer["message"].startswith("cluster: is missing, but this node is node n1 of cluster ")
    assert "`pacslb up`" in answer["message"] and answer["message"].endswith("nothing was changed")
    # nothing changed: the same revisions, the same node of the same cluster, its member key still there
    assert node.appliance.cli("revisions", "--json").stdout == before
    found = node.status()
    assert found["node"] == "n1" and found["cluster"] == node.name and node.member_lease_ttl() == 7
