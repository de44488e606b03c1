"""The GE HealthCare True PACS template: 6 virtual services and 29 backend-only services.

The services, modes, ports, persistence and health checks follow the deployment guide's VIP table
(`true-pacs-vips.csv`, SP1 and SP2). What the guide does not publish is marked in the YAML comments:
PLACEHOLDER for values the site must replace (addresses, certificate), SITE-SPECIFIC for the path rules
that send a request from VIP 2, 3 and 4 to their backend-only services.

`render_true_pacs(params)` is pure: the same parameters give the same YAML text. The demo points the
template at its simulated services through `TruePacsParams.real_servers` and `port_offset`.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import jinja2
import yaml

TEMPLATE_NAME = "true-pacs"
PLACEHOLDER_CERTIFICATE = "certs/true-pacs-placeholder.pem"

CheckKind = Literal["connect", "none", "https", "http", "amqp"]


@dataclass(frozen=True)
class ServiceSpec:
    """One row of the guide's VIP table, with what the template adds to it."""

    ref: str  # "VIP 2 - B1", as in the guide
    name: str
    mode: Literal["layer7-http", "layer7-tcp", "backend-only"]
    port: int | None  # the listening port (virtual services only), before port_offset
    persistence: Literal["none", "source-ip"]
    check: CheckKind
    parent: str | None  # the virtual service whose rules reach this backend-only service
    server_port: int | None  # the real servers' port; None for services reached only through rules
    encrypted: bool  # TLS from the load balancer to the real servers (re-encryption)
    servers: str  # which placeholder server group: "wfc", "rmq", "wfm", "sr"; "" for none
    summary: str

    @property
    def word(self) -> str:
        """The middle word of a backend-only service's name: WFC_inference_443 -> 'inference'."""
        return self.name.split("_", 1)[1].rsplit("_", 1)[0]

    @property
    def path_prefix(self) -> str:
        """The SITE-SPECIFIC path prefix of the rule that reaches a backend-only service."""
        return "/" + self.word.lower()


# The backend-only services of VIP 2, 3 and 4, by their middle word, in the guide's order.
_WFC_443 = (
    "inference", "profiling", "patient", "CCS", "auth", "outboundhl7", "inboundnotification",
    "eventnotificationmanager", "outboundeventpolling", "metadata", "studymanagement", "xe", "recordmanager",
)  # fmt: skip
_WFC_80 = (
    "inference", "profiling", "CCS", "auth", "outboundeventpolling", "inboundnotification", "eventnotificationmanager",
    "metadata", "patient", "masterfileapp", "masterfiledata", "studymanagement", "xe",
)  # fmt: skip
_WFC_10443 = ("masterfiledata", "masterfileapp", "xeui")


def _backends(vip: str, parent: str, words: Sequence[str], suffix: str, port: int, encrypted: bool) -> list[ServiceSpec]:
    return [
        ServiceSpec(
            ref=f"{vip} - B{i}",
            name=f"WFC_{word}_{suffix}",
            mode="backend-only",
            port=None,
            persistence="none",
            check="https",
            parent=parent,
            server_port=port,
            encrypted=encrypted,
            servers="wfc",
            summary=f"{word} on the WFC servers, port {port}" + (" (HTTPS)" if encrypted else " (HTTP)"),
        )
        for i, word in enumerate(words, start=1)
    ]


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("VIP 1", "WFC_RMQAMQP", "layer7-tcp", 8081, "none", "connect", None, 8081, False, "rmq",
                "RabbitMQ (AMQP) of the WFC servers"),
    ServiceSpec("VIP 2", "WFC_443", "layer7-http", 8443, "none", "none", None, None, False, "",
                "HTTPS entry point of the WFC services: TLS terminated here, re-encrypted to port 443"),
    *_backends("VIP 2", "WFC_443", _WFC_443, "443", 443, True),
    ServiceSpec("VIP 3", "WFC_http", "layer7-http", 80, "none", "none", None, None, False, "",
                "plain HTTP entry point of the WFC services, to port 80"),
    *_backends("VIP 3", "WFC_http", _WFC_80, "80", 80, False),
    ServiceSpec("VIP 4", "WFC_10443", "layer7-http", 8082, "none", "none", None, None, False, "",
                "entry point of the WFC master-file and XE UI services, re-encrypted to port 10443"),
    *_backends("VIP 4", "WFC_10443", _WFC_10443, "10443", 10443, True),
    ServiceSpec("VIP 5", "WFM_karaf_Group", "layer7-tcp", 9094, "source-ip", "https", None, 9094, False, "wfm",
                "WFM Karaf group; TLS passes through to the servers"),
    ServiceSpec("VIP 6", "SR_https_vs", "layer7-tcp", 3080, "none", "https", None, 3080, False, "sr",
                "SR HTTPS service; TLS passes through to the servers"),
)  # fmt: skip

