"""`pacslb render --engine bird` (no controller needed): bird.conf, then the route files with every VIP announced."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pacslb.cli import app

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "bird" / "001_ipv4_two_routers_bfd"
runner = CliRunner()


def test_render_bird_prints_bird_conf_and_the_routes_of_every_vip():
    result = runner.invoke(app, ["render", "-c", str(GOLDEN / "config.yaml"), "--engine", "bird",
                                 "--state-dir", "/var/lib/pacslb"])  # fmt: skip
    assert result.exit_code == 0, result.output
    conf, routes = result.stdout.split("# vips4.conf\n")
    assert conf == (GOLDEN / "bird.conf").read_text()
    assert "route 192.0.2.10/32 blackhole;" in routes and "route 192.0.2.11/32 blackhole;" in routes
    assert "route 2001:db8::10/128 blackhole;" in routes


def test_render_bird_without_a_cluster_exits_2(tmp_path: Path):
    config = tmp_path / "pacslb.yaml"
    config.write_text("version: 1\n")
    result = runner.invoke(app, ["render", "-c", str(config), "--engine", "bird"])
    assert result.exit_code == 2 and "no cluster section" in result.output
