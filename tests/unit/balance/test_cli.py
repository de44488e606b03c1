"""`pacslb balance validate|run`: problems as `field.path: message` with exit 2; a port in use is a clear error."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from pacslb.cli import app

GOOD = "readers: [{name: ada}]\nshifts: [{reader: ada, start: '08:00', end: '16:00', capacity: 6}]\n"


def test_validate_accepts_a_good_file_and_names_each_problem(tmp_path):
    runner = CliRunner()
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = runner.invoke(app, ["balance", "validate", "-c", str(good)])
    assert result.exit_code == 0 and "valid (1 readers, 1 shifts" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("reader: ada", "reader: bo"))
    result = runner.invoke(app, ["balance", "validate", "-c", str(bad)])
    assert result.exit_code == 2
    assert "shifts[0].reader: no reader 'bo'; add it under readers or fix the name" in result.output


def test_run_with_its_port_taken_says_so_and_exits_1(tmp_path):
    config = tmp_path / "b.yaml"
    config.write_text(GOOD)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app,
            [
                "balance",
                "run",
                "-c",
                str(config),
                "--state-dir",
                str(tmp_path / "s"),
                "--mllp-port",
                str(port),
                "--exit-after",
                "5",
            ],
        )
    assert result.exit_code == 1 and "balance: cannot start" in result.output