# Rules send a request that matches none of them to this backend-only service. SITE-SPECIFIC too:
# the XE services are taken as the user-facing entry points (the guide publishes no default).
DEFAULT_SERVICES: dict[str, str] = {
    "WFC_443": "WFC_xe_443",
    "WFC_http": "WFC_xe_80",
    "WFC_10443": "WFC_xeui_10443",
}

# Documentation-range addresses (RFC 5737): PLACEHOLDERS that the site replaces.
PLACEHOLDER_SERVERS: dict[str, tuple[str, ...]] = {
    "wfc": ("192.0.2.21", "192.0.2.22"),
    "rmq": ("192.0.2.31", "192.0.2.32"),
    "wfm": ("198.51.100.21", "198.51.100.22"),
    "sr": ("203.0.113.21", "203.0.113.22"),
}
_GROUP_LABEL = {"wfc": "WFC server", "rmq": "RabbitMQ node", "wfm": "WFM Karaf server", "sr": "SR server"}

RealServerSpec = tuple[str, int | None]
"""(address, port) of a real server; port None keeps the service's default port."""


@dataclass(frozen=True, kw_only=True)
class TruePacsParams:
    """What a caller may change in the True PACS template.

    vip_address          address every virtual service listens on (a PLACEHOLDER by default)
    port_offset          added to every listening port (8081 -> 8081+N, 80 -> 80+N ...), for users who
                         cannot bind below 1024 and for the demo; real-server ports do not move
    real_servers         service name -> [(address, port or None)]: replaces that service's placeholder
                         servers (named <group>1, <group>2, ...); services left out keep the placeholders
    certificate          PEM file (certificate + key) of WFC_443's TLS termination, relative to the
                         configuration file's folder
    server_ca_file       PEM file of the CA that signed the real servers' certificates; None writes
                         `verify: none` with a comment telling the site to set it
    check_path           path of the HTTPS (GET) health checks
    wfc_http_check_port  port of the HTTPS check of VIP 3's backend-only services (their traffic goes to
                         port 80, the guide checks them with HTTPS GET); None checks plain HTTP on port 80
    amqp_check           VIP 1 (RabbitMQ) checked with an AMQP handshake (pacslb's `amqp` check) instead of
                         the guide's "Connect to Port"; off by default, as the guide asks
    always_on_default    VIP 2, 3 and 4 ("No checks, Always on" in the guide) get real servers of their own, the
                         WFC servers on their backends' port, unchecked, and take the requests that no rule takes
                         (instead of a default_service); off by default
    agent_port           settings.health.agent_port (None: not written, the default 334); the demo sets it when
                         another appliance on the machine holds 334
    """

    vip_address: str = "192.0.2.10"
    port_offset: int = 0
    real_servers: Mapping[str, Sequence[RealServerSpec]] | None = None
    certificate: str = PLACEHOLDER_CERTIFICATE
    server_ca_file: str | None = None
    check_path: str = "/"
    wfc_http_check_port: int | None = 443
    amqp_check: bool = False
    always_on_default: bool = False
    agent_port: int | None = None

    def problems(self) -> list[str]:
        """What is wrong with these parameters, in words (empty when they are usable)."""
        found: list[str] = []
        try:
            ipaddress.ip_address(self.vip_address)
        except ValueError:
            found.append(f"vip_address {self.vip_address!r} is not an IP address")
        ports = [s.port for s in SERVICES if s.port is not None]
        low, high = min(ports) + self.port_offset, max(ports) + self.port_offset
        if low < 1 or high > 65535:
            found.append(
                f"port_offset {self.port_offset} moves the listening ports to {low}..{high}; ports are 1 to 65535 "
                f"(use {1 - min(ports)} to {65535 - max(ports)})"
            )
        if self.agent_port is not None and not 1 <= self.agent_port <= 65535:
            found.append(f"agent_port {self.agent_port} is out of range: ports are 1 to 65535")
        known = {s.name for s in SERVICES if s.server_port is not None or (self.always_on_default and s.name in DEFAULT_SERVICES)}
        for name, servers in (self.real_servers or {}).items():
            if name not in known:
                found.append(f"real_servers: {name!r} is not a True PACS service with real servers")
            elif not servers:
                found.append(f"real_servers: {name!r} needs at least one (address, port)")
            for address, port in servers:
                if port is not None and not 1 <= port <= 65535:
                    found.append(f"real_servers: {name!r} port {port} is out of range")
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    if not address or any(c.isspace() or c in ",{}[]#:" for c in address):
                        found.append(f"real_servers: {name!r} address {address!r} is not an address")
        if self.wfc_http_check_port is not None and not 1 <= self.wfc_http_check_port <= 65535:
            found.append(f"wfc_http_check_port {self.wfc_http_check_port} is out of range")
        if not self.check_path.startswith("/"):
            found.append(f"check_path {self.check_path!r} must begin with '/'")
        return found


