"""The specification of a set of simulated services: dataclasses, JSON, and address assignment.

A spec lists services; each service has a name, a port, a kind (``http`` or ``amqp``),
optional TLS material, and replicas. Each replica has a name and its own address, so
several replicas of one service listen on the same port at distinct loopback addresses.

Address scheme of :func:`demo_spec_for` (deterministic, documented, stable)::

    service i (0-based, in the order given), replica r (0-based)
        -> 127.<second_octet>.<first_subnet + i>.<r + 1>      default: 127.0.(10+i).(r+1)
    replica names: "r1", "r2", ...

so the first service's replicas are 127.0.10.1 and 127.0.10.2, the second's 127.0.11.1
and 127.0.11.2, and so on. Linux routes all of 127.0.0.0/8 to the loopback interface,
so no address needs to be configured.

JSON form (what ``python -m pacslb.demo.services --spec FILE`` reads)::

    {
      "control": {"host": "127.0.0.1", "port": 0},
      "services": [
        {"name": "WFC_inference_443", "port": 443, "kind": "http",
         "tls": {"cert": "/path/cert.pem", "key": "/path/key.pem"},
         "replicas": [{"name": "r1", "address": "127.0.10.1"},
                      {"name": "r2", "address": "127.0.10.2",
                       "tls": {"cert": "/path/r2.pem"}}]}
      ]
    }

``tls`` is null/absent (plain), a string (one PEM file holding certificate and key), or
an object with ``cert`` and optional ``key`` (absent: the key is in the cert file).
A replica's ``tls`` overrides its service's; a service is TLS when its ``tls`` is set.
Port 0 lets the system choose a port per replica (reported in the ready line).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

KINDS = ("http", "amqp")


class SpecError(ValueError):
    """A spec that cannot be served; the message names the field."""


@dataclass(frozen=True)
class TlsSpec:
    """TLS material: a certificate chain PEM and its key (``key=None``: the key is in ``cert``)."""

    cert: str
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"cert": self.cert, "key": self.key}


TlsArg = Union[TlsSpec, str, Path, tuple, None]


def tls_from(value: Any, where: str = "tls") -> TlsSpec | None:
    """Accept None, a path (combined PEM), a (cert, key) pair, a mapping, or a TlsSpec."""
    if value is None:
        return None
    if isinstance(value, TlsSpec):
        return value
    if isinstance(value, (str, Path)):
        return TlsSpec(cert=str(value))
    if isinstance(value, (tuple, list)) and len(value) in (1, 2):
        cert = value[0]
        key = value[1] if len(value) == 2 else None
        return TlsSpec(cert=str(cert), key=None if key is None else str(key))
    if isinstance(value, dict):
        if "cert" not in value or not value["cert"]:
            raise SpecError(f"{where}.cert: required")
        unknown = set(value) - {"cert", "key"}
        if unknown:
            raise SpecError(f"{where}: unknown field(s) {sorted(unknown)}")
        key = value.get("key")
        return TlsSpec(cert=str(value["cert"]), key=None if key is None else str(key))
    raise SpecError(f"{where}: expected null, a path, [cert, key] or {{cert, key}}, got {value!r}")


@dataclass(frozen=True)
class ReplicaSpec:
    name: str
    address: str
    tls: TlsSpec | None = None  # overrides the service's TLS material

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "address": self.address}
        if self.tls is not None:
            d["tls"] = self.tls.to_json()
        return d


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    kind: str = "http"
    tls: TlsSpec | None = None
    replicas: tuple[ReplicaSpec, ...] = ()

    def tls_for(self, replica: ReplicaSpec) -> TlsSpec | None:
        return replica.tls if replica.tls is not None else self.tls

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "port": self.port,
            "kind": self.kind,
            "tls": None if self.tls is None else self.tls.to_json(),
            "replicas": [r.to_json() for r in self.replicas],
        }


@dataclass(frozen=True)
class DemoSpec:
    services: tuple[ServiceSpec, ...] = ()
    control_host: str = "127.0.0.1"
    control_port: int = 0  # 0: the system chooses; the ready line reports it
    keepalive_timeout: float = 75.0  # seconds an idle HTTP connection is kept open

    def service(self, name: str) -> ServiceSpec:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def addresses(self) -> list[str]:
        """Every replica address, sorted and without duplicates (for IP SANs of one certificate)."""
        seen = {r.address for s in self.services for r in s.replicas}
        return sorted(seen, key=lambda a: ipaddress.ip_address(a))

    def validate(self) -> "DemoSpec":
        names: set[str] = set()
        binds: dict[tuple[str, int], str] = {}
        for i, s in enumerate(self.services):
            w = f"services[{i}]"
            if not s.name or "/" in s.name:
                raise SpecError(f"{w}.name: must be non-empty and contain no '/'")
            if s.name in names:
                raise SpecError(f"{w}.name: duplicate service {s.name!r}")
            names.add(s.name)
            if not isinstance(s.port, int) or isinstance(s.port, bool) or not 0 <= s.port <= 65535:
                raise SpecError(f"{w}.port: must be an integer 0..65535, got {s.port!r}")
            if s.kind not in KINDS:
                raise SpecError(f"{w}.kind: must be one of {KINDS}, got {s.kind!r}")
            if not s.replicas:
                raise SpecError(f"{w}.replicas: at least one replica is required")
            rnames: set[str] = set()
            for j, r in enumerate(s.replicas):
                rw = f"{w}.replicas[{j}]"
                if not r.name or "/" in r.name:
                    raise SpecError(f"{rw}.name: must be non-empty and contain no '/'")
                if r.name in rnames:
                    raise SpecError(f"{rw}.name: duplicate replica {r.name!r} in {s.name!r}")
                rnames.add(r.name)
                try:
                    ipaddress.ip_address(r.address)
                except ValueError:
                    raise SpecError(f"{rw}.address: not an IP address: {r.address!r}") from None
                if s.port:
                    key = (str(ipaddress.ip_address(r.address)), s.port)
                    if key in binds:
                        raise SpecError(f"{rw}: {r.address}:{s.port} is already used by {binds[key]}")
                    binds[key] = f"{s.name}/{r.name}"
        if not 0 <= self.control_port <= 65535:
            raise SpecError(f"control.port: must be 0..65535, got {self.control_port!r}")
        if self.keepalive_timeout <= 0:
            raise SpecError("keepalive_timeout: must be positive")
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "control": {"host": self.control_host, "port": self.control_port},
            "keepalive_timeout": self.keepalive_timeout,
            "services": [s.to_json() for s in self.services],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(self.dumps())
        return p


def spec_from_json(data: Any) -> DemoSpec:
    """Build and validate a spec from its JSON form (see the module docstring)."""
    if not isinstance(data, dict):
        raise SpecError("spec: expected an object")
    unknown = set(data) - {"control", "services", "keepalive_timeout"}
    if unknown:
        raise SpecError(f"spec: unknown field(s) {sorted(unknown)}")
    control = data.get("control") or {}
    if not isinstance(control, dict):
        raise SpecError("control: expected an object")
    services_in = data.get("services")
    if not isinstance(services_in, list):
        raise SpecError("services: expected a list")
    services = []
    for i, s in enumerate(services_in):
        w = f"services[{i}]"
        if not isinstance(s, dict):
            raise SpecError(f"{w}: expected an object")
        unknown = set(s) - {"name", "port", "kind", "tls", "replicas"}
        if unknown:
            raise SpecError(f"{w}: unknown field(s) {sorted(unknown)}")
        for req in ("name", "port", "replicas"):
            if req not in s:
                raise SpecError(f"{w}.{req}: required")
        if not isinstance(s["replicas"], list):
            raise SpecError(f"{w}.replicas: expected a list")
        replicas = []
        for j, r in enumerate(s["replicas"]):
            rw = f"{w}.replicas[{j}]"
            if not isinstance(r, dict) or "name" not in r or "address" not in r:
                raise SpecError(f"{rw}: expected an object with name and address")
            unknown = set(r) - {"name", "address", "tls"}
            if unknown:
                raise SpecError(f"{rw}: unknown field(s) {sorted(unknown)}")
            replicas.append(
                ReplicaSpec(
                    name=str(r["name"]),
                    address=str(r["address"]),
                    tls=tls_from(r.get("tls"), f"{rw}.tls"),
                )
            )
        services.append(
            ServiceSpec(
                name=str(s["name"]),
                port=s["port"],
                kind=str(s.get("kind", "http")),
                tls=tls_from(s.get("tls"), f"{w}.tls"),
                replicas=tuple(replicas),
            )
        )
    port = control.get("port", 0)
    if not isinstance(port, int) or isinstance(port, bool):
        raise SpecError(f"control.port: expected an integer, got {port!r}")
    ka = data.get("keepalive_timeout", 75.0)
    if not isinstance(ka, (int, float)) or isinstance(ka, bool):
        raise SpecError(f"keepalive_timeout: expected a number, got {ka!r}")
    return DemoSpec(
        services=tuple(services),
        control_host=str(control.get("host", "127.0.0.1")),
        control_port=port,
        keepalive_timeout=float(ka),
    ).validate()


def load_spec(path: str | Path) -> DemoSpec:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not JSON: {e}") from None
    return spec_from_json(data)


def replica_address(service_index: int, replica_index: int, *, first_subnet: int = 10, second_octet: int = 0) -> str:
    """The address scheme: service i, replica r -> 127.<second_octet>.<first_subnet+i>.<r+1>."""
    third = first_subnet + service_index
    fourth = replica_index + 1
    if service_index < 0 or replica_index < 0:
        raise SpecError("service and replica indexes start at 0")
    if not 0 <= second_octet <= 255:
        raise SpecError(f"second_octet must be 0..255, got {second_octet}")
    if third > 255:
        raise SpecError(f"too many services for first_subnet={first_subnet}: index {service_index}")
    if fourth > 254:
        raise SpecError(f"at most 254 replicas per service, got index {replica_index}")
    return f"127.{second_octet}.{third}.{fourth}"


def demo_spec_for(
    services: Sequence[tuple] | Iterable[tuple],
    replicas: int = 2,
    *,
    first_subnet: int = 10,
    second_octet: int = 0,
    control_host: str = "127.0.0.1",
    control_port: int = 0,
    keepalive_timeout: float = 75.0,
) -> DemoSpec:
    """A spec with deterministic addresses (see the module docstring for the scheme).

    ``services`` holds ``(name, port, kind, tls)`` tuples (``tls`` may be omitted: plain);
    ``tls`` is anything :func:`tls_from` accepts (None, a combined PEM path, (cert, key),
    a TlsSpec). Each service gets ``replicas`` replicas named r1, r2, ...
    """
    if replicas < 1:
        raise SpecError("replicas: at least 1")
    out = []
    for i, item in enumerate(services):
        if len(item) == 3:
            name, port, kind = item
            tls = None
        elif len(item) == 4:
            name, port, kind, tls = item
        else:
            raise SpecError(f"services[{i}]: expected (name, port, kind[, tls]), got {item!r}")
        out.append(
            ServiceSpec(
                name=name,
                port=port,
                kind=kind,
                tls=tls_from(tls, f"services[{i}].tls"),
                replicas=tuple(
                    ReplicaSpec(
                        name=f"r{r + 1}",
                        address=replica_address(i, r, first_subnet=first_subnet, second_octet=second_octet),
                    )
                    for r in range(replicas)
                ),
            )
        )
    return DemoSpec(
        services=tuple(out),
        control_host=control_host,
        control_port=control_port,
        keepalive_timeout=keepalive_timeout,
    ).validate()
