"""The configuration model: one set of classes read and written by the CLI, API, WebUI and templates.

Field names follow the field's vocabulary (virtual service, real server, persistence, scheduler).
Each class checks what it can see alone; rules that span objects live in `pacslb.model.checks`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from . import limits as L
from .alerts import Alerts  # who is told when something happens (issue 14)
from .base import Strict
from .cluster import Cluster  # the active-active cluster (issue 20): node-local, never synced
from .gslb import GSLB  # global server load balancing (issue 19): model/gslb.py
from .ha import HA  # the HA pair (issue 7): node-local, never synced
from .health_checks import (  # noqa: F401 - the checks are part of this model; imported from here too
    APPLIANCE_CHECK_TYPES,
    AETitle,
    AMQPCheck,
    CheckTiming,
    ConnectCheck,
    DicomEchoCheck,
    ExternalCheck,
    HealthCheck,
    HL7Check,
    HTTPCheck,
    NoCheck,
)
from .host import NetworkSettings, TransparentSettings  # the VIP interface; TPROXY's mark and table
from .modes import Mode, Protocol, RealServerState, Scheduler
from .resolvers import MAX_RESOLVERS, Resolvers  # real servers named by DNS (issue 15): model/resolvers.py
from .rewrite import Rewrite  # URL rewriting (issue 15): model/rewrite.py
from .types import Duration, Host, IPAddress, Name, Network, PortRange, Size, Text, URLPath
from .waf import WafPolicy, WafSettings  # the WAF tier (issue 18): model/waf.py

# --- listeners ---------------------------------------------------------------------------------


class Listener(Strict):
    """One address and port (or port range) a virtual service listens on."""

    address: IPAddress = Field(description="the VIP address; 0.0.0.0 or :: for every address")
    port: PortRange = Field(description="a port (8443) or an inclusive range ('8000-8010')")


# --- real servers ------------------------------------------------------------------------------


class RealServer(Strict):
    """A server that receives the traffic of a virtual service (RIP)."""

    name: Name
    address: Host = Field(description="IP address or DNS name of the real server")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="port on the real server; omitted, the port the client connected to (no translation)",
    )
    weight: int = Field(default=100, ge=0, le=256, description="share of new connections, 0 to 256")
    max_connections: int = Field(default=0, ge=0, le=1_000_000, description="0 for no limit; excess connections queue")
    backup: bool = Field(default=False, description="used only when every non-backup real server is down")
    state: RealServerState = RealServerState.ONLINE
    encrypted: bool = Field(default=False, description="re-encrypt traffic to this server with TLS (settings in server_tls)")


class ServerTLS(Strict):
    """How encrypted real servers are reached: verification and SNI."""

    verify: Literal["required", "none"] = Field(
        default="required", description="'required' checks the server's certificate against ca_file"
    )
    ca_file: str | None = Field(default=None, description="PEM file of the CAs trusted for the real servers")
    sni: Text | None = Field(default=None, description="server name sent in the TLS handshake")
    min_version: Literal["1.0", "1.1", "1.2", "1.3"] = "1.2"


class FallbackServer(Strict):
    """Where traffic goes when every real server (backups included) is down: a server, or a maintenance page."""

    address: Host | None = Field(default=None, description="the fallback server's address (with port)")
    port: int | None = Field(default=None, ge=1, le=65535, description="the fallback server's port")
    encrypted: bool = Field(default=False, description="reach the fallback server over TLS (settings in server_tls)")
    maintenance_page: bool = Field(
        default=False,
        description="instead of a server, the appliance answers every request with a maintenance page "
        "(HTTP 503; layer7-http services and the backend-only services they reach)",
    )
    page: str | None = Field(
        default=None,
        description="HTML file of the maintenance page (at most 15 KiB); omitted, a page saying that the "
        "imaging service is temporarily unavailable",
    )

    @model_validator(mode="after")
    def _server_or_page(self) -> "FallbackServer":
        if self.maintenance_page:
            if self.address is not None or self.port is not None or self.encrypted:
                raise ValueError(
                    "a fallback is either a server (address, port, encrypted) or the maintenance page: "
                    "drop address/port/encrypted, or maintenance_page"
                )
            return self
        if self.page is not None:
            raise ValueError("page is the maintenance page's file: set maintenance_page: true as well")
        if self.address is None or self.port is None:
            raise ValueError("a fallback server needs address and port; or set maintenance_page: true")
        return self


class FeedbackAgent(Strict):
    """A feedback agent on each real server (`pacslb agent`, or any agent speaking HAProxy's agent-check protocol)."""

    port: int = Field(default=3333, ge=1, le=65535, description="TCP port of the agent on each real server's address")
    interval: Duration = Field(default=Duration(5000), description="time between two questions to the agent")

    @field_validator("interval")
    @classmethod
    def _interval_floor(cls, interval: Duration) -> Duration:
        if interval.milliseconds < 100:
            raise ValueError("interval must be at least 100ms")
        return interval


# --- persistence -------------------------------------------------------------------------------


# A cookie name is an RFC 6265 token, never empty (HAProxy refuses an empty one).
CookieName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]


