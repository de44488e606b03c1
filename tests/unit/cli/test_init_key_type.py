"""Generated certificates are ECDSA P-256 unless told otherwise: `pacslb init --key-type`, the management API's own."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from pacslb import pki
from pacslb.api.server import ensure_certificate
from pacslb.cli import app

runner = CliRunner()
PLACEHOLDER = Path("certs") / "true-pacs-placeholder.pem"


def _key(path: Path):
    return pki.load_issued(path.read_bytes()).key


def test_placeholder_certificates_are_ecdsa_p256_by_default(tmp_path: Path):
    result = runner.invoke(app, ["init", "-t", "true-pacs", "-o", str(tmp_path / "pacslb.yaml")])
    assert result.exit_code == 0, result.output
    key = _key(tmp_path / PLACEHOLDER)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_key_type_rsa_makes_rsa_2048_placeholders_that_validate(tmp_path: Path):
    config = tmp_path / "pacslb.yaml"
    result = runner.invoke(app, ["init", "-t", "true-pacs", "-o", str(config), "--key-type", "rsa"])
    assert result.exit_code == 0, result.output
    key = _key(tmp_path / PLACEHOLDER)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    result = runner.invoke(app, ["validate", "-c", str(config)])
    assert result.exit_code == 0, result.output  # an RSA certificate file keeps working


def test_an_unknown_key_type_is_refused_and_nothing_is_written(tmp_path: Path):
    result = runner.invoke(app, ["init", "-t", "true-pacs", "-o", str(tmp_path / "pacslb.yaml"), "--key-type", "dsa"])
    assert result.exit_code != 0
    assert "--key-type 'dsa' is unknown: choose ec or rsa" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_management_apis_own_certificate_is_ecdsa(tmp_path: Path):
    path = ensure_certificate(tmp_path, "127.0.0.1")
    key = _key(path)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_the_apis_generated_keys_default_to_ecdsa():
    from pacslb.api.routes_certs import CSRRequest, SelfSignedRequest

    assert SelfSignedRequest(name="a", common_name="a").key_type == "ec"
    assert CSRRequest(name="a", common_name="a").key_type == "ec"
