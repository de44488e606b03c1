"""`pacslb up` refuses a configuration that names a file of its state directory, before anything starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pacslb import pki
from pacslb.cli import app
from pacslb.paths import StatePaths

runner = CliRunner()


def test_up_refuses_the_management_key_as_a_maintenance_page(tmp_path: Path):
    paths = StatePaths(tmp_path / "state")
    pki.write_pem(paths.management_certificate, pki.self_signed("management", ["127.0.0.1"]).bundle())
    config = tmp_path / "pacslb.yaml"  # the state directory lies in the configuration's folder, an allowed directory
    config.write_text("""version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8080}]
    real_servers: [{name: rs1, address: 127.0.0.2, port: 80}]
    fallback: {maintenance_page: true, page: state/management/server.pem}
""")
    result = runner.invoke(app, ["up", "-c", str(config), "--state-dir", str(paths.root)])
    assert result.exit_code == 2, result.output
    assert (
        f"virtual_services[web].fallback.page: {paths.management_certificate} is in the appliance's state directory "
        f"{paths.root}, which holds its private keys and stores" in result.stderr
    ), result.stderr
    assert not paths.haproxy_dir.exists() and not paths.controller_lock.exists(), "nothing started"
    # `pacslb validate` checks as `pacslb up` would on that state directory
    result = runner.invoke(app, ["validate", "-c", str(config), "--state-dir", str(paths.root)])
    assert result.exit_code == 2 and "is in the appliance's state directory" in result.stderr
