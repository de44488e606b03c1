"""The cluster's state in etcd over TLS, for real: the three `pacslb up` nodes of test_cluster_etcd.py, each with
`cluster.etcd.tls` naming the files `pacslb cluster pki init` made (the command itself), one change made on one
node reaches all three through the members' https peers and the controllers' certificate-authenticated clients.
One variant of the plain-HTTP module, not a second run of all of its tests: the start and one change.

On lo every connection comes from 127.0.0.1 and etcd takes a peer only from an address its certificate names, so
the certificates name it as well (`--also n1=127.0.0.1 ...`, what a node connecting from a second address does).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from test_cluster_etcd import NODES, Cluster, _answer, stop_nodes

from pacslb.model import load_text
from support.appliance import Appliance
from support.net import loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.slow]

TLS = "tls: {ca: etcd-tls/ca.pem, cert: etcd-tls/etcd.pem, key: etcd-tls/etcd.key}"


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: `make deps` installs Debian's etcd-server")
    workdir = tmp_path_factory.mktemp("cluster-tls")
    server = TinyHTTPServer("rs1", loopback_host(229)).start()
    made = Cluster(workdir, server)
    try:
        pki = workdir / "pki"
        also = [arg for n in NODES for arg in ("--also", f"{n}=127.0.0.1")]
        command = [sys.executable, "-m", "pacslb", "cluster", "pki", "init", "--dir", str(pki), "-c",
                   str(made.nodes["n1"].config), *also]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
        for node, appliance in made.nodes.items():
            shutil.copytree(pki / node, appliance.config.parent / "etcd-tls")
            text = made.configs[node].replace("lease: 3s}", f"lease: 3s, {TLS}}}")
            assert load_text(text).config.cluster.etcd.tls is not None
            made.configs[node] = text
            appliance.config.write_text(text)
        for appliance in made.nodes.values():
            appliance.up(wait=False)
        for appliance in made.nodes.values():
            appliance.wait_healthy(timeout=180)
        wait_until(lambda: made.runs_everywhere(1), 60, 0.2, "every node to run cluster revision 1 over TLS")
        yield made
    finally:
        stop_nodes(list(made.nodes.values()))
        server.stop()


def test_a_change_on_one_node_reaches_all_three_over_tls(tls_cluster: Cluster) -> None:
    for node in NODES:  # each member runs on https and asks for a certificate
        conf = (tls_cluster.nodes[node].state_dir / "etcd" / "etcd.conf.yml").read_text()
        assert "listen-peer-urls: 'https://" in conf and conf.count("client-cert-auth: true") == 2, conf
    found = tls_cluster.status("n2")
    assert found["etcd"]["reachable"] and all(u.startswith("https://") for u in found["etcd"]["endpoints"]), found
    done = tls_cluster.apply_weight("n2", 7)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _answer(done)["outcome"] == "applied"
    wait_until(lambda: tls_cluster.runs_everywhere(2), 30, 0.2, "every node to run cluster revision 2")
    for node in NODES:
        assert Appliance.server(tls_cluster.nodes[node].api_status(), "web", "rs1")["weight"] == 7, node
