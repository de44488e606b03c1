"""`cluster.etcd.tls`: all three files or none, and what etcd would refuse said by `validate` first
(model/cluster_tls.py), each problem naming its field and the fix."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pacslb.cluster.pki import issue_node, make_cluster_ca, write_cluster_pki
from pacslb.model import validate_data

from .test_cluster import base


def _data(ca: str = "pki/lb2/ca.pem", cert: str = "pki/lb2/etcd.pem", key: str = "pki/lb2/etcd.key") -> dict:
    data = base()
    data["cluster"]["etcd"] = {"tls": {"ca": ca, "cert": cert, "key": key}}
    return data


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A cluster CA and the four nodes' files, made once (key generation is the slow part)."""
    root = tmp_path_factory.mktemp("cluster")
    loaded = validate_data(base())
    write_cluster_pki(loaded.config.cluster, root / "pki")
    return root


@pytest.fixture
def folder(pki: Path, tmp_path: Path) -> Path:
    shutil.copytree(pki / "pki", tmp_path / "pki")
    return tmp_path


def found(data: dict, base_dir: Path) -> list[tuple[str, str, str]]:
    return [(p.path, p.severity, p.message) for p in validate_data(data, base_dir).problems]


def test_the_files_pki_init_made_are_taken(folder: Path) -> None:
    loaded = validate_data(_data(), folder)
    assert loaded.problems == [] and loaded.config.cluster.etcd.tls.cert == "pki/lb2/etcd.pem"
    assert validate_data(base(), folder).config.cluster.etcd.tls is None  # absent: plain HTTP as before


def test_all_three_or_none() -> None:
    data = base()
    data["cluster"]["etcd"] = {"tls": {"ca": "ca.pem", "cert": "etcd.pem"}}
    problems = validate_data(data).problems
    assert [p.path for p in problems] == ["cluster.etcd.tls"]
    assert "key is missing" in problems[0].message and "pacslb cluster pki init" in problems[0].message


def test_a_missing_file_names_its_field(folder: Path) -> None:
    (folder / "pki" / "lb2" / "ca.pem").unlink()
    assert found(_data(), folder) == [("cluster.etcd.tls.ca", "error", f"file {folder}/pki/lb2/ca.pem does not exist: "
                                       "create it, or correct the path")]  # fmt: skip


def test_a_file_outside_the_allowed_directories_is_not_opened(folder: Path) -> None:
    problems = found(_data(key="/var/tmp/elsewhere/etcd.key"), folder)
    assert [p[0] for p in problems] == ["cluster.etcd.tls.key"] and "not in an allowed directory" in problems[0][2]


def test_another_nodes_key(folder: Path) -> None:
    problems = found(_data(key="pki/lb1/etcd.key"), folder)
    assert [p[0] for p in problems] == ["cluster.etcd.tls.key"] and "is not the key of" in problems[0][2]


def test_another_nodes_certificate_is_not_valid_for_this_address(folder: Path) -> None:
    problems = found(_data(cert="pki/lb1/etcd.pem", key="pki/lb1/etcd.key"), folder)
    assert [p[0] for p in problems] == ["cluster.etcd.tls.cert"]
    assert "not valid for this node's address 10.0.1.12" in problems[0][2] and "pki init" in problems[0][2]


def test_a_certificate_from_another_ca(folder: Path) -> None:
    loaded = validate_data(base())
    other = make_cluster_ca("other")
    (folder / "other.pem").write_bytes(other.cert_pem)
    problems = found(_data(ca="other.pem"), folder)
    assert [p[0] for p in problems] == ["cluster.etcd.tls.cert"] and "is not signed by the CA in" in problems[0][2]
    # and the other way: a certificate issued by another CA, checked against the cluster's
    stray = issue_node(other, "truepacs", loaded.config.cluster.this_node)
    (folder / "stray.pem").write_bytes(stray.cert_pem)
    (folder / "stray.key").write_bytes(stray.key_pem)
    (folder / "stray.key").chmod(0o600)
    assert [p[0] for p in found(_data(cert="stray.pem", key="stray.key"), folder)] == ["cluster.etcd.tls.cert"]


def test_expired_and_expiring(folder: Path) -> None:
    node = validate_data(base()).config.cluster.this_node
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=4000)
    ca = make_cluster_ca("truepacs", now=long_ago)
    old = issue_node(ca, "truepacs", node, now=long_ago)
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    (folder / "old.pem").write_bytes(old.cert_pem)
    (folder / "old.key").write_bytes(old.key_pem)
    (folder / "old.key").chmod(0o600)
    problems = found(_data(ca="ca.pem", cert="old.pem", key="old.key"), folder)
    assert [(p[0], p[1]) for p in problems] == [("cluster.etcd.tls.cert", "error")] and "expired on" in problems[0][2]
    soon = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=810)  # valid 825 days: 15 left
    ca = make_cluster_ca("truepacs", now=soon)
    late = issue_node(ca, "truepacs", node, now=soon)
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    (folder / "old.pem").write_bytes(late.cert_pem)
    (folder / "old.key").write_bytes(late.key_pem)
    problems = found(_data(ca="ca.pem", cert="old.pem", key="old.key"), folder)
    assert [(p[0], p[1]) for p in problems] == [("cluster.etcd.tls.cert", "warning")] and "expires on" in problems[0][2]


def test_a_key_others_can_read_is_a_warning_and_an_encrypted_one_an_error(folder: Path) -> None:
    key_file = folder / "pki" / "lb2" / "etcd.key"
    key_file.chmod(0o644)
    problems = found(_data(), folder)
    assert [(p[0], p[1]) for p in problems] == [("cluster.etcd.tls.key", "warning")] and "chmod 600" in problems[0][2]
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"secret")))  # fmt: skip
    key_file.chmod(0o600)
    problems = found(_data(), folder)
    assert [p[0] for p in problems] == ["cluster.etcd.tls.key"] and "is encrypted" in problems[0][2]


def test_garbage_in_each_file(folder: Path) -> None:
    (folder / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    for field in ("ca", "cert", "key"):
        problems = found(_data(**{field: "junk.pem"}), folder)
        assert [p[0] for p in problems] == [f"cluster.etcd.tls.{field}"], problems
        assert "no readable PEM" in problems[0][2]