class NoPersistence(Strict):
    type: Literal["none"]


class StickTablePersistence(Strict):
    """Persistence kept in a table on the load balancer: by source IP, SSL session ID or X-Forwarded-For."""

    type: Literal["source-ip", "ssl-session-id", "x-forwarded-for"]
    timeout: Duration = Field(default=Duration(30 * 60_000), description="idle time after which an entry expires")
    table_size: Size = Field(default=100_000, description="entries kept at most ('100k')")


class CookiePersistence(Strict):
    """An HTTP cookie that the load balancer inserts, naming the real server."""

    type: Literal["http-cookie"]
    cookie_name: CookieName = "SERVERID"
    max_idle: Duration | None = Field(default=None, description="cookie is ignored after this idle time")


class AppCookiePersistence(Strict):
    """Stick on a cookie the application sets itself (e.g. JSESSIONID)."""

    type: Literal["app-cookie"]
    cookie_name: CookieName = "JSESSIONID"
    timeout: Duration = Duration(30 * 60_000)
    table_size: Size = 100_000


Persistence = Annotated[
    Union[NoPersistence, StickTablePersistence, CookiePersistence, AppCookiePersistence],
    Field(discriminator="type"),
]


# --- TLS termination ---------------------------------------------------------------------------


class HSTS(Strict):
    max_age: int = Field(default=31_536_000, ge=0, le=63_072_000, description="seconds browsers remember HTTPS-only")
    include_subdomains: bool = False
    preload: bool = False


class TLSTermination(Strict):
    """TLS offload on the load balancer for a Layer 7 virtual service."""

    certificates: list[str] = Field(
        min_length=1,
        max_length=L.MAX_CERTIFICATES,
        description="PEM files, each with certificate, key and chain; the first is the default",
    )
    min_version: Literal["1.2", "1.3"] = Field(default="1.2", description="oldest TLS version accepted")
    cipher_policy: Literal["modern", "intermediate", "custom"] = Field(
        default="intermediate", description="Mozilla's named policies, or 'custom' with ciphers"
    )
    ciphers: Text | None = Field(default=None, description="OpenSSL cipher list for TLS 1.2 (with cipher_policy custom)")
    ciphersuites: Text | None = Field(default=None, description="TLS 1.3 suites (with cipher_policy custom)")
    http_redirect_port: int | None = Field(
        default=None, ge=1, le=65535, description="also listen on this port in plain HTTP and redirect to HTTPS"
    )
    hsts: HSTS | None = Field(default=None, description="send Strict-Transport-Security")

    @model_validator(mode="after")
    def _custom_needs_ciphers(self) -> "TLSTermination":
        if self.cipher_policy == "custom" and not (self.ciphers or self.ciphersuites):
            raise ValueError("cipher_policy 'custom' needs ciphers or ciphersuites; or choose 'intermediate'")
        if self.cipher_policy != "custom" and (self.ciphers or self.ciphersuites):
            raise ValueError("ciphers and ciphersuites are used only with cipher_policy 'custom'")
        if self.cipher_policy == "modern" and self.min_version != "1.3":
            raise ValueError("cipher_policy 'modern' means TLS 1.3 only: set min_version '1.3'")
        return self


# --- header rules ------------------------------------------------------------------------------


