"""`pacslb init`: a starter configuration that validates, written once, never over an existing file."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from pacslb.cli import app
from pacslb.model import load_file

runner = CliRunner()


def _init(*args: str):
    return runner.invoke(app, ["init", *args])


def test_init_then_validate_passes_with_the_self_signed_warning(tmp_path: Path):
    config = tmp_path / "site" / "pacslb.yaml"
    result = _init("--template", "true-pacs", "-o", str(config))
    assert result.exit_code == 0, result.output
    cert = tmp_path / "site" / "certs" / "true-pacs-placeholder.pem"
    assert f"wrote {config}" in result.stdout and f"wrote {cert}" in result.stdout
    assert "next steps" in result.stdout
    assert stat.S_IMODE(cert.stat().st_mode) == 0o600

    result = runner.invoke(app, ["validate", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert f"{config}: valid" in result.stdout
    assert f"warning: virtual_services[WFC_443].tls.certificates[0]: {cert} is self-signed" in result.stderr, result.stderr


def test_init_refuses_to_overwrite_without_force(tmp_path: Path):
    config = tmp_path / "pacslb.yaml"
    assert _init("-t", "true-pacs", "-o", str(config)).exit_code == 0
    config.write_text("# edited by the site\n")
    cert_before = (tmp_path / "certs" / "true-pacs-placeholder.pem").read_bytes()

    result = _init("-t", "true-pacs", "-o", str(config))
    assert result.exit_code == 1
    assert f"{config} already exists" in result.stderr and "--force" in result.stderr
    assert config.read_text() == "# edited by the site\n"
    assert (tmp_path / "certs" / "true-pacs-placeholder.pem").read_bytes() == cert_before

    result = _init("-t", "true-pacs", "-o", str(config), "--force")
    assert result.exit_code == 0, result.output
    assert load_file(config).ok


def test_an_existing_certificate_alone_also_stops_init(tmp_path: Path):
    cert = tmp_path / "certs" / "true-pacs-placeholder.pem"
    cert.parent.mkdir()
    cert.write_text("the site's real certificate")
    result = _init("-t", "true-pacs", "-o", str(tmp_path / "pacslb.yaml"))
    assert result.exit_code == 1 and f"{cert} already exists" in result.stderr
    assert not (tmp_path / "pacslb.yaml").exists()
    assert cert.read_text() == "the site's real certificate"


def test_port_offset_and_vip_address_move_the_listeners(tmp_path: Path):
    config = tmp_path / "pacslb.yaml"
    result = _init("-t", "true-pacs", "-o", str(config), "--port-offset", "10000", "--vip-address", "127.0.0.1")
    assert result.exit_code == 0, result.output
    loaded = load_file(config)
    assert loaded.ok
    listeners = {vs.name: (lis.address, lis.port.first) for vs in loaded.config.virtual_services for lis in vs.listen}
    assert listeners == {
        "WFC_RMQAMQP": ("127.0.0.1", 18081),
        "WFC_443": ("127.0.0.1", 18443),
        "WFC_http": ("127.0.0.1", 10080),
        "WFC_10443": ("127.0.0.1", 18082),
        "WFM_karaf_Group": ("127.0.0.1", 19094),
        "SR_https_vs": ("127.0.0.1", 13080),
    }
    assert loaded.config.service("WFC_inference_443").real_servers[0].port == 443  # real servers do not move


def test_unknown_or_missing_template_lists_the_templates(tmp_path: Path):
    for args in (["-t", "epic"], []):
        result = _init(*args, "-o", str(tmp_path / "pacslb.yaml"))
        assert result.exit_code == 2
        assert "true-pacs" in result.stderr
    assert "unknown template 'epic'" in _init("-t", "epic").stderr
    assert list(tmp_path.iterdir()) == []


def test_unusable_options_exit_2_and_write_nothing(tmp_path: Path):
    for args in (["--port-offset", "60000"], ["--vip-address", "pacs.example.org"]):
        result = _init("-t", "true-pacs", "-o", str(tmp_path / "pacslb.yaml"), *args)
        assert result.exit_code == 2, result.output
        assert "cannot write the true-pacs template" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_folder_as_output_is_refused(tmp_path: Path):
    result = _init("-t", "true-pacs", "-o", str(tmp_path), "--force")
    assert result.exit_code == 2 and "is a folder" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_amqp_check_option_checks_vip1_with_an_amqp_handshake(tmp_path: Path):
    plain, with_amqp = tmp_path / "plain.yaml", tmp_path / "amqp" / "pacslb.yaml"
    assert _init("--template", "true-pacs", "-o", str(plain)).exit_code == 0
    result = _init("--template", "true-pacs", "--amqp-check", "-o", str(with_amqp))
    assert result.exit_code == 0, result.output

    def vip1_check(path: Path) -> str:
        loaded = load_file(path)
        assert loaded.config is not None
        return loaded.config.service("WFC_RMQAMQP").health_check.type

    assert vip1_check(plain) == "connect"  # the guide's "connect to port", kept by default
    assert vip1_check(with_amqp) == "amqp"
