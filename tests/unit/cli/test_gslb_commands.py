"""`pacslb render --engine powerdns` (no controller needed) and `pacslb gslb status` without a controller."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pacslb.cli import app

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "powerdns" / "001_topology_two_sites"
runner = CliRunner()


def test_render_powerdns_prints_pdns_conf_and_the_zone_data_with_every_site_up():
    result = runner.invoke(app, ["render", "-c", str(GOLDEN / "config.yaml"), "--engine", "powerdns",
                                 "--state-dir", "/var/lib/pacslb"])  # fmt: skip
    assert result.exit_code == 0, result.output
    conf, zones = result.stdout.split("# zones.yaml\n")
    assert conf == (GOLDEN / "pdns.conf").read_text()
    assert zones == (GOLDEN / "zones.yaml").read_text().replace(" 2026120701 ", " 1 ")


def test_render_powerdns_without_gslb_exits_2(tmp_path: Path):
    config = tmp_path / "pacslb.yaml"
    config.write_text("version: 1\n")
    result = runner.invoke(app, ["render", "-c", str(config), "--engine", "powerdns"])
    assert result.exit_code == 2 and "no gslb section" in result.output


def test_gslb_status_without_a_controller_exits_1(tmp_path: Path):
    result = runner.invoke(app, ["gslb", "status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no controller runs on" in result.output
