"""The files of `cluster.etcd.tls` (model/cluster.py `EtcdTLS`): what etcd would refuse, said before it runs.

etcd reads them when the member starts, and a member that cannot start, or that its peers refuse, is a cluster
that lost a member: so the change that names them is refused first when the CA, the certificate or the key
cannot be read, the certificate is not the key's, another CA signed it, it is not valid for this node's address
(the address in every etcd URL), it has expired, or it cannot serve both ways (etcd uses one certificate as a
server on its ports and as a client towards its peers; the controller uses it as etcd's client).

Called by `check_files` (model/checks.py); `read_named_file` reads the files, after model/files.py checked
where they lie (`named_files` lists them).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from .files import MAX_PEM_BYTES, read_named_file, resolve
from .problems import Problem

FIELD = "cluster.etcd.tls"
FIX = "make the node's files with `pacslb cluster pki init` and copy them to the node (docs/cluster.md)"


def _spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def etcd_tls_problems(config, base_dir: Path, refused: set[str], now: dt.datetime | None = None) -> list[Problem]:
    """Every problem of this node's etcd TLS files (none without `cluster.etcd.tls`). `refused`: the fields
    whose files are not opened (they lie where no configured file may)."""
    cluster = getattr(config, "cluster", None)
    tls = cluster.etcd.tls if cluster is not None else None
    if tls is None:
        return []
    ca_value, cert_value, key_value = tls.files
    fields = {"ca": f"{FIELD}.ca", "cert": f"{FIELD}.cert", "key": f"{FIELD}.key"}
    if any(f in refused for f in fields.values()):
        return []  # location_problems said where they must lie
    found = {name: read_named_file(fields[name], resolve(value, base_dir), MAX_PEM_BYTES, "PEM file") for name, value
             in (("ca", ca_value), ("cert", cert_value), ("key", key_value))}  # fmt: skip
    problems = [p for p in found.values() if isinstance(p, Problem)]
    if problems:
        return problems
    read = {name: content.data for name, content in found.items() if not isinstance(content, Problem)}
    ca_file, cert_file, key_file = (resolve(v, base_dir) for v in (ca_value, cert_value, key_value))
    try:
        cas = x509.load_pem_x509_certificates(read["ca"])
    except ValueError:
        return [Problem(fields["ca"], f"{ca_file} holds no readable PEM certificate: name the cluster CA's ca.pem")]
    try:
        cert = x509.load_pem_x509_certificate(read["cert"])
    except ValueError:
        return [Problem(fields["cert"], f"{cert_file} holds no readable PEM certificate: name the node's etcd.pem")]
    try:
        key = serialization.load_pem_private_key(read["key"], password=None)
    except TypeError:
        return [Problem(fields["key"], f"{key_file} is encrypted: etcd reads an unencrypted key (openssl pkey -in "
                        "KEY -out KEY.plain), kept at mode 0600")]  # fmt: skip
    except ValueError:
        return [Problem(fields["key"], f"{key_file} holds no readable PEM private key: name the node's etcd.key")]
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return [Problem(fields["key"], f"{key_file} is neither an EC nor an RSA key: {FIX}")]
    if _spki(key.public_key()) != _spki(cert.public_key()):
        return [Problem(fields["key"], f"{key_file} is not the key of {cert_file}: name the key issued with that "
                        "certificate (etcd.key beside etcd.pem)")]  # fmt: skip
    if not any(_signed_by(cert, ca) for ca in cas):
        problems.append(Problem(fields["cert"], f"{cert_file} is not signed by the CA in {ca_file}: every node needs a "
                                f"certificate from the same cluster CA; {FIX}"))  # fmt: skip
    problems += _validity(fields["cert"], cert_file, cert, now)
    address = ipaddress.ip_address(cluster.this_node.address)
    if address not in _ip_names(cert):
        problems.append(Problem(fields["cert"], f"{cert_file} is not valid for this node's address {address} (etcd's "
                                f"URLs use it): issue the node a certificate for it; {FIX}"))  # fmt: skip
    problems += _usages(fields["cert"], cert_file, cert)
    mode = found["key"].mode  # type: ignore[union-attr]
    if mode & 0o077:
        problems.append(Problem(fields["key"], f"{key_file} can be read by others (mode {mode:04o}): chmod 600 "
                                f"{key_file}", severity="warning"))  # fmt: skip
    return problems


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _ip_names(cert: x509.Certificate) -> list:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(sans.get_values_for_type(x509.IPAddress))


def _validity(field: str, file: Path, cert: x509.Certificate, now: dt.datetime | None) -> list[Problem]:
    moment = now or dt.datetime.now(dt.timezone.utc)
    if moment > cert.not_valid_after_utc:
        return [Problem(field, f"{file} expired on {cert.not_valid_after_utc:%Y-%m-%d}: {FIX}")]
    if moment < cert.not_valid_before_utc:
        return [Problem(field, f"{file} is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check this "
                        "node's clock, or issue it again")]  # fmt: skip
    if cert.not_valid_after_utc - moment < dt.timedelta(days=30):
        return [Problem(field, f"{file} expires on {cert.not_valid_after_utc:%Y-%m-%d}: issue the node a new one "
                        "before then", severity="warning")]  # fmt: skip
    return []


def _usages(field: str, file: Path, cert: x509.Certificate) -> list[Problem]:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []  # no restriction: any use
    lacking = [name for oid, name in ((ExtendedKeyUsageOID.SERVER_AUTH, "server"), (ExtendedKeyUsageOID.CLIENT_AUTH,
               "client")) if oid not in usages]  # fmt: skip
    if lacking:
        return [Problem(field, f"{file} is not for {' and '.join(lacking)} authentication: etcd uses one certificate "
                        f"both ways (its ports, and towards its peers); {FIX}")]  # fmt: skip
    return []


__all__ = ["etcd_tls_problems"]