# --- the view: plain data the YAML template lays out ---------------------------------------------------


def _scalar(value: Any) -> str:
    """A YAML scalar that reads back as `value` inside flow collections; double-quoted when plain text would not."""
    text = str(value)
    try:
        plain_ok = yaml.safe_load(f"{{k: [{text}]}}") == {"k": [value]}
    except yaml.YAMLError:
        plain_ok = False
    return text if plain_ok and text == text.strip() else json.dumps(text, ensure_ascii=False)


def _servers(spec: ServiceSpec, params: TruePacsParams) -> list[dict[str, Any]]:
    given = (params.real_servers or {}).get(spec.name)
    if given is not None:
        return [
            {"name": f"{spec.servers}{i}", "address": address, "port": port or spec.server_port,
             "encrypted": spec.encrypted, "comment": ""}
            for i, (address, port) in enumerate(given, start=1)
        ]  # fmt: skip
    return [
        {"name": f"{spec.servers}{i}", "address": address, "port": spec.server_port, "encrypted": spec.encrypted,
         "comment": f"PLACEHOLDER: {_GROUP_LABEL[spec.servers]} {i}"}
        for i, address in enumerate(PLACEHOLDER_SERVERS[spec.servers], start=1)
    ]  # fmt: skip


def _check(spec: ServiceSpec, params: TruePacsParams) -> dict[str, Any]:
    if spec.name == "WFC_RMQAMQP" and params.amqp_check:
        return {"type": "amqp", "port": None}
    if spec.check in ("none", "connect"):
        return {"type": spec.check, "port": None}
    check: dict[str, Any] = {"type": "https", "method": "GET", "path": params.check_path, "port": None}
    if spec.parent == "WFC_http":
        if params.wfc_http_check_port is None:
            check["type"] = "http"
        else:
            check["port"] = params.wfc_http_check_port
    return check


def _always_on(spec: ServiceSpec) -> ServiceSpec:
    """A parent VIP with real servers of its own: the WFC servers on its backend-only services' port."""
    child = next(s for s in SERVICES if s.parent == spec.name)
    return replace(spec, server_port=child.server_port, encrypted=child.encrypted, servers=child.servers)


def _view(params: TruePacsParams) -> dict[str, Any]:
    services = []
    for spec in SERVICES:
        children = [s for s in SERVICES if s.parent == spec.name]
        always_on = params.always_on_default and spec.name in DEFAULT_SERVICES
        served = _always_on(spec) if always_on else spec
        check = _check(spec, params)
        tls_to_servers = served.encrypted or check["type"] == "https"
        services.append(
            {
                "spec": spec,
                "port": None if spec.port is None else spec.port + params.port_offset,
                "servers": _servers(served, params) if served.server_port is not None else [],
                "server_port": served.server_port,
                "always_on": always_on,
                "check": check,
                "tls_to_servers": tls_to_servers,
                "rules": [{"name": c.word.lower(), "prefix": c.path_prefix, "service": c.name} for c in children],
                "default_service": None if always_on else DEFAULT_SERVICES.get(spec.name),
            }
        )
    return {
        "params": params,
        "services": services,
        "services_by_name": {s["spec"].name: s for s in services},
        "vip_is_placeholder": params.vip_address == TruePacsParams().vip_address,
        "cert_is_placeholder": params.certificate == PLACEHOLDER_CERTIFICATE,
        "placeholders": any(rs["comment"] for s in services for rs in s["servers"]),
        "placeholder_groups": [(group, _GROUP_LABEL[group], addresses) for group, addresses in PLACEHOLDER_SERVERS.items()],
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["y"] = _scalar
    return env


def render_true_pacs(params: TruePacsParams | None = None) -> str:
    """The True PACS configuration as commented YAML text; ValueError when the parameters are unusable."""
    params = params or TruePacsParams()
    problems = params.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return _environment().get_template("true-pacs.yaml.j2").render(**_view(params))
