"""The etcd member's configuration file: golden files (tests/golden/etcd/), and what they must hold."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from pacslb.engines.etcd.render import client_urls, initial_cluster, render_conf
from pacslb.model import load_text

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "etcd"
CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))
DATA = PurePosixPath("/var/lib/pacslb/etcd/data")


def _cluster(case: Path):
    loaded = load_text((case / "config.yaml").read_text())  # the structure: the renderer reads no file
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded.config.cluster


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, update_golden: bool) -> None:
    text = render_conf(_cluster(case), DATA)
    expected = case / "etcd.conf.yml"
    if update_golden:
        expected.write_text(text)
        return
    assert expected.exists(), f"{expected} is missing: run `pytest --update-golden` and review the new file"
    assert text == expected.read_text(), f"{case.name}: rendering differs (pytest --update-golden)"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_file_is_what_etcd_reads(case: Path) -> None:
    """etcd's YAML: this member, on its own address only, the gateway on, the data in the state directory."""
    cluster = _cluster(case)
    conf = yaml.safe_load(render_conf(cluster, DATA))
    node = cluster.this_node
    assert conf["name"] == node.name and conf["data-dir"] == str(DATA)
    assert str(node.address) in conf["listen-client-urls"] and "0.0.0.0" not in str(conf) and "[::]" not in str(conf)
    assert conf["enable-grpc-gateway"] is True  # a config file's default is false: the client would meet 404s
    assert conf["initial-cluster-token"] == f"pacslb-{cluster.name}"
    members = dict(part.split("=", 1) for part in conf["initial-cluster"].split(","))
    assert sorted(members) == sorted(n.name for n in cluster.etcd_members)
    scheme = "https://" if cluster.etcd.tls is not None else "http://"
    urls = [conf[k] for k in ("listen-peer-urls", "initial-advertise-peer-urls", "listen-client-urls", "advertise-client-urls")]
    assert all(u.startswith(scheme) for u in urls + list(members.values()))
    for section in ("client-transport-security", "peer-transport-security"):
        assert (section in conf) == (cluster.etcd.tls is not None)


def test_tls_serves_both_ports_with_the_nodes_certificate_and_asks_every_client_and_peer_for_one() -> None:
    """etcd 3.4's --cert-file, --key-file, --trusted-ca-file, --client-cert-auth and the --peer- twins, as its
    configuration file spells them."""
    cluster = _cluster(GOLDEN_DIR / "003_tls")
    conf = yaml.safe_load(render_conf(cluster, DATA))
    expected = {"cert-file": "/etc/pacslb/cluster/etcd.pem", "key-file": "/etc/pacslb/cluster/etcd.key",
                "trusted-ca-file": "/etc/pacslb/cluster/ca.pem", "client-cert-auth": True, "auto-tls": False}  # fmt: skip
    assert conf["client-transport-security"] == expected and conf["peer-transport-security"] == expected
    assert conf["listen-client-urls"] == "https://10.0.1.11:2379" and conf["listen-peer-urls"] == "https://10.0.1.11:2380"
    assert initial_cluster(cluster).split(",")[1] == "lb2=https://10.0.1.12:2380"
    assert client_urls(cluster)[0] == "https://10.0.1.11:2379"


def test_relative_tls_paths_start_in_the_configuration_files_folder() -> None:
    text = (GOLDEN_DIR / "003_tls" / "config.yaml").read_text().replace("/etc/pacslb/cluster/", "cluster-pki/")
    cluster = load_text(text).config.cluster
    conf = yaml.safe_load(render_conf(cluster, DATA, PurePosixPath("/srv/pacslb")))
    assert conf["peer-transport-security"]["key-file"] == "/srv/pacslb/cluster-pki/etcd.key"
    assert conf["client-transport-security"]["trusted-ca-file"] == "/srv/pacslb/cluster-pki/ca.pem"


def test_only_members_are_in_initial_cluster_and_urls_put_this_node_first() -> None:
    cluster = _cluster(GOLDEN_DIR / "001_three_members")
    assert "lb4" not in initial_cluster(cluster)
    assert client_urls(cluster) == ["http://10.0.1.12:2379", "http://10.0.1.11:2379", "http://10.0.1.13:2379"]


def test_ipv6_addresses_are_bracketed() -> None:
    cluster = _cluster(GOLDEN_DIR / "002_ipv6_ports")
    assert client_urls(cluster) == ["http://[2001:db8::a]:12379"]


def test_a_node_that_is_no_member_runs_no_etcd() -> None:
    from pacslb.engines.etcd.engine import EtcdEngine
    from pacslb.paths import StatePaths

    text = (GOLDEN_DIR / "001_three_members" / "config.yaml").read_text().replace("node: lb2", "node: lb4")
    loaded = load_text(text)
    assert loaded.ok
    import asyncio

    engine = EtcdEngine(StatePaths(Path("/nonexistent")), asyncio.Lock())
    assert not engine.wanted(loaded.config)
    assert not engine.wanted(load_text("version: 1\n").config)
