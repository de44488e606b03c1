"""`pacslb render --engine keepalived` and `pacslb ha pair` (no controller needed)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pacslb.cli import app
from pacslb.ha.peer_link import colon_fingerprint, fingerprint

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "keepalived" / "001_unicast_defaults"
runner = CliRunner()


def test_render_keepalived_prints_the_golden_file_for_its_state_dir():
    result = runner.invoke(app, ["render", "-c", str(GOLDEN / "config.yaml"), "--engine", "keepalived",
                                 "--state-dir", "/var/lib/pacslb"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == (GOLDEN / "keepalived.conf").read_text()


def test_render_keepalived_without_ha_exits_2(tmp_path: Path):
    config = tmp_path / "pacslb.yaml"
    config.write_text("version: 1\n")
    result = runner.invoke(app, ["render", "-c", str(config), "--engine", "keepalived"])
    assert result.exit_code == 2
    assert "no `ha` section" in result.output


def test_ha_pair_prints_the_same_certificate_and_its_fingerprint(tmp_path: Path):
    first = runner.invoke(app, ["ha", "pair", "--state-dir", str(tmp_path), "--address", "10.0.0.2"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["ha", "pair", "--state-dir", str(tmp_path)])
    pem = (tmp_path / "ha" / "node.pem").read_text()
    assert pem in first.stdout and pem in second.stdout
    assert colon_fingerprint(fingerprint(pem.encode())) in first.output


def test_ha_status_without_a_controller_says_so(tmp_path: Path):
    result = runner.invoke(app, ["ha", "status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no controller runs" in result.output
