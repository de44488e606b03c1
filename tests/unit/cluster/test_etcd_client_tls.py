"""The etcd client's TLS (cluster/etcd.py `ssl_context`): the cluster CA alone, the member's address checked, the
node's certificate shown; files that cannot be used are an EtcdError that names them. The real members: tests/engine/
test_etcd_tls.py."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from pacslb.cluster.etcd import EtcdError, ssl_context
from pacslb.cluster.pki import write_cluster_pki
from pacslb.engines.etcd.render import TLSFiles, tls_files
from pacslb.model import load_text

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "etcd"


def test_the_context_trusts_the_cluster_ca_checks_the_address_and_shows_the_nodes_certificate(tmp_path: Path) -> None:
    text = (GOLDEN / "003_tls" / "config.yaml").read_text().replace("/etc/pacslb/cluster/", "pki/lb1/")
    cluster = load_text(text).config.cluster
    write_cluster_pki(cluster, tmp_path / "pki")
    files = tls_files(cluster, tmp_path)
    assert files == TLSFiles(f"{tmp_path}/pki/lb1/ca.pem", f"{tmp_path}/pki/lb1/etcd.pem", f"{tmp_path}/pki/lb1/etcd.key")
    context = ssl_context(files)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [((("organizationName", "pacslb"),),
                                                               (("commonName", "pacslb cluster truepacs CA"),))]  # fmt: skip


def test_files_that_cannot_be_used_are_named(tmp_path: Path) -> None:
    with pytest.raises(EtcdError, match=r"etcd's TLS files cannot be used \(.*/ca.pem, .*/etcd.pem, .*/etcd.key\)"):
        ssl_context(TLSFiles(str(tmp_path / "ca.pem"), str(tmp_path / "etcd.pem"), str(tmp_path / "etcd.key")))
