"""The nftables ruleset of the Layer 4 services, rendered from the model: a pure function with deterministic output.

pacslb owns two tables and touches nothing else on the host:

- `inet pacslb` for layer4-nat and layer4-snat services (conntrack NAT in the prerouting hook);
- `netdev pacslb` for layer4-dr services (an ingress chain that rewrites the destination MAC and
  forwards the frame: no conntrack, no routing, replies go straight from the real server to the client).

The file starts with `table F pacslb` + `delete table F pacslb` for both tables, so one `nft -f` of it
replaces whatever pacslb had before in a single transaction (or removes it, when no Layer 4 service is left).

How a new flow is dispatched (in nftables' words):

    vips4 / vips6   verdict map  VIP . protocol . port (ranges)  ->  jump vs_<service>
    vs_<service>    persistence (and in DR the flow table) first, then `jump pick_<service>`, else drop
    pick_<service>  numgen inc | numgen random | jhash ... mod W  vmap @sched_<service>
    sched_<service> slot -> jump rs<id>_<service>_<server>   (W slots, interleaved by weight)
    avail_<service> real-server id -> jump rs<id>_...        (servers that may still take known clients)
    rs<id>_...      remember the choice (sticky / flow map, ct mark), then dnat (NAT) or MAC rewrite + fwd (DR)

Every real server of every Layer 4 service has a numeric id (1, 2, ... in configuration order), which
the NAT rules also write into the connection's conntrack mark: that is how SNAT flows are masqueraded,
how halted real servers lose their established connections, and how connections can be counted per
real server (`conntrack -L -m ID`).

Real-server changes (state, weight, health) touch only the objects of their service (`sched_*`,
`avail_*`, `pick_*`) and the `halted` set: `service_update()` writes that transaction, built from the
same functions as the whole file.

Schedulers (see docs/layer4.md):
- weighted-round-robin: `numgen inc mod W` over a smooth weighted round-robin sequence of W slots
  (weights reduced by their greatest common divisor), so connections interleave rather than come in blocks;
- source-hash: `jhash <source address> mod W` over the same slots;
- weighted-least-connections: nftables cannot compare live connection counts while it picks, so it falls
  back to weighted random (`numgen random mod W` over the same slots): over many connections each real
  server gets its weight's share, with no shared counter that all flows would march through in step.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import reduce
from math import gcd
from typing import Mapping

from ...model.config import Config, Mode, Protocol, RealServerState, Scheduler, StickTablePersistence, VirtualService

TABLE = "pacslb"
DR_FLOW_TABLE_SIZE = 1_048_576
JHASH_SEED = "0x5ac5"  # fixed, so that the same client lands on the same slot across applies

_DEVICE_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class RenderError(ValueError):
    """The model cannot be written as a ruleset with what the environment tells (e.g. a DR MAC is unknown)."""


@dataclass(frozen=True)
class Layer4Env:
    """What the rendering needs beyond the model; the appliance finds it at apply time, the renderer never looks.

    Direct routing needs Layer 2 facts the model does not hold: the device that holds each VIP (its
    ingress chain hooks there), the device that reaches each real server, that device's MAC (the new
    source MAC) and each real server's MAC (from the neighbour table).
    """

    vip_devices: Mapping[str, str] = field(default_factory=dict)  # VIP address -> device holding it
    routes: Mapping[str, str] = field(default_factory=dict)  # real-server address -> device that reaches it
    link_macs: Mapping[str, str] = field(default_factory=dict)  # device -> its MAC address
    neighbours: Mapping[str, str] = field(default_factory=dict)  # real-server address -> its MAC address
    down: frozenset[tuple[str, str]] = frozenset()  # (service, real server) failing their health check

    @classmethod
    def from_dict(cls, data: Mapping) -> "Layer4Env":
        """From plain data (the golden cases' env.yaml): the four mappings, and `down` as [service, server] pairs."""
        return cls(
            vip_devices={str(k): str(v) for k, v in (data.get("vip_devices") or {}).items()},
            routes={str(k): str(v) for k, v in (data.get("routes") or {}).items()},
            link_macs={str(k): str(v) for k, v in (data.get("link_macs") or {}).items()},
            neighbours={str(k): str(v) for k, v in (data.get("neighbours") or {}).items()},
            down=frozenset((str(vs), str(rs)) for vs, rs in (data.get("down") or [])),
        )

    def devices(self) -> list[str]:
        """Every device the ruleset may name."""
        return sorted(set(self.vip_devices.values()) | set(self.routes.values()) | set(self.link_macs))


# --- view objects, in nftables' words -----------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    id: int
    name: str
    chain: str
    family: int  # 4 or 6
    address: str
    port: int | None
    weight: int
    state: RealServerState
    backup: bool
    down: bool
    device: str | None = None  # DR only
    mac: str | None = None  # DR only
    lb_mac: str | None = None  # DR only

    @property
    def available(self) -> bool:
        """May take the clients it already has (persistence, DR flows): online or drain, and up."""
        return self.state is not RealServerState.HALT and not self.down

    @property
    def schedulable(self) -> bool:
        """May take new clients."""
        return self.state is RealServerState.ONLINE and self.weight > 0 and not self.down


@dataclass(frozen=True)
class Service:
    name: str
    mode: Mode
    family: int
    protocols: tuple[str, ...]
    listeners: tuple[tuple[str, str], ...]  # (address or prefix, port or range)
    scheduler: Scheduler
    sticky_timeout: str | None
    sticky_size: int
    flow_timeout: str
    servers: tuple[Server, ...]

    @property
    def chain(self) -> str:
        return f"vs_{self.name}"

    @property
    def pick(self) -> str:
        return f"pick_{self.name}"

    @property
    def sched(self) -> str:
        return f"sched_{self.name}"

    @property
    def avail(self) -> str:
        return f"avail_{self.name}"

    @property
    def sticky(self) -> str:
        return f"sticky{self.family}_{self.name}"

    @property
    def flows(self) -> str:
        return f"flows{self.family}_{self.name}"

    @property
    def table(self) -> str:
        return "netdev" if self.mode is Mode.LAYER4_DR else "inet"

    @property
    def saddr(self) -> str:
        return "ip saddr" if self.family == 4 else "ip6 saddr"

    @property
    def addr_type(self) -> str:
        return "ipv4_addr" if self.family == 4 else "ipv6_addr"


# --- transforms ---------------------------------------------------------------------------------------


def _family(address: str) -> int:
    return ipaddress.ip_address(address).version


def nft_duration(milliseconds: int) -> str:
    """A duration as nftables writes it: `1d2h`, `30m`, `1500ms`."""
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if milliseconds >= size:
            parts.append(f"{milliseconds // size}{unit}")
            milliseconds %= size
    return "".join(parts) or "1s"


def _device(name: str) -> str:
    if not _DEVICE_RE.match(name):
        raise RenderError(f"{name!r} is not a network device name")
    return f'"{name}"'


def _mac(value: str, what: str) -> str:
    mac = value.lower()
    if not _MAC_RE.match(mac):
        raise RenderError(f"{value!r} ({what}) is not a MAC address")
    return mac


def layer4_services(config: Config) -> list[VirtualService]:
    return [vs for vs in config.virtual_services if vs.mode.is_layer4]


def transform(config: Config, env: Layer4Env) -> list[Service]:
    """Model -> view objects; ids are given to real servers in configuration order over all Layer 4 services."""
    services: list[Service] = []
    next_id = 1
    for vs in layer4_services(config):
        family = _family(vs.listen[0].address)
        servers: list[Server] = []
        for rs in vs.real_servers:
            try:
                rs_family = _family(rs.address)
            except ValueError:
                raise RenderError(
                    f"virtual_services[{vs.name}].real_servers[{rs.name}].address: Layer 4 needs an IP address, not {rs.address!r}"
                ) from None
            if rs_family != family:
                raise RenderError(
                    f"virtual_services[{vs.name}].real_servers[{rs.name}].address: IPv{rs_family} real server behind an IPv{family} VIP"
                )
            device = mac = lb_mac = None
            if vs.mode is Mode.LAYER4_DR:
                where = f"virtual_services[{vs.name}].real_servers[{rs.name}]"
                device = env.routes.get(rs.address)
                if device is None:
                    raise RenderError(f"{where}: no route to {rs.address} is known: DR needs the real server on a local network")
                if rs.address not in env.neighbours:
                    raise RenderError(f"{where}: the MAC address of {rs.address} is unknown (no neighbour entry on {device})")
                mac = _mac(env.neighbours[rs.address], f"MAC of {rs.address}")
                if device not in env.link_macs:
                    raise RenderError(f"{where}: the MAC address of device {device} is unknown")
                lb_mac = _mac(env.link_macs[device], f"MAC of {device}")
                _device(device)
            servers.append(
                Server(
                    id=next_id,
                    name=rs.name,
                    chain=f"rs{next_id}_{vs.name}_{rs.name}",
                    family=family,
                    address=rs.address,
                    port=rs.port,
                    weight=rs.weight,
                    state=rs.state,
                    backup=rs.backup,
                    down=(vs.name, rs.name) in env.down,
                    device=device,
                    mac=mac,
                    lb_mac=lb_mac,
                )
            )
            next_id += 1
        listeners = []
        for listener in vs.listen:
            ip = ipaddress.ip_address(listener.address)
            address = f"{ip}/0" if ip.is_unspecified else str(ip)
            if ip.version != family:
                raise RenderError(f"virtual_services[{vs.name}].listen: a Layer 4 service listens on one address family")
            listeners.append((address, str(listener.port)))
        persistence = vs.persistence
        sticky = isinstance(persistence, StickTablePersistence) and persistence.type == "source-ip"
        timeouts = config.effective_timeouts(vs)
        services.append(
            Service(
                name=vs.name,
                mode=vs.mode,
                family=family,
                protocols=("tcp", "udp") if vs.protocol is Protocol.TCP_UDP else (vs.protocol.value,),
                listeners=tuple(listeners),
                scheduler=vs.scheduler,
                sticky_timeout=nft_duration(persistence.timeout.milliseconds) if sticky else None,
                sticky_size=persistence.table_size if sticky else 0,
                flow_timeout=nft_duration(timeouts.client.milliseconds),
                servers=tuple(servers),
            )
        )
    return services


def smooth_wrr(weights: list[tuple[int, int]]) -> list[int]:
    """Slots of a smooth weighted round robin (nginx's): ids in the order they take turns, weights reduced by their gcd."""
    if not weights:
        return []
    divisor = reduce(gcd, (w for _, w in weights))
    reduced = [(sid, w // divisor) for sid, w in weights]
    total = sum(w for _, w in reduced)
    current = {sid: 0 for sid, _ in reduced}
    slots = []
    for _ in range(total):
        for sid, w in reduced:
            current[sid] += w
        best = max(reduced, key=lambda item: (current[item[0]], -item[0]))[0]
        current[best] -= total
        slots.append(best)
    return slots


def schedule(service: Service) -> list[Server]:
    """The servers that take new clients: the up, online, weighted non-backups; else the backups."""
    primary = [s for s in service.servers if s.schedulable and not s.backup]
    return primary or [s for s in service.servers if s.schedulable and s.backup]


def slots(service: Service) -> list[Server]:
    by_id = {s.id: s for s in service.servers}
    return [by_id[sid] for sid in smooth_wrr([(s.id, s.weight) for s in schedule(service)])]


# --- text ---------------------------------------------------------------------------------------------


def _elements(items: list[str], indent: str) -> list[str]:
    if not items:
        return []
    lines = [f"{indent}elements = {{"]
    for i, item in enumerate(items):
        lines.append(f"{indent}\t{item}" + ("," if i < len(items) - 1 else ""))
    lines.append(f"{indent}}}")
    return lines


def sched_elements(service: Service) -> list[str]:
    return [f"{i} : jump {s.chain}" for i, s in enumerate(slots(service))]


def avail_elements(service: Service) -> list[str]:
    return [f"{s.id} : jump {s.chain}" for s in service.servers if s.available]


def pick_rules(service: Service) -> list[str]:
    """The rule of pick_<service>: none when no real server takes new clients."""
    count = len(slots(service))
    if count == 0:
        return []
    if service.scheduler is Scheduler.SOURCE_HASH:
        expression = f"jhash {service.saddr} mod {count} seed {JHASH_SEED}"
    elif service.scheduler is Scheduler.WEIGHTED_LEAST_CONNECTIONS:
        expression = f"numgen random mod {count}"
    else:
        expression = f"numgen inc mod {count}"
    return [f"{expression} vmap @{service.sched}"]


def halted_ids(services: list[Service]) -> list[int]:
    return [s.id for svc in services if svc.mode is not Mode.LAYER4_DR for s in svc.servers if s.state is RealServerState.HALT]


def _flow_key(service: Service) -> tuple[str, str]:
    """(type, expression) of the DR flow map's key: client address and port, protocol, VIP port."""
    return (
        f"{service.addr_type} . inet_service . inet_proto . inet_service",
        f"{service.saddr} . th sport . meta l4proto . th dport",
    )


def _service_maps(service: Service) -> list[str]:
    t = "\t"
    out = [
        f"{t}# {service.mode.value} service {service.name}",
        f"{t}map {service.sched} {{",
        f"{t}\ttypeof numgen inc mod 1 : verdict",
        *_elements(sched_elements(service), t * 2),
        f"{t}}}",
        "",
        f"{t}map {service.avail} {{",
        f"{t}\ttype mark : verdict",
        *_elements(avail_elements(service), t * 2),
        f"{t}}}",
        "",
    ]
    if service.sticky_timeout:
        out += [
            f"{t}map {service.sticky} {{",
            f"{t}\ttype {service.addr_type} : mark",
            f"{t}\tsize {service.sticky_size}",
            f"{t}\tflags dynamic,timeout",
            f"{t}\ttimeout {service.sticky_timeout}",
            f"{t}}}",
            "",
        ]
    if service.mode is Mode.LAYER4_DR:
        key_type, _ = _flow_key(service)
        out += [
            f"{t}map {service.flows} {{",
            f"{t}\ttype {key_type} : mark",
            f"{t}\tsize {DR_FLOW_TABLE_SIZE}",
            f"{t}\tflags dynamic,timeout",
            f"{t}\ttimeout {service.flow_timeout}",
            f"{t}}}",
            "",
        ]
    return out


def _chain(name: str, rules: list[str], hook: str | None = None) -> list[str]:
    out = [f"\tchain {name} {{"]
    if hook:
        out.append(f"\t\t{hook}")
    out += [f"\t\t{rule}" for rule in rules]
    out += ["\t}", ""]
    return out


def _service_chains(service: Service) -> list[str]:
    dr = service.mode is Mode.LAYER4_DR
    mark = "meta mark" if dr else "ct mark"
    rules: list[str] = []
    if dr:
        _, key = _flow_key(service)
        rules += [f"meta mark set {key} map @{service.flows}", f"meta mark vmap @{service.avail}"]
    if service.sticky_timeout:
        rules += [f"{mark} set {service.saddr} map @{service.sticky}", f"{mark} vmap @{service.avail}"]
    rules += [f"jump {service.pick}", "drop"]
    out = _chain(service.chain, rules) + _chain(service.pick, pick_rules(service))
    for server in service.servers:
        rs_rules: list[str] = []
        if dr:
            _, key = _flow_key(service)
            rs_rules.append(f"update @{service.flows} {{ {key} : {server.id} }}")
        if service.sticky_timeout:
            rs_rules.append(f"update @{service.sticky} {{ {service.saddr} : {server.id} }}")
        if dr:
            rs_rules += [
                "meta mark set 0",
                f"ether saddr set {server.lb_mac} ether daddr set {server.mac} fwd to {_device(server.device or '')}",
            ]
        else:
            rs_rules.append(f"ct mark set {server.id}")
            ip = "ip" if server.family == 4 else "ip6"
            if server.port is None:
                rs_rules.append(f"dnat {ip} to {server.address}")
            else:
                address = server.address if server.family == 4 else f"[{server.address}]"
                protocols = ", ".join(service.protocols)
                rs_rules.append(f"meta l4proto {{ {protocols} }} dnat {ip} to {address}:{server.port}")
        out += [f"\t# real server {server.name} ({server.state.value}, weight {server.weight}{', down' if server.down else ''})"]
        out += _chain(server.chain, rs_rules)
    return out


def _dispatch_maps(services: list[Service]) -> tuple[list[str], list[str]]:
    """The vips4/vips6 verdict maps and the rules that consult them."""
    maps: list[str] = []
    rules: list[str] = []
    for family, addr_type, daddr in ((4, "ipv4_addr", "ip daddr"), (6, "ipv6_addr", "ip6 daddr")):
        elements = [
            f"{address} . {protocol} . {port} : jump {svc.chain}"
            for svc in services
            if svc.family == family
            for address, port in svc.listeners
            for protocol in svc.protocols
        ]
        if not elements:
            continue
        maps += [
            f"\tmap vips{family} {{",
            f"\t\ttype {addr_type} . inet_proto . inet_service : verdict",
            "\t\tflags interval",
            *_elements(elements, "\t\t"),
            "\t}",
            "",
        ]
        rules.append(f"{daddr} . meta l4proto . th dport vmap @vips{family}")
    return maps, rules


def _nat_table(services: list[Service]) -> list[str]:
    maps, dispatch = _dispatch_maps(services)
    snat = [s.id for svc in services if svc.mode is Mode.LAYER4_SNAT for s in svc.servers]
    out = [f"table inet {TABLE} {{", *maps]
    out += ["\tset halted {", "\t\ttype mark", *_elements([str(i) for i in halted_ids(services)], "\t\t"), "\t}", ""]
    if snat:
        out += ["\tset snat_marks {", "\t\ttype mark", *_elements([str(i) for i in snat], "\t\t"), "\t}", ""]
    for svc in services:
        out += _service_maps(svc)
    out += _chain("prerouting", dispatch, "type nat hook prerouting priority dstnat; policy accept;")
    out += _chain("forward", ["ct status dnat ct mark @halted drop"], "type filter hook forward priority filter; policy accept;")
    if snat:
        out += _chain(
            "postrouting",
            ["ct status dnat ct mark @snat_marks masquerade"],
            "type nat hook postrouting priority srcnat; policy accept;",
        )
    for svc in services:
        out += _service_chains(svc)
    out[-1:] = ["}"] if out[-1] == "" else out[-1:] + ["}"]
    return out


def _dr_table(services: list[Service], env: Layer4Env) -> list[str]:
    maps, dispatch = _dispatch_maps(services)
    devices: list[str] = []
    for svc in services:
        for address, _ in svc.listeners:
            vip = address.split("/")[0]
            device = env.vip_devices.get(vip)
            if device is None:
                raise RenderError(
                    f"virtual_services[{svc.name}].listen: no device holds the VIP {vip}: "
                    "a DR service needs its VIP on a device of the load balancer (its ingress chain hooks there)"
                )
            if device not in devices:
                devices.append(device)
    out = [f"table netdev {TABLE} {{", *maps]
    for svc in services:
        out += _service_maps(svc)
    for device in sorted(devices):
        out += _chain(
            f"ingress_{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}",
            dispatch,
            f"type filter hook ingress device {_device(device)} priority -500; policy accept;",
        )
    for svc in services:
        out += _service_chains(svc)
    out[-1:] = ["}"] if out[-1] == "" else out[-1:] + ["}"]
    return out


HEADER = [
    "#!/usr/sbin/nft -f",
    "# Written by pacslb: the Layer 4 virtual services. pacslb owns these two tables and nothing else.",
    "# Applied in one transaction: each table is created if missing, deleted, then defined again.",
    f"table inet {TABLE}",
    f"delete table inet {TABLE}",
    f"table netdev {TABLE}",
    f"delete table netdev {TABLE}",
]


def render(config: Config, env: Layer4Env) -> str:
    """The whole ruleset file: both pacslb tables (only those that have services), replacing what was there."""
    services = transform(config, env)
    out = list(HEADER)
    nat = [s for s in services if s.mode is not Mode.LAYER4_DR]
    dr = [s for s in services if s.mode is Mode.LAYER4_DR]
    if nat:
        out += [""] + _nat_table(nat)
    if dr:
        out += [""] + _dr_table(dr, env)
    return "\n".join(out) + "\n"


def removal() -> str:
    """The file that removes pacslb's tables (and nothing else)."""
    return "\n".join(HEADER) + "\n"


def service_update(config: Config, env: Layer4Env, name: str) -> str:
    """One transaction that brings a service's real-server states, weights and health up to date.

    It rewrites the service's scheduling map, its availability map and its pick chain, and the halted
    set's entries of its real servers; nothing else in the table changes. Established connections keep
    their conntrack entries (NAT) or flow-map entries (DR). The caller deletes sticky and flow entries
    that point at real servers leaving the availability map (`process.stale_entries`).
    """
    services = transform(config, env)
    service = next((s for s in services if s.name == name), None)
    if service is None:
        raise RenderError(f"no Layer 4 virtual service is called {name!r}")
    where = f"{service.table} {TABLE}"
    out = [f"flush map {where} {service.sched}"]
    if sched := sched_elements(service):
        out.append(f"add element {where} {service.sched} {{ {', '.join(sched)} }}")
    out.append(f"flush map {where} {service.avail}")
    if avail := avail_elements(service):
        out.append(f"add element {where} {service.avail} {{ {', '.join(avail)} }}")
    out.append(f"flush chain {where} {service.pick}")
    out += [f"add rule {where} {service.pick} {rule}" for rule in pick_rules(service)]
    if service.mode is not Mode.LAYER4_DR:
        ids = ", ".join(str(s.id) for s in service.servers)
        out += [f"add element {where} halted {{ {ids} }}", f"delete element {where} halted {{ {ids} }}"]
        if halted := halted_ids([service]):
            out.append(f"add element {where} halted {{ {', '.join(map(str, halted))} }}")
    return "\n".join(out) + "\n"
