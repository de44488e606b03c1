"""Which VIPs this cluster node announces now, and why each other one is withheld (pure: no I/O, no clock).

A node announces a VIP while it can serve it; the routers then send it a share of the VIP's flows. It withholds
(withdraws) a VIP when, in this order of precedence:

    drained       the node is drained for maintenance (`POST /cluster/drain`, or the cluster's drain key in etcd)
    controller    the controller is not healthy (it is stopping, or cannot tell what runs)
    partitioned   the node is cut off from the cluster (partition.py: no etcd quorum, no majority of nodes answering)
    haproxy       HAProxy does not run (only for the Layer 7 services on the VIP: Layer 4 is the kernel's)
    real servers  every real server of every service on the VIP is down

A VIP shared by several services (different ports) is announced while any of them can serve: the routers route
addresses, not ports, so withdrawing it would take the serving ports away too. A service "can serve" when one
of its real servers is up (UP, or not checked) or, for a service that only routes by rules, one real server
of a backend-only service its rules use; a fallback server alone does not count, since every node has it.

    decide(config, facts) -> Announcement(announced, withheld: VIP -> reason)
    serving(config, status) -> service name -> can serve   (from the appliance's status, as `pacslb status` shows it)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..model.config import Config, VirtualService

UP_STATES = ("UP", "no-check")  # controller/status.py ServerState values that take traffic


@dataclass(frozen=True)
class Facts:
    """What the node knows of itself now: the inputs of the decision."""

    haproxy_running: bool = True
    haproxy_reason: str = ""  # why it does not run, in HAProxy engine's words
    serving: Mapping[str, bool] = field(default_factory=dict)  # virtual service -> can serve (absent: cannot)
    drained: bool = False
    controller_healthy: bool = True
    controller_reason: str = ""
    partitioned: str = ""  # why the node counts as cut off from the cluster (partition.py), or "" when it does not


@dataclass(frozen=True)
class Announcement:
    announced: tuple[str, ...]  # sorted
    withheld: dict[str, str]  # VIP -> reason, for status and the log

    def as_dict(self) -> dict:
        return {"announced": list(self.announced), "withheld": dict(self.withheld)}


def _addresses(vs: VirtualService) -> list[str]:
    """The service's VIPs: its listen addresses but loopback and wildcards (what engines/addresses puts up)."""
    found = []
    for listener in vs.listen:
        ip = ipaddress.ip_address(listener.address)
        if not (ip.is_unspecified or ip.is_loopback) and str(ip) not in found:
            found.append(str(ip))
    return found


def services_by_vip(config: Config) -> dict[str, list[VirtualService]]:
    """Every VIP of the configuration with the services that listen on it (in configuration order)."""
    by_vip: dict[str, list[VirtualService]] = {}
    for vs in config.virtual_services:
        for address in _addresses(vs):
            by_vip.setdefault(address, []).append(vs)
    return dict(sorted(by_vip.items(), key=lambda item: (ipaddress.ip_address(item[0]).version, ipaddress.ip_address(item[0]))))


def _service_reason(vs: VirtualService, facts: Facts) -> str | None:
    """Why this service cannot serve on this node, or None when it can."""
    if vs.mode.is_layer7 and not facts.haproxy_running:
        return f"HAProxy is not running ({facts.haproxy_reason})" if facts.haproxy_reason else "HAProxy is not running"
    if not facts.serving.get(vs.name, False):
        return "every real server is down"
    return None


def decide(config: Config, facts: Facts) -> Announcement:
    """The VIPs to announce now and, for every other VIP of the configuration, why not."""
    announced: list[str] = []
    withheld: dict[str, str] = {}
    for vip, services in services_by_vip(config).items():
        if facts.drained:
            withheld[vip] = "drained: this node is drained for maintenance"
            continue
        if not facts.controller_healthy:
            withheld[vip] = f"controller unhealthy: {facts.controller_reason or 'no reason given'}"
            continue
        if facts.partitioned:
            withheld[vip] = facts.partitioned
            continue
        reasons = [(vs.name, _service_reason(vs, facts)) for vs in services]
        if any(reason is None for _, reason in reasons):
            announced.append(vip)
        else:
            withheld[vip] = "; ".join(f"{name}: {reason}" for name, reason in reasons)
    return Announcement(tuple(announced), withheld)


def _up(servers: Iterable) -> bool:
    return any(getattr(rs.state, "value", rs.state) in UP_STATES for rs in servers)


def serving(config: Config, status) -> dict[str, bool]:
    """Per virtual service: can it serve now? `status`: controller/status.py ApplianceStatus (real servers' states).

    A service with real servers of its own: one of them is up. A service without (it routes by rules to
    backend-only services): one real server of one of those services is up."""
    states = {vs.name: vs for vs in status.virtual_services}
    result: dict[str, bool] = {}
    for vs in config.virtual_services:
        seen = states.get(vs.name)
        if seen is None:
            result[vs.name] = False
            continue
        if vs.real_servers:
            result[vs.name] = _up(seen.real_servers)
            continue
        used = [states.get(rule.use_service) for rule in vs.rules if rule.use_service is not None]
        result[vs.name] = any(other is not None and _up(other.real_servers) for other in used)
    return result