class HeaderRule(Strict):
    action: Literal["set", "add", "delete"]
    name: Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")] = Field(
        description="header name (RFC 9110 token)"
    )
    value: Text | None = Field(default=None, description="literal value; needed by set and add")

    @model_validator(mode="after")
    def _value_matches_action(self) -> "HeaderRule":
        if self.action in ("set", "add") and self.value is None:
            raise ValueError(f"a '{self.action}' header rule needs a value")
        if self.action == "delete" and self.value is not None:
            raise ValueError("a 'delete' header rule takes no value")
        return self


class Headers(Strict):
    forwarded_for: bool | None = Field(
        default=None, description="insert X-Forwarded-For with the client address; on by default for HTTP"
    )
    request: list[HeaderRule] = Field(
        default_factory=list, max_length=L.MAX_HEADER_RULES, description="changes to requests, in order"
    )
    response: list[HeaderRule] = Field(
        default_factory=list, max_length=L.MAX_HEADER_RULES, description="changes to responses, in order"
    )


# --- rules -------------------------------------------------------------------------------------


class HeaderMatch(Strict):
    name: Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]
    value: Text | None = Field(default=None, description="omitted: the header only has to be present")
    match: Literal["exact", "begins", "contains"] = "exact"


class Match(Strict):
    """Conditions of a rule. Every condition given must hold; a list holds when any of its items does."""

    path_begins: list[URLPath] = Field(default_factory=list, max_length=L.MAX_MATCH_ITEMS)
    path_ends: list[Annotated[Text, Field(min_length=1)]] = Field(default_factory=list, max_length=L.MAX_MATCH_ITEMS)
    host: list[Annotated[Text, Field(min_length=1)]] = Field(
        default_factory=list, max_length=L.MAX_MATCH_ITEMS, description="Host header, without port"
    )
    header: list[HeaderMatch] = Field(default_factory=list, max_length=L.MAX_MATCH_ITEMS)
    sni: list[Annotated[Text, Field(min_length=1)]] = Field(
        default_factory=list, max_length=L.MAX_MATCH_ITEMS, description="TLS server name"
    )
    source: list[Network] = Field(default_factory=list, max_length=L.MAX_MATCH_ITEMS, description="client networks")

    @model_validator(mode="after")
    def _not_empty(self) -> "Match":
        if not any((self.path_begins, self.path_ends, self.host, self.header, self.sni, self.source)):
            raise ValueError("a rule needs at least one condition: path_begins, path_ends, host, header, sni or source")
        return self

    @property
    def http_only_conditions(self) -> list[str]:
        return [n for n in ("path_begins", "path_ends", "host", "header") if getattr(self, n)]


class Redirect(Strict):
    location: Text = Field(description="URL sent in the Location header")
    code: Literal[301, 302, 303, 307, 308] = 302


class Deny(Strict):
    status: Literal[400, 401, 403, 404, 405, 429, 500, 502, 503] = 403


class Rule(Strict):
    """A Layer 7 rule: when `match` holds, do exactly one action."""

    name: Name
    match: Match
    use_service: Name | None = Field(default=None, description="a backend-only service that takes the request")
    redirect: Redirect | None = None
    deny: Deny | None = None
    waf: WafPolicy | None = Field(default=None, description="the WAF for the requests this rule takes (docs/waf.md)")
    rewrite: Rewrite | None = Field(
        default=None, description="with use_service: change path or Host, then route (docs/rewriting.md)"
    )

    @model_validator(mode="after")
    def _one_action(self) -> "Rule":
        actions = [a for a in ("use_service", "redirect", "deny") if getattr(self, a) is not None]
        if len(actions) != 1:
            raise ValueError(
                "a rule needs exactly one action: use_service, redirect or deny"
                + (f" (it has {', '.join(actions)})" if actions else "")
            )
        return self


# --- timeouts ----------------------------------------------------------------------------------


class Timeouts(Strict):
    """Imaging traffic holds connections for long: the defaults follow the reference appliance's 12 h."""

    connect: Duration = Field(default=Duration(4000), description="time to open a connection to a real server")
    client: Duration = Field(default=Duration(12 * 3_600_000), description="client inactivity")
    server: Duration = Field(default=Duration(12 * 3_600_000), description="real-server inactivity")
    tunnel: Duration = Field(default=Duration(12 * 3_600_000), description="inactivity of upgraded / TCP tunnels")
    http_request: Duration = Field(default=Duration(10_000), description="time to receive a whole HTTP request head")
    queue: Duration = Field(default=Duration(30_000), description="time a request may wait for a free real server")


