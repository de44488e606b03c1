"""The etcd client's TLS (cluster/etcd.py `ssl_context`): the cluster CA alone, the member's address checked, the
node's certificate shown; files that cannot be used are an EtcdError that names them. The real members: tests/engine/
test_etcd_tls.py."""

from __future__ import annotations

import ssl
import time
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


async def test_a_node_that_turns_tls_on_while_running_is_told_its_controller_must_restart(tmp_path: Path, caplog) -> None:
    """The member restarts on its new file at once; the controller's client keeps what it started with, and says so."""
    from pacslb.cluster.state import ClusterState
    from pacslb.paths import StatePaths

    plain_text = (GOLDEN / "001_three_members" / "config.yaml").read_text()
    plain = load_text(plain_text).config
    tls = load_text(plain_text.replace("  bgp:", "  etcd: {tls: {ca: c.pem, cert: e.pem, key: e.key}}\n  bgp:")).config
    assert tls.cluster.etcd.tls is not None

    class Changes:
        base_dir = tmp_path

    state = ClusterState(StatePaths(tmp_path / "s"), Changes(), lambda: (True, "serving"))  # type: ignore[arg-type]
    state._connected = state._connection(plain.cluster)  # what start() records (start itself would dial the members)
    await state.applied(plain)
    assert "restarts" not in caplog.text
    await state.applied(tls)
    assert "this controller reaches etcd as before until it restarts" in caplog.text
    assert state._connection(tls.cluster)[1] == TLSFiles(f"{tmp_path}/c.pem", f"{tmp_path}/e.pem", f"{tmp_path}/e.key")


def test_the_certificate_alerts_watch_the_etcd_certificate_and_the_cluster_ca(tmp_path: Path) -> None:
    from pacslb.alerts.certificates import expiring, watched

    text = (GOLDEN / "003_tls" / "config.yaml").read_text().replace("/etc/pacslb/cluster/", "pki/lb1/")
    config = load_text(text).config
    write_cluster_pki(config.cluster, tmp_path / "pki")
    files = watched(config, tmp_path, tmp_path / "management.pem")
    assert [f for f, _ in files][:3] == ["cluster.etcd.tls.ca", "cluster.etcd.tls.cert", "cluster.etcd.tls.key"]
    alerts = expiring(files, 900, now=time.time())  # within 900 days: the node's (825 days), not the CA's (10 years)
    assert [a.message for a in alerts if "etcd.pem" in a.message] and not [a for a in alerts if "etcd.key" in a.message]
    assert not [a for a in alerts if "ca.pem" in a.message]
