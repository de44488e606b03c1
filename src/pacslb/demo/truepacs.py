"""The True PACS demo, wired: simulated services, certificates and the configuration, in one state directory.

`TruePacsDemo(state_dir, ...)` plans everything from the True PACS template's service table
(`pacslb.templates.true_pacs.SERVICES`); `write()` puts the files in place; `services()` gives the
`DemoProcess` that runs the simulated services. `pacslb demo` and the e2e tests both use it.

Simulated services: every True PACS service with real servers (29 backend-only services, VIP 1, VIP 5
and VIP 6), two replicas each, on the guide's real-server ports:

    service i (in the template's order), replica r  ->  127.<server_octet>.<10 + i>.<r + 1>

so the first (WFC_RMQAMQP) listens on 127.0.10.1:8081 and 127.0.10.2:8081, WFC_inference_443 on
127.0.11.1:443 and 127.0.11.2:443, and so on to 127.0.41.2. Each replica has an address of its own, so
several services share a port without a clash, and nothing else on the machine is in the way.

    kind                                   the simulated replica speaks
    backend-only, encrypted (VIP 2, VIP 4)  HTTPS (the load balancer re-encrypts)
    backend-only, plain (VIP 3)             HTTP on port 80, and HTTPS on port 443 of the same address,
                                            where the guide's HTTPS (GET) health check goes (the listener
                                            is named "<service>-https-check")
    VIP 5, VIP 6 (TLS passes through)       HTTPS
    VIP 1 (AMQP)                            AMQP 0-9-1 (Connection.Start, ...)

Certificates (under <state>/certs, made with pacslb.pki):

    demo-ca.pem       the demo CA's certificate: what clients (curl --cacert) and the load balancer trust
    demo-ca-key.pem   its key (mode 0600); kept, so the CA stays the same from one demo run to the next
    vip.pem           WFC_443's certificate (VIP address, 127.0.0.1, localhost), chain and key
    servers.pem       the simulated real servers' certificate: an IP SAN for every replica address, and
                      the VIP address, 127.0.0.1 and localhost too, since VIP 5 and VIP 6 pass TLS through
                      and clients there see the server's certificate

The configuration (<state>/true-pacs-demo.yaml) is the True PACS template with the VIPs on the VIP
address (ports moved by port_offset), the simulated replicas as real servers, vip.pem as WFC_443's
certificate, and the demo CA as server_tls.ca_file, so verification of the servers is `required`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .. import pki
from ..templates.true_pacs import SERVICES, TruePacsParams, render_true_pacs
from ..templates.true_pacs import ServiceSpec as TemplateService
from .control import DemoControl, DemoProcess
from .spec import DemoSpec, ReplicaSpec, ServiceSpec, TlsSpec, replica_address

REPLICAS = 2
FIRST_SUBNET = 10
DEFAULT_STATE_DIR = Path("/var/lib/pacslb-demo")  # not /tmp: a predictable name there is anyone's to create first
CONFIG_NAME = "true-pacs-demo.yaml"
SPEC_NAME = "demo-services.json"
CHECK_LISTENER_SUFFIX = "-https-check"
# Leaf certificates are issued again when they expire within this margin (or miss a name).
RENEW_MARGIN = dt.timedelta(days=30)

Kind = Literal["http", "amqp"]


@dataclass(frozen=True)
class Listener:
    """One simulated service of the demo spec: a port on every replica address of a True PACS service."""

    name: str  # the demo spec's service name (what X-Pacslb-Service says)
    service: str  # the True PACS service it serves
    port: int
    kind: Kind
    tls: bool
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Endpoint:
    """A virtual service as the demo presents it: where it listens and a command that tries it."""

    ref: str  # "VIP 2"
    name: str  # "WFC_443"
    protocol: str  # "https", "http", "tls", "amqp"
    address: str
    port: int
    url: str | None  # for HTTP(S)
    command: str  # a shell command that answers through it
    note: str


def served_services() -> list[TemplateService]:
    """The True PACS services with real servers, in the template's order (32: 29 backend-only, VIP 1, 5, 6)."""
    return [s for s in SERVICES if s.server_port is not None]


def _is_tls(spec: TemplateService) -> bool:
    return spec.encrypted or (spec.check == "https" and spec.parent != "WFC_http")