class TimeoutOverrides(Strict):
    connect: Duration | None = None
    client: Duration | None = None
    server: Duration | None = None
    tunnel: Duration | None = None
    http_request: Duration | None = None
    queue: Duration | None = None


# --- virtual services --------------------------------------------------------------------------


# HAProxy's `http-reuse` words: how far a request may take an idle connection to a real server that
# another request (of another client) opened. docs/configuration.md#connection-reuse gives the risk of each.
ConnectionReuse = Literal["never", "safe", "aggressive", "always"]


class VirtualService(Strict):
    """A virtual service (VIP), or a backend-only service reached through another service's rules."""

    name: Name
    description: Annotated[Text, L.at_most(L.MAX_DESCRIPTION), Field(max_length=L.MAX_DESCRIPTION)] | None = None
    mode: Mode
    listen: list[Listener] = Field(
        default_factory=list, max_length=L.MAX_LISTENERS, description="addresses and ports; none for backend-only"
    )
    protocol: Protocol = Field(default=Protocol.TCP, description="Layer 4 only: tcp, udp or tcp+udp")
    scheduler: Scheduler = Scheduler.WEIGHTED_ROUND_ROBIN
    persistence: Persistence = Field(default_factory=lambda: NoPersistence(type="none"))
    health_check: HealthCheck = Field(default_factory=lambda: ConnectCheck(type="connect"))
    feedback_agent: FeedbackAgent | None = Field(
        default=None, description="weights (and drain or down) follow an agent on each real server"
    )
    real_servers: list[RealServer] = Field(default_factory=list, max_length=L.MAX_REAL_SERVERS)
    server_tls: ServerTLS = Field(default_factory=ServerTLS, description="how encrypted real servers are reached")
    fallback: FallbackServer | None = None
    rules: list[Rule] = Field(default_factory=list, max_length=L.MAX_RULES, description="Layer 7 rules, first match wins")
    default_service: Name | None = Field(default=None, description="backend-only service for requests that no rule takes")
    tls: TLSTermination | None = Field(default=None, description="terminate TLS on the load balancer")
    headers: Headers = Field(default_factory=Headers)
    proxy_protocol: Literal["none", "v1", "v2"] = Field(default="none", description="send PROXY protocol to servers")
    transparent: bool = Field(default=False, description="connect to servers from the client's address (TPROXY)")
    source_address: IPAddress | None = Field(
        default=None, description="Layer 7: the address connections to real servers leave from (e.g. the VIP's own)"
    )
    max_connections: int | None = Field(default=None, ge=1, le=10_000_000, description="concurrent client connections")
    timeouts: TimeoutOverrides = Field(default_factory=TimeoutOverrides)
    waf: WafPolicy | None = Field(default=None, description="web application firewall for layer7-http (docs/waf.md)")
    resolvers: Name | None = Field(default=None, description="resolvers section that looks up real servers given by DNS name")
    connection_reuse: ConnectionReuse = Field(
        default="safe", description="HTTP: which requests may share an idle connection to a real server (docs/configuration.md)"
    )

    @model_validator(mode="after")
    def _portless_servers_need_a_check_port(self) -> "VirtualService":
        """A Layer 7 real server without a port (the client's port) can be checked only on health_check.port."""
        if self.mode.is_layer4 or self.health_check.type == "none" or self.health_check.port is not None:
            return self
        portless = [rs.name for rs in self.real_servers if rs.port is None]
        if portless:
            raise ValueError(
                f"real server(s) {', '.join(portless)} have no port, so the health check needs one: "
                "set health_check.port, or give the real servers a port"
            )
        return self

    @model_validator(mode="after")
    def _one_agent_per_server(self) -> "VirtualService":
        """HAProxy asks one agent per server: the appliance's own checks use it, so a feedback agent cannot."""
        if (
            self.fallback is not None
            and self.fallback.maintenance_page
            and self.mode is not Mode.LAYER7_HTTP
            and (self.mode is not Mode.BACKEND_ONLY)
        ):
            raise ValueError(
                f"a maintenance page is HTTP: a {self.mode.value} service can only have a fallback server "
                "(fallback: {address, port}); drop maintenance_page"
            )
        if self.feedback_agent is None:
            return self
        if self.mode.is_layer4:
            raise ValueError("feedback_agent works with Layer 7 and backend-only services (HAProxy asks the agent); drop it here")
        if self.health_check.type in APPLIANCE_CHECK_TYPES:
            raise ValueError(
                f"feedback_agent cannot be combined with a {self.health_check.type} health check: HAProxy asks one "
                "agent per real server, and the appliance's own checks use it. Choose a check HAProxy runs "
                "(connect, http, https, none), or drop feedback_agent"
            )
        return self

    @property
    def forwarded_for(self) -> bool:
        """X-Forwarded-For insertion: on by default for HTTP services."""
        if self.headers.forwarded_for is None:
            return self.mode is Mode.LAYER7_HTTP
        return self.headers.forwarded_for


