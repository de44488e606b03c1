"""The cluster CA and the nodes' etcd certificates (cluster/pki.py) and `pacslb cluster pki init`."""

from __future__ import annotations

import ipaddress
import shutil
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from pacslb.cli import app
from pacslb.cluster.pki import write_cluster_pki
from pacslb.model import load_file

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "etcd" / "001_three_members" / "config.yaml"


def _cluster():
    loaded = load_file(GOLDEN)
    assert loaded.ok, loaded.problems
    return loaded.config.cluster


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_a_ca_and_one_certificate_per_node_valid_for_its_address_both_ways(tmp_path: Path) -> None:
    cluster = _cluster()
    out = tmp_path / "pki"
    outcome = write_cluster_pki(cluster, out)
    assert outcome.ca_made and outcome.issued == ["lb1", "lb2", "lb3", "lb4"] and outcome.kept == []
    ca = _cert(out / "ca.pem")
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for node in cluster.nodes:
        folder = out / node.name
        cert = _cert(folder / "etcd.pem")
        cert.verify_directly_issued_by(ca)  # raises when another CA signed it
        assert (folder / "ca.pem").read_bytes() == (out / "ca.pem").read_bytes()
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(node.address)]
        assert sans.get_values_for_type(x509.DNSName) == []  # etcd would look a name up on every refused connection
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in usages and ExtendedKeyUsageOID.CLIENT_AUTH in usages
        assert stat.S_IMODE((folder / "etcd.key").stat().st_mode) == 0o600
        assert b"PRIVATE KEY" not in (folder / "etcd.pem").read_bytes()


def test_again_keeps_the_ca_and_the_nodes_and_issues_what_is_missing(tmp_path: Path) -> None:
    cluster = _cluster()
    out = tmp_path / "pki"
    write_cluster_pki(cluster, out)
    ca, lb1 = (out / "ca.pem").read_bytes(), (out / "lb1" / "etcd.pem").read_bytes()
    shutil.rmtree(out / "lb3")  # a node whose address changed: its folder removed, a new certificate
    again = write_cluster_pki(cluster, out)
    assert not again.ca_made and again.issued == ["lb3"] and again.kept == ["lb1", "lb2", "lb4"]
    assert (out / "ca.pem").read_bytes() == ca and (out / "lb1" / "etcd.pem").read_bytes() == lb1
    _cert(out / "lb3" / "etcd.pem").verify_directly_issued_by(_cert(out / "ca.pem"))


def test_the_command_writes_the_files_and_refuses_a_file_without_a_cluster(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "pki"
    result = runner.invoke(app, ["cluster", "pki", "init", "--dir", str(out), "-c", str(GOLDEN)])
    assert result.exit_code == 0, result.output
    assert "made the cluster CA" in result.output and "lb4: issued" in result.output
    assert (out / "lb4" / "etcd.key").exists()
    plain = tmp_path / "plain.yaml"
    plain.write_text("version: 1\n")
    refused = runner.invoke(app, ["cluster", "pki", "init", "--dir", str(tmp_path / "x"), "-c", str(plain)])
    assert refused.exit_code == 2 and "no valid cluster section" in refused.output
    assert not (tmp_path / "x").exists()


def test_a_directory_holding_something_else_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    out.mkdir()
    (out / "ca.pem").write_text("not a certificate\n")
    result = CliRunner().invoke(app, ["cluster", "pki", "init", "--dir", str(out), "-c", str(GOLDEN)])
    assert result.exit_code == 1 and "choose an empty directory" in result.output


def test_more_addresses_for_a_node_and_an_unknown_node_refused(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "pki"
    result = runner.invoke(app, ["cluster", "pki", "init", "--dir", str(out), "-c", str(GOLDEN), "--also", "lb1=10.0.2.11"])
    assert result.exit_code == 0, result.output
    sans = _cert(out / "lb1" / "etcd.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.0.1.11", "10.0.2.11"]
    bad = runner.invoke(app, ["cluster", "pki", "init", "--dir", str(tmp_path / "y"), "-c", str(GOLDEN), "--also", "lb1"])
    assert bad.exit_code == 2 and "give NODE=ADDRESS" in bad.output
    unknown = runner.invoke(app, ["cluster", "pki", "init", "--dir", str(tmp_path / "z"), "-c", str(GOLDEN),
                                  "--also", "lb9=10.0.2.19"])  # fmt: skip
    assert unknown.exit_code == 1 and "lb9: not a node of the cluster section" in unknown.output


def test_a_file_naming_the_tls_files_still_to_be_made_is_read(tmp_path: Path) -> None:
    """The files a configuration names under cluster.etcd.tls are what the command makes: it reads the section only."""
    config = tmp_path / "pacslb.yaml"
    config.write_text(GOLDEN.read_text().replace("  bgp:", "  etcd: {tls: {ca: pki/lb2/ca.pem, cert: pki/lb2/etcd.pem, "
                                                             "key: pki/lb2/etcd.key}}\n  bgp:"))  # fmt: skip
    assert not load_file(config).ok  # the files do not exist yet
    result = CliRunner().invoke(app, ["cluster", "pki", "init", "--dir", str(tmp_path / "pki"), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert load_file(config).problems == []  # and now they do, as the node's configuration names them
