"""`pacslb render --engine nftables` and `pacslb realserver-setup`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pacslb.cli import app

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "nftables"
runner = CliRunner()


def test_render_nftables_with_layer2_file_equals_golden() -> None:
    case = GOLDEN / "013_dr_basic"
    result = runner.invoke(app, ["render", "-e", "nftables", "-c", str(case / "config.yaml"), "--l2", str(case / "env.yaml")])
    assert result.exit_code == 0, result.output
    assert result.stdout == (case / "ruleset.nft").read_text()


def test_render_nftables_nat_needs_no_layer2_facts() -> None:
    case = GOLDEN / "010_snat"
    result = runner.invoke(app, ["render", "--engine", "nftables", "-c", str(case / "config.yaml")])
    assert result.exit_code == 0, result.output
    assert result.stdout == (case / "ruleset.nft").read_text()


def test_realserver_setup_prints() -> None:
    result = runner.invoke(app, ["realserver-setup", "--vip", "192.0.2.10"])
    assert result.exit_code == 0
    assert "ip addr replace 192.0.2.10/32 dev lo" in result.stdout
    assert "net.ipv4.conf.all.arp_ignore=1" in result.stdout and "net.ipv4.conf.all.arp_announce=2" in result.stdout
    assert runner.invoke(app, ["realserver-setup", "--vip", "nope"]).exit_code == 2