# --- appliance settings ------------------------------------------------------------------------


class Logging(Strict):
    target: Text = Field(default="stdout", description="'stdout', a syslog address 'HOST:PORT' or a socket path")
    facility: Literal["local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"] = "local0"
    level: Literal["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"] = "info"
    requests: Literal["problems", "all"] = Field(
        default="problems",
        description="which requests and connections are logged: 'problems' (errors, retries, redispatches, "
        "timeouts, 5xx) or 'all' (one line each, for an audit trail; costs about 10% of a small request's CPU)",
    )

    @field_validator("target")
    @classmethod
    def _target_is_a_destination(cls, target: str) -> str:
        if target in ("stdout", "stderr") or target.startswith("/"):
            return target
        if re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?", target):
            return target
        raise ValueError(f"{target!r} is not a log target: write 'stdout', 'stderr', a socket path or HOST:PORT")


class Management(Strict):
    """The management API and WebUI (HTTPS), and where Prometheus metrics are served."""

    enabled: bool = Field(default=True, description="serve the management API and WebUI")
    address: IPAddress = Field(default="127.0.0.1", description="address the API and WebUI listen on")
    port: int = Field(
        default=9443, ge=0, le=65535, description="HTTPS port; 0 picks a free one (written to <state>/management-url)"
    )
    certificate: str | None = Field(
        default=None,
        description="PEM file with certificate, key and chain; omitted, a self-signed one is made at first start "
        "and kept in the state directory",
    )
    session_timeout: Duration = Field(default=Duration(30 * 60_000), description="idle time after which a WebUI session ends")
    session_lifetime: Duration = Field(
        default=Duration(12 * 3600_000),
        description="time after a login at which its session ends, however busy (the dashboard's polling keeps it from "
        "going idle)",
    )
    metrics_address: Text | None = Field(
        default=None,
        description="also serve /metrics without authentication, in plain HTTP, on this 'ADDRESS:PORT'",
    )

    @field_validator("metrics_address")
    @classmethod
    def _address_and_port(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d{1,5})", value)
        if not match or not 0 < int(match[2]) <= 65535:
            raise ValueError(f"{value!r} is not ADDRESS:PORT: write e.g. '127.0.0.1:9101' or '[::1]:9101'")
        return value

    @model_validator(mode="after")
    def _session_timeout_bounds(self) -> "Management":
        if self.session_timeout.milliseconds < 1000:
            raise ValueError("session_timeout must be at least 1s")
        if self.session_lifetime.milliseconds < 60_000:
            raise ValueError("session_lifetime must be at least 1m: a login must last long enough to do something")
        return self


MAX_HEALTH_WORKERS = 64  # check processes: more than the cores only adds context switches


class HealthSettings(Strict):
    """The appliance's health-check service (dicom-echo, hl7, amqp and external checks)."""

    agent_port: int = Field(
        default=334,  # privileged (below 1024): no local user can listen on it in the appliance's place
        ge=1,
        le=65535,
        description="loopback TCP port (127.0.0.1) where the appliance tells HAProxy the results of its own checks "
        "(HAProxy's agent-check protocol); held from start to stop, so keep it below 1024",
    )
    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=MAX_HEALTH_WORKERS)] = Field(
        default="auto",
        description="processes that run the checks, the watches sharded over them (health/workers.py): 'auto' = "
        "in the controller below 500 checks a second, else one per CPU the controller may use; 1 = in the controller itself",
    )

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> object:
        if value == "auto" or (type(value) is int and 1 <= value <= MAX_HEALTH_WORKERS):
            return value
        raise ValueError(
            f"must be 'auto' or a whole number from 1 to {MAX_HEALTH_WORKERS} (processes that run the checks), not {value!r}"
        )


