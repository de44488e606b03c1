"""The cluster's own CA and every node's etcd certificate (docs/cluster.md "etcd over TLS").

etcd authenticates its members and its clients by certificates signed by one CA: this module makes that CA
(ECDSA P-256, like every key pacslb generates) and, for each node of the `cluster` section, one certificate valid
for the node's address (and its name), with both server and client authentication: the same pair serves the
node's member (client and peer ports) and its controller's client. The CN is `<node>.<cluster>`.

`plan_files` and `issue_node` are pure apart from key generation; `write_cluster_pki` is the one function that
writes, through pki.write_pem (keys at mode 0600). The layout under the chosen directory:

    ca.pem, ca.key           the cluster CA: keep ca.key off the nodes (it signs new members)
    <node>/ca.pem            what the node trusts (cluster.etcd.tls.ca)
    <node>/etcd.pem          the node's certificate (cluster.etcd.tls.cert)
    <node>/etcd.key          its key (cluster.etcd.tls.key), mode 0600

Running it again keeps the CA and every node's files already there and issues only what is missing (a node
added to the section); a node whose address changed gets a new certificate once its folder is removed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..model.cluster import Cluster, ClusterNode
from ..pki import Issued, issue, make_ca, write_pem

CA_DAYS = 3650  # the cluster CA outlives its nodes' certificates
NODE_DAYS = 825  # what browsers cap server certificates at; etcd does not care, an administrator's tooling may
ETCD_CERT, ETCD_KEY, CA_CERT, CA_KEY = "etcd.pem", "etcd.key", "ca.pem", "ca.key"


class ClusterPKIError(Exception):
    """The directory holds something that is not this cluster's CA (or cannot be read)."""


def node_names(node: ClusterNode) -> list[str]:
    """The subject alternative names of a node's certificate: its address alone. etcd's URLs use it, and a member
    accepts a peer's connection only from an address its certificate names (etcd 3.4 checks the peer's source
    address against the certificate's SANs, and looks a DNS name up for every connection that does not match:
    a name here would make each refused handshake wait for DNS)."""
    return [str(node.address)]


def make_cluster_ca(cluster_name: str, now: dt.datetime | None = None) -> Issued:
    return make_ca(f"pacslb cluster {cluster_name} CA", days=CA_DAYS, now=now)


def issue_node(ca: Issued, cluster_name: str, node: ClusterNode, now: dt.datetime | None = None,
               extra: tuple[str, ...] = ()) -> Issued:  # fmt: skip
    """The node's etcd certificate: server and client authentication, valid for its address (and `extra`
    addresses it may connect to its peers from)."""
    return issue(ca, f"{node.name}.{cluster_name}", node_names(node) + list(extra), days=NODE_DAYS, now=now)


@dataclass(frozen=True)
class NodeFiles:
    """Where one node's files are written (and what its cluster.etcd.tls names once copied to the node)."""

    node: str
    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / CA_CERT

    @property
    def cert(self) -> Path:
        return self.dir / ETCD_CERT

    @property
    def key(self) -> Path:
        return self.dir / ETCD_KEY


@dataclass
class Outcome:
    """What `write_cluster_pki` did: files made and kept, for the administrator to read."""

    ca_made: bool
    issued: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    nodes: list[NodeFiles] = field(default_factory=list)


def plan_files(cluster: Cluster, directory: Path) -> list[NodeFiles]:
    return [NodeFiles(n.name, directory / n.name) for n in cluster.nodes]


def _load_ca(directory: Path) -> Issued | None:
    cert_file, key_file = directory / CA_CERT, directory / CA_KEY
    if not cert_file.exists() and not key_file.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ClusterPKIError(f"{directory} holds a CA that cannot be read ({exc}): choose an empty directory") from None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        raise ClusterPKIError(f"{cert_file} and {key_file} are not one pair: choose an empty directory")
    return Issued(cert, key)  # type: ignore[arg-type]


def write_cluster_pki(cluster: Cluster, directory: Path, now: dt.datetime | None = None,
                      extra: dict[str, tuple[str, ...]] | None = None) -> Outcome:  # fmt: skip
    """Make (or reuse) the cluster CA in `directory` and every node's files that are missing. `extra`: more
    addresses for a node's certificate (by node name), the ones it may connect to its peers from."""
    extra = extra or {}
    unknown = sorted(set(extra) - {n.name for n in cluster.nodes})
    if unknown:
        raise ClusterPKIError(
            f"{', '.join(unknown)}: not a node of the cluster section ({', '.join(n.name for n in cluster.nodes)})"
        )
    ca = _load_ca(directory)
    outcome = Outcome(ca_made=ca is None)
    if ca is None:
        ca = make_cluster_ca(cluster.name, now)
        write_pem(directory / CA_KEY, ca.key_pem, private=True)
        write_pem(directory / CA_CERT, ca.cert_pem, private=False)
    directory.chmod(0o700)  # the CA's key lies here
    for node, files in zip(cluster.nodes, plan_files(cluster, directory), strict=True):
        outcome.nodes.append(files)
        if files.cert.exists() and files.key.exists():
            outcome.kept.append(node.name)
            continue
        issued = issue_node(ca, cluster.name, node, now, extra.get(node.name, ()))
        write_pem(files.key, issued.key_pem, private=True)
        write_pem(files.cert, issued.cert_pem, private=False)
        write_pem(files.ca, ca.cert_pem, private=False)
        files.dir.chmod(0o700)
        outcome.issued.append(node.name)
    return outcome


__all__ = ["ClusterPKIError", "NodeFiles", "Outcome", "issue_node", "make_cluster_ca", "node_names", "plan_files",
           "write_cluster_pki"]  # fmt: skip
