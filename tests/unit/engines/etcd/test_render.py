"""The etcd member's configuration file: golden files (tests/golden/etcd/), and what they must hold."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from pacslb.engines.etcd.render import client_urls, initial_cluster, render_conf
from pacslb.model import load_file, load_text

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "etcd"
CASES = sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and re.match(r"^\d{3}_", p.name))
DATA = PurePosixPath("/var/lib/pacslb/etcd/data")


def _cluster(case: Path):
    loaded = load_file(case / "config.yaml")
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