# Where configured files may come from by default: the configuration file's own folder (the True PACS template
# writes its placeholder certificate there), /etc/pacslb, and the system's certificates.
DEFAULT_ALLOWED_DIRECTORIES: tuple[str, ...] = (".", "/etc/pacslb", "/etc/ssl")


class FileSettings(Strict):
    """Where the files a configuration names (pages, certificates, CA files, scripts) may come from (model/files.py)."""

    allowed_directories: list[Annotated[Text, Field(min_length=1)]] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_DIRECTORIES),
        min_length=1,
        max_length=L.MAX_SMALL_LIST,
        description="directories that maintenance pages, certificates, CA files and external check scripts must lie "
        "in (after symbolic links are resolved); a relative entry is read from the configuration file's folder, '.' "
        "is that folder. Node-local, and changed only on the appliance's host, never through the management API",
    )


class RevisionSettings(Strict):
    """How many revisions the store keeps (store/revisions.py prunes the oldest after each applied one)."""

    keep: int = Field(
        default=500, ge=10, le=1_000_000, description="revisions kept; older ones are deleted after each applied revision"
    )


class Settings(Strict):
    """Appliance-wide settings."""

    max_connections: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="concurrent connections in all; omitted, HAProxy derives it from the open-files limit (ulimit -n)",
    )
    threads: int = Field(default=0, ge=0, le=64, description="HAProxy worker threads; 0 follows the CPU count")
    hard_stop_after: Duration = Field(
        default=Duration(3_600_000), description="bound on how long an old worker serves long connections after a reload"
    )
    max_reloads: int = Field(default=50, ge=1, le=1000, description="reloads an old worker survives before it is killed")
    retries: int = Field(default=3, ge=0, le=10, description="connection attempts to real servers, then redispatch")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    log: Logging = Field(default_factory=Logging)
    health: HealthSettings = Field(default_factory=HealthSettings)
    management: Management = Field(default_factory=Management)
    revisions: RevisionSettings = Field(default_factory=RevisionSettings)
    files: FileSettings = Field(default_factory=FileSettings, description="where files named by the configuration may come from")
    network: NetworkSettings = Field(
        default_factory=NetworkSettings, description="the interface of a single node's VIP addresses"
    )
    waf: WafSettings = Field(default_factory=WafSettings, description="the WAF tier's loopback ports (docs/waf.md)")
    transparent: TransparentSettings = Field(
        default_factory=TransparentSettings, description="the packet mark and routing table of TPROXY (transparent: true)"
    )


class Config(Strict):
    """A whole pacslb configuration (`pacslb.yaml`)."""

    version: Literal[1] = Field(description="configuration format version; this release reads 1")
    settings: Settings = Field(default_factory=Settings)
    virtual_services: list[VirtualService] = Field(default_factory=list, max_length=L.MAX_VIRTUAL_SERVICES)
    ha: HA | None = Field(default=None, description="this node's part in an HA pair (node-local: never synced)")
    cluster: Cluster | None = Field(
        default=None, description="this node's part in an active-active cluster (BGP, etcd; node-local: never synced)"
    )
    gslb: GSLB | None = Field(default=None, description="health-aware DNS answers across sites (PowerDNS); omitted, none")
    alerts: Alerts | None = Field(default=None, description="e-mail, webhook and syslog receivers of alerts (docs/alerts.md)")
    resolvers: list[Resolvers] = Field(
        default_factory=list,
        max_length=MAX_RESOLVERS,
        description="name servers for real servers given by DNS name (docs/rewriting.md)",
    )

    def service(self, name: str) -> VirtualService | None:
        """The virtual service called `name`, or None."""
        return next((vs for vs in self.virtual_services if vs.name == name), None)

    def effective_timeouts(self, vs: VirtualService) -> Timeouts:
        """The appliance's timeouts with the service's overrides on top."""
        overrides = vs.timeouts.model_dump(exclude_none=True)
        return self.settings.timeouts.model_copy(update={k: getattr(vs.timeouts, k) for k in overrides})
