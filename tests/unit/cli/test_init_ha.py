"""`pacslb init --ha primary|secondary`: one node of an HA pair, the two files alike but for what must differ."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pacslb.cli import app
from pacslb.ha.peer_link import ensure_node_certificate
from pacslb.model import load_file
from pacslb.templates.pair import PairParams

runner = CliRunner()
PAIR = ["--vip-address", "10.0.0.10", "--interface", "eth0", "--interface-network", "10.0.0.0/24"]


def _init(output: Path, *args: str):
    return runner.invoke(app, ["init", "-t", "true-pacs", "-o", str(output), *args])


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    primary, secondary = tmp_path / "a" / "pacslb.yaml", tmp_path / "b" / "pacslb.yaml"
    result = _init(primary, *PAIR, "--ha", "primary", "--node-address", "10.0.0.2", "--peer", "10.0.0.3")
    assert result.exit_code == 0, result.output
    result = _init(secondary, *PAIR, "--ha", "secondary", "--node-address", "10.0.0.3", "--peer", "10.0.0.2")
    assert result.exit_code == 0, result.output
    return primary, secondary


def test_the_two_nodes_files_differ_only_in_role_and_addresses(tmp_path: Path):
    primary, secondary = _pair(tmp_path)

    def settings(path: Path) -> list[str]:  # the YAML without its comments
        return [line.split("  #")[0].rstrip() for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]

    changed = [
        line
        for line in difflib.unified_diff(settings(primary), settings(secondary), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert sorted(changed) == [
        "+  address: 10.0.0.3", "+  peer_address: 10.0.0.2", "+  role: secondary",
        "-  address: 10.0.0.2", "-  peer_address: 10.0.0.3", "-  role: primary",
    ], changed  # fmt: skip


def test_the_files_validate_once_each_node_has_the_others_certificate(tmp_path: Path):
    primary, secondary = _pair(tmp_path)
    for config in (primary, secondary):
        loaded = load_file(config)
        assert not loaded.ok
        assert [p.path for p in loaded.problems if p.severity == "error"] == ["ha.sync.peer_certificate"]
    # what `pacslb ha pair` prints on each node, copied to the other as ha-peer.pem
    for config, other in ((primary, secondary), (secondary, primary)):
        state = other.parent / "state"
        cert = ensure_node_certificate(state, "pacslb HA node", ["10.0.0.2" if other == primary else "10.0.0.3"])
        (config.parent / "ha-peer.pem").write_bytes(cert.read_bytes())
    for config, role, address, peer in (
        (primary, "primary", "10.0.0.2", "10.0.0.3"),
        (secondary, "secondary", "10.0.0.3", "10.0.0.2"),
    ):
        loaded = load_file(config)
        assert loaded.ok, [str(p) for p in loaded.problems]
        ha = loaded.config.ha
        assert (ha.role, ha.address, ha.peer_address, ha.interface) == (role, address, peer, "eth0")
        assert ha.virtual_router_id == 51 and ha.interface_network == "10.0.0.0/24"
        assert ha.sync.peer_certificate == "ha-peer.pem"


def test_init_says_what_to_do_on_both_nodes(tmp_path: Path):
    result = _init(tmp_path / "pacslb.yaml", *PAIR, "--ha", "primary", "--node-address", "10.0.0.2", "--peer", "10.0.0.3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "pacslb ha pair --address 10.0.0.2" in out
    assert "on the secondary node: pacslb init -t true-pacs --ha secondary --node-address 10.0.0.3 --peer 10.0.0.2" in out
    assert "--virtual-router-id 51" in out and "IP protocol 112" in out
    assert f"copy its certificate (its `pacslb ha pair` output) to {tmp_path / 'ha-peer.pem'}" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ha", "primary", "--peer", "10.0.0.3"], "--ha primary needs --node-address, --interface"),
        (["--ha", "leader", "--node-address", "10.0.0.2", "--peer", "10.0.0.3", "--interface", "eth0"],
         "error: --ha: 'leader' is not a role: write --ha primary or --ha secondary"),
        (["--peer", "10.0.0.3"], "--peer describe an HA pair: add --ha primary or --ha secondary"),
        (["--ha", "primary", "--node-address", "10.0.0.2", "--peer", "10.0.0.2", "--interface", "eth0"],
         "error: --peer: 10.0.0.2 is this node's own address (--node-address)"),
        (["--ha", "primary", "--node-address", "lb-a", "--peer", "10.0.0.3", "--interface", "eth0"],
         "error: --node-address: 'lb-a' is not an IP address"),
        (["--ha", "primary", "--node-address", "10.0.0.2", "--peer", "fd00::3", "--interface", "eth0"],
         "must be of the same family"),
        (["--ha", "primary", "--node-address", "10.0.0.2", "--peer", "10.0.0.3", "--interface", "eth0 1"],
         "error: --interface: 'eth0 1' is not an interface name"),
        (["--ha", "primary", "--node-address", "10.0.0.2", "--peer", "10.0.0.3", "--interface", "eth0",
          "--interface-network", "10.0.0.0/24"], "error: --vip-address: 192.0.2.10 is outside --interface-network 10.0.0.0/24"),
        (["--ha", "primary", "--node-address", "10.0.0.2", "--peer", "10.0.0.3", "--interface", "eth0",
          "--vip-address", "10.0.0.2"], "error: --node-address: 10.0.0.2 is the VIP address"),
        (["--ha", "primary", "--node-address", "10.0.0.2", "--peer", "10.0.0.3", "--interface", "eth0",
          "--virtual-router-id", "300"], "error: --virtual-router-id: 300 is out of range: 1 to 255"),
        (["--ha", "primary", "--node-address", "10.0.0.2", "--peer", "10.0.0.3", "--interface", "eth0",
          "--interface-network", "10.0.0/33"], "error: --interface-network: '10.0.0/33' is not a network"),
    ],
)  # fmt: skip
def test_a_wrong_pair_option_is_named_and_nothing_is_written(tmp_path: Path, args: list[str], message: str):
    result = _init(tmp_path / "pacslb.yaml", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_ha_without_a_value_is_refused(tmp_path: Path):
    result = _init(tmp_path / "pacslb.yaml", "--ha")
    assert result.exit_code == 2
    assert "--ha" in result.output and "requires an argument" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_given_peer_certificate_that_exists_validates_at_once(tmp_path: Path):
    cert = ensure_node_certificate(tmp_path / "peer-state", "pacslb HA node", ["10.0.0.3"])
    result = _init(tmp_path / "pacslb.yaml", *PAIR, "--ha", "primary", "--node-address", "10.0.0.2", "--peer", "10.0.0.3",
                   "--peer-certificate", str(cert))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "until then" not in result.stdout
    assert load_file(tmp_path / "pacslb.yaml").ok


def test_pair_params_problems_are_empty_for_a_good_pair():
    good = PairParams(role="secondary", node_address="fd00::3", peer_address="fd00::2", interface="bond0.12",
                      interface_network="fd00::/64")  # fmt: skip
    assert good.problems("fd00::10") == []
    assert good.priority == 100