class TruePacsDemo:
    """The plan of one demo on one state directory; `write()` puts its files in place."""

    def __init__(
        self,
        state_dir: Path,
        *,
        vip_address: str = "127.0.0.1",
        port_offset: int = 0,
        server_octet: int = 0,
        replicas: int = REPLICAS,
        agent_port: int | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.vip_address = str(ipaddress.ip_address(vip_address))
        self.port_offset = port_offset
        self.server_octet = server_octet
        self.replicas = replicas
        self.agent_port = agent_port  # settings.health.agent_port when 334 is taken (None: the default)
        self.listeners = self._plan_listeners()

    # --- the plan --------------------------------------------------------------------------------

    def addresses_of(self, service: str) -> tuple[str, ...]:
        """The replica addresses of a True PACS service (replica r1 first)."""
        for i, spec in enumerate(served_services()):
            if spec.name == service:
                return tuple(
                    replica_address(i, r, first_subnet=FIRST_SUBNET, second_octet=self.server_octet) for r in range(self.replicas)
                )
        raise KeyError(f"{service!r} is not a True PACS service with real servers")

    def _plan_listeners(self) -> list[Listener]:
        listeners: list[Listener] = []
        for spec in served_services():
            addresses = self.addresses_of(spec.name)
            kind: Kind = "amqp" if spec.name == "WFC_RMQAMQP" else "http"
            assert spec.server_port is not None
            listeners.append(Listener(spec.name, spec.name, spec.server_port, kind, _is_tls(spec), addresses))
            if spec.parent == "WFC_http" and self.check_port is not None:
                listeners.append(Listener(spec.name + CHECK_LISTENER_SUFFIX, spec.name, self.check_port, "http", True, addresses))
        return listeners

    @property
    def check_port(self) -> int | None:
        """Where VIP 3's backend-only services are checked with HTTPS: the template's default (443)."""
        return TruePacsParams().wfc_http_check_port

    def listeners_of(self, service: str) -> list[Listener]:
        """Every listener of a True PACS service (VIP 3's services have two: traffic and check)."""
        return [listener for listener in self.listeners if listener.service == service]

    def replica_addresses(self) -> list[str]:
        seen = {a for listener in self.listeners for a in listener.addresses}
        return sorted(seen, key=ipaddress.ip_address)

    def vip_port(self, name: str) -> int:
        for spec in SERVICES:
            if spec.name == name and spec.port is not None:
                return spec.port + self.port_offset
        raise KeyError(f"{name!r} is not a True PACS virtual service")

    # --- files -----------------------------------------------------------------------------------

    @property
    def certs_dir(self) -> Path:
        return self.state_dir / "certs"

    @property
    def ca_file(self) -> Path:
        return self.certs_dir / "demo-ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.certs_dir / "demo-ca-key.pem"

    @property
    def vip_cert_file(self) -> Path:
        return self.certs_dir / "vip.pem"

    @property
    def servers_cert_file(self) -> Path:
        return self.certs_dir / "servers.pem"

    @property
    def config_file(self) -> Path:
        return self.state_dir / CONFIG_NAME

    @property
    def spec_file(self) -> Path:
        return self.state_dir / SPEC_NAME

    def vip_names(self) -> list[str]:
        return list(dict.fromkeys([self.vip_address, "127.0.0.1", "localhost"]))

    def server_names(self) -> list[str]:
        return [*self.replica_addresses(), *self.vip_names()]

    def params(self) -> TruePacsParams:
        return TruePacsParams(
            vip_address=self.vip_address,
            port_offset=self.port_offset,
            real_servers={s.name: [(a, None) for a in self.addresses_of(s.name)] for s in served_services()},
            certificate=str(self.vip_cert_file.relative_to(self.state_dir)),
            server_ca_file=str(self.ca_file.relative_to(self.state_dir)),
            agent_port=self.agent_port,
        )

    def problems(self) -> list[str]:
        return self.params().problems()

    def config_text(self) -> str:
        """The True PACS configuration pointed at the simulated services (ValueError if unusable)."""
        return render_true_pacs(self.params())

    def spec(self) -> DemoSpec:
        tls = TlsSpec(cert=str(self.servers_cert_file))
        return DemoSpec(
            services=tuple(
                ServiceSpec(
                    name=listener.name,
                    port=listener.port,
                    kind=listener.kind,
                    tls=tls if listener.tls else None,
                    replicas=tuple(ReplicaSpec(f"r{r + 1}", a) for r, a in enumerate(listener.addresses)),
                )
                for listener in self.listeners
            ),
        ).validate()

    def write(self) -> None:
        """The certificates, the simulated services' spec and the configuration, under the state directory."""
        self.state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        ca = self._ca()
        self._leaf(self.vip_cert_file, ca, "pacslb demo VIP", self.vip_names())
        self._leaf(self.servers_cert_file, ca, "pacslb demo real servers", self.server_names())
        pki.write_atomic(self.spec_file, self.spec().dumps().encode())
        pki.write_atomic(self.config_file, self.config_text().encode())

    def _ca(self) -> pki.Issued:
        """The demo CA: the one of an earlier run when it is still good, else a new one."""
        try:
            ca = pki.load_issued(self.ca_file.read_bytes() + self.ca_key_file.read_bytes())
        except (OSError, ValueError):
            ca = None
        if ca is not None and ca.cert.not_valid_after_utc - RENEW_MARGIN > dt.datetime.now(dt.timezone.utc):
            return ca
        ca = pki.make_ca("pacslb demo CA")
        pki.write_pem(self.ca_key_file, ca.key_pem)
        pki.write_pem(self.ca_file, ca.cert_pem)
        return ca

    def _leaf(self, path: Path, ca: pki.Issued, common_name: str, names: list[str]) -> None:
        """Issue a certificate for `names`, signed by `ca`, into `path` (certificate, CA, key: one PEM)."""
        issued = pki.issue(ca, common_name, names)
        pki.write_pem(path, issued.bundle(chain=[ca]))

    def services(self, **kwargs: Any) -> DemoProcess:
        """The simulated services as a child process (start it with `with` or `.start()`)."""
        return DemoProcess(self.spec_file, **kwargs)

    # --- stopping and starting a simulated real server -------------------------------------------

    def stop_server(self, control: DemoControl, service: str, replica: str) -> None:
        """Stop replica `replica` ("r1") of a True PACS service: every port it listens on."""
        for listener in self.listeners_of(service):
            control.stop(listener.name, replica)

    def start_server(self, control: DemoControl, service: str, replica: str) -> None:
        for listener in self.listeners_of(service):
            control.start(listener.name, replica)

    # --- what the demo prints --------------------------------------------------------------------

    def _hostport(self, port: int, default: int | None = None) -> str:
        host = f"[{self.vip_address}]" if ":" in self.vip_address else self.vip_address
        return host if port == default else f"{host}:{port}"

    def endpoints(self) -> list[Endpoint]:
        """The six virtual services, each with a command that answers through it."""
        cacert = f"--cacert {shlex.quote(str(self.ca_file))}"
        out: list[Endpoint] = []
        for spec in SERVICES:
            if spec.port is None:
                continue
            port = self.vip_port(spec.name)
            ref = spec.ref
            if spec.name == "WFC_RMQAMQP":
                script = (
                    f'import socket; s = socket.create_connection(("{self.vip_address}", {port})); '
                    's.sendall(b"AMQP\\x00\\x00\\x09\\x01"); print(s.recv(4096))'
                )
                out.append(Endpoint(ref, spec.name, "amqp", self.vip_address, port, None,
                                    f"python3 -c '{script}'",
                                    "AMQP 0-9-1: the header brings Connection.Start, naming the replica"))  # fmt: skip
            elif spec.name == "WFC_443":
                url = f"https://{self._hostport(port, 443)}/inference"
                out.append(Endpoint(ref, spec.name, "https", self.vip_address, port, url, f"curl {cacert} {url}",
                                    "TLS ends here with vip.pem, re-encrypted to the servers' 443"))  # fmt: skip
            elif spec.name == "WFC_http":
                url = f"http://{self._hostport(port, 80)}/inference"
                out.append(Endpoint(ref, spec.name, "http", self.vip_address, port, url, f"curl {url}",
                                    "plain HTTP to the servers' port 80"))  # fmt: skip
            elif spec.name == "WFC_10443":
                url = f"http://{self._hostport(port, 80)}/xeui"
                out.append(Endpoint(ref, spec.name, "http", self.vip_address, port, url, f"curl {url}",
                                    "re-encrypted to the servers' 10443"))  # fmt: skip
            else:  # VIP 5, VIP 6: TLS passes through to the servers
                url = f"https://{self._hostport(port, 443)}/"
                note = "TLS passes through to the servers"
                if spec.persistence == "source-ip":
                    note += "; source-IP persistence"
                out.append(Endpoint(ref, spec.name, "tls", self.vip_address, port, url, f"curl {cacert} {url}", note))
        return out

    def banner(self, *, program: str, services_pid: int | None, control_url: str | None) -> str:
        """What `pacslb demo` prints once everything runs."""
        state = shlex.quote(str(self.state_dir))
        addresses = self.replica_addresses()
        rows = self.endpoints()
        name_width = max(len(e.name) for e in rows)
        lines = [
            f"pacslb demo: the True PACS template in front of simulated True PACS services, on {self.state_dir}",
            "",
            "virtual services (each answer names the simulated service and replica that served it):",
        ]
        for e in rows:
            lines.append(f"  {e.ref:<6} {e.name:<{name_width}}  {e.protocol:<5} {self._hostport(e.port)}  ({e.note})")
            lines.append(f"         {e.command}")
        words = sorted({s.word.lower() for s in SERVICES if s.parent is not None})
        lines += [
            "",
            "  VIP 2, 3 and 4 send a path to the backend-only service named after it (SITE-SPECIFIC rules): "
            + ", ".join("/" + w for w in words)
            + "; other paths go to the XE services.",
            "",
            f"simulated services: {len(served_services())} True PACS services x {self.replicas} replicas on "
            f"{addresses[0]} ... {addresses[-1]}" + (f" (PID {services_pid})" if services_pid else ""),
        ]
        if control_url:
            lines.append(
                f"  stop a replica to see a failover: curl -X POST {control_url}/replicas/WFC_inference_443/r1/stop"
                f"   (start it again: .../r1/start)"
            )
        lines += [
            f"configuration: {self.config_file}",
            f"certificates: {self.certs_dir}/ (demo-ca.pem is the CA that clients and the load balancer trust)",
            f"status: {program} status --state-dir {state}",
            f"stop: Ctrl-C here, or {program} stop --state-dir {state}",
        ]
        return "\n".join(lines)
