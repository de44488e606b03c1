"""The HA pair: two appliances, one master holding the floating IPs (VRRPv3 by keepalived), configuration
and persistence kept in step.

The whole `ha` section is node-local: each node has its own (role, addresses, the peer's certificate),
and configuration sync never copies it (see `NODE_LOCAL` and `pacslb.ha.peer_link`).
Rules that span the section and the rest of the configuration (floating IPs are VIPs, ...) are in
`ha_problems`, called by `pacslb.model.checks.check`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import Strict
from .limits import MAX_SMALL_LIST
from .types import Duration, IPAddress

# Fields of Config (dotted paths) that belong to one node and are never copied by configuration sync.
# settings.files: which of this host's directories root may read configured files from (model/files.py).
NODE_LOCAL: tuple[str, ...] = ("ha", "cluster", "settings.management", "settings.files")


def without_node_local(data: dict[str, Any], local: tuple[str, ...] = NODE_LOCAL) -> dict[str, Any]:
    """`data` (a configuration's plain JSON data, changed in place) without the dotted paths of `local`."""
    for dotted in local:
        *parents, last = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return data


def with_own_node_local(received: dict[str, Any], own: dict[str, Any], local: tuple[str, ...] = NODE_LOCAL) -> dict[str, Any]:
    """A copy of `received` (plain JSON data from a peer) whose dotted paths of `local` are those of `own` (this
    node's data; a part it does not have, or has as null, is left out)."""
    merged = json.loads(json.dumps(received))
    for dotted in local:
        *parents, last = dotted.split(".")
        src: Any = own
        dst: Any = merged
        for part in parents:
            src = src.get(part) if isinstance(src, dict) else None
            dst = dst.setdefault(part, {}) if isinstance(dst, dict) else None
        if isinstance(dst, dict):
            dst.pop(last, None)
            if isinstance(src, dict) and src.get(last) is not None:
                dst[last] = src[last]
    return merged


DEFAULT_PRIORITY = {"primary": 150, "secondary": 100}

_INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_FINGERPRINT_RE = re.compile(r"^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$")


class FloatingIP(Strict):
    """One address that moves to the master, with the prefix length it gets on the interface."""

    address: IPAddress = Field(description="a VIP address of the configuration")
    prefix: int | None = Field(
        default=None, ge=1, le=128, description="prefix length on the interface; omitted, 32 (IPv4) or 128 (IPv6)"
    )

    @model_validator(mode="after")
    def _prefix_fits(self) -> "FloatingIP":
        limit = 32 if ipaddress.ip_address(self.address).version == 4 else 128
        if self.prefix is not None and self.prefix > limit:
            raise ValueError(f"prefix {self.prefix} is too long for {self.address}: at most {limit}")
        if ipaddress.ip_address(self.address).is_unspecified:
            raise ValueError(f"{self.address} listens on every address and cannot float: give a VIP address")
        return self

    @property
    def interface_address(self) -> str:
        """ADDRESS/PREFIX as keepalived writes it."""
        limit = 32 if ipaddress.ip_address(self.address).version == 4 else 128
        return f"{self.address}/{self.prefix or limit}"


class HASync(Strict):
    """The peer link of configuration sync: HTTPS with client certificates, both ends pinned."""

    port: int = Field(default=9444, ge=1, le=65535, description="TCP port of the sync endpoint on `address` (both nodes)")
    peer_certificate: str | None = Field(
        default=None,
        description="PEM file of the peer's sync certificate (`pacslb ha pair` prints it on the peer); "
        "the only certificate this node accepts on the peer link",
    )
    peer_fingerprint: str | None = Field(
        default=None, description="SHA-256 fingerprint of the peer's sync certificate, checked as well when given"
    )
    interval: Duration = Field(default=Duration(1000), description="how often each node asks the other for its state")

    @field_validator("peer_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _FINGERPRINT_RE.match(value):
            raise ValueError(f"{value!r} is not a SHA-256 fingerprint: 64 hex digits, colons allowed (`pacslb ha pair`)")
        return value.replace(":", "").lower()

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: Duration) -> Duration:
        if not 100 <= value.milliseconds <= 60_000:
            raise ValueError("interval must be between 100ms and 60s")
        return value


class HA(Strict):
    """This node's part in an HA pair (node-local: never synced)."""

    role: Literal["primary", "secondary"] = Field(description="this node's role: the primary pushes configuration")
    address: IPAddress = Field(description="this node's own address on `interface` (VRRP, sync, HAProxy peers)")
    peer_address: IPAddress = Field(description="the other node's own address")
    interface: str = Field(description="network interface that carries VRRP and the floating IPs")
    interface_network: str | None = Field(
        default=None, description="the interface's network (e.g. 10.0.0.0/24): floating IPs outside it are errors"
    )
    floating_ips: list[FloatingIP] | None = Field(
        default=None,
        max_length=MAX_SMALL_LIST,
        description="addresses that move to the master; omitted, every VIP address of the configuration",
    )
    virtual_router_id: int = Field(default=51, ge=1, le=255, description="VRRP router ID, the same on both nodes")
    advert_interval: Duration = Field(
        default=Duration(100), description="VRRPv3 advertisement interval (10ms steps); the master is declared dead after about 3"
    )
    transport: Literal["unicast", "multicast"] = Field(
        default="unicast", description="VRRP adverts to the peer's address only (unicast) or to 224.0.0.18 (multicast)"
    )
    priority: int | None = Field(default=None, ge=1, le=254, description="VRRP priority; omitted, 150 primary, 100 secondary")
    preempt: bool = Field(
        default=False, description="a node of higher priority takes the floating IPs back when it returns (flapping)"
    )
    track_haproxy: bool = Field(default=True, description="a master whose HAProxy is gone hands the floating IPs over")
    garp_repeat: int = Field(default=5, ge=1, le=100, description="gratuitous ARPs sent at once on becoming master")
    garp_delay: Duration = Field(
        default=Duration(1000), description="after becoming master, send the gratuitous ARPs again after this delay (0 never)"
    )
    split_brain: Literal["primary-wins", "keep-current"] = Field(
        default="primary-wins",
        description="when both nodes were master (peer link cut) and see each other again: the primary keeps the "
        "floating IPs, or the node that was master before the cut does",
    )
    peers_port: int = Field(default=10000, ge=1, le=65535, description="TCP port of HAProxy's peers (stick-table sync)")
    sync: HASync = Field(default_factory=HASync, description="configuration sync over the peer link")

    @field_validator("interface")
    @classmethod
    def _interface(cls, value: str) -> str:
        if not _INTERFACE_RE.match(value):
            raise ValueError(f"{value!r} is not an interface name: 1 to 15 letters, digits, '.', '-', '_', ':' or '@'")
        return value

    @field_validator("interface_network")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not a network: write ADDRESS/PREFIX, e.g. 10.0.0.0/24") from None

    @field_validator("advert_interval")
    @classmethod
    def _advert(cls, value: Duration) -> Duration:
        # VRRPv3 carries the interval in centiseconds, 1 to 4095
        if value.milliseconds % 10 or not 10 <= value.milliseconds <= 40_950:
            raise ValueError("advert_interval must be a multiple of 10ms between 10ms and 40.95s (VRRPv3 centiseconds)")
        return value

    @field_validator("garp_delay")
    @classmethod
    def _garp_delay(cls, value: Duration) -> Duration:
        if value.milliseconds % 1000:
            raise ValueError("garp_delay is counted in whole seconds (keepalived's unit): e.g. '1s', or 0 for never")
        return value

    @property
    def effective_priority(self) -> int:
        return self.priority if self.priority is not None else DEFAULT_PRIORITY[self.role]

    @property
    def peer_role(self) -> str:
        return "secondary" if self.role == "primary" else "primary"


def restart_needed(old: HA | None, new: HA | None) -> str | None:
    """Why going from `old` to `new` cannot be applied to a running appliance, or None when it can.

    The HA subsystem starts only with the appliance, and the peer link listens on `address` and
    `sync.port`: adding or removing the section, or moving those, takes a restart. Refusing keeps a
    file without its node's `ha` section from silently turning a pair node into a lone one.
    """
    if old is None and new is None:
        return None
    if old is None:
        return ("the configuration adds an `ha` section: joining an HA pair takes a restart "
                "(pacslb stop, then pacslb up with the new file); nothing was changed")  # fmt: skip
    if new is None:
        return (f"the configuration has no `ha` section, but this node is the {old.role} of an HA pair: "
                "keep this node's `ha` section in the file (it is node-local), or leave the pair with a restart "
                "(pacslb stop, then pacslb up); nothing was changed")  # fmt: skip
    moved = [f"ha.{name}" for name, a, b in (
        ("address", old.address, new.address), ("sync.port", old.sync.port, new.sync.port)) if a != b]  # fmt: skip
    if moved:
        return (f"{' and '.join(moved)} changed: the peer link moves only with a restart "
                "(pacslb stop, then pacslb up with the new file); nothing was changed")  # fmt: skip
    return None
