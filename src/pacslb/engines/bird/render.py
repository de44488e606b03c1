"""BIRD's files, rendered from the model (pure: no clock, no disk, no globals).

    render_conf(cluster, dir) -> bird.conf     the daemon: router ID, one BGP session per upstream router with BFD,
                                                and two static protocols whose routes are included from:
    render_routes(addresses, 4|6) -> vips4.conf, vips6.conf   the VIPs this node announces now (/32, /128)

The split follows PowerDNS's (pdns.conf and its data): bird.conf changes with the configuration and is what the
revision's digest covers; the routes change with health, drain and HAProxy's state between revisions, and are
loaded with `birdc configure`, which keeps the BGP sessions up (only the static protocols change).

Each VIP is a `blackhole` static route: BIRD exports it over BGP with this node as next hop (eBGP sets it) and
there is no kernel protocol, so nothing reaches this node's own routing table (the VIP is a local address on
`cluster.bgp.vip_interface`, put there by engines/addresses). Every value comes from the model, which admits
only addresses and numbers here: nothing can break out of its place.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import PurePosixPath
from typing import Iterable

from ...model.cluster import Cluster

CONF_FILE = "bird.conf"
ROUTES_FILES = {4: "vips4.conf", 6: "vips6.conf"}
STATIC_PROTOCOLS = {4: "vips4", 6: "vips6"}
# how soon BIRD tries a session again: a node that returns must carry traffic in seconds, not BIRD's 5 s and 120 s
CONNECT_DELAY = 1
CONNECT_RETRY = 5
ERROR_WAIT = (1, 30)


def router_id(cluster: Cluster) -> str:
    """BGP's router ID: this node's IPv4 address, or for an IPv6 node 32 bits taken from its name (stable, non-zero)."""
    address = ipaddress.ip_address(cluster.this_node.address)
    if address.version == 4:
        return str(address)
    value = int.from_bytes(hashlib.sha256(f"{cluster.name}/{cluster.node}".encode()).digest()[:4], "big") or 1
    return str(ipaddress.IPv4Address(value))


def neighbor_protocol(index: int) -> str:
    """The BGP protocol's name in BIRD (and in `birdc show protocols`): uplink1, uplink2, ..."""
    return f"uplink{index + 1}"


def _seconds(milliseconds: int) -> int:
    return milliseconds // 1000  # the model admits whole seconds only


def render_conf(cluster: Cluster, folder: PurePosixPath) -> str:
    """bird.conf for this node: BFD on every session when enabled, each session carrying the VIPs of its own family."""
    bgp = cluster.bgp
    lines = [
        f"# rendered by pacslb from the cluster section (node {cluster.node}): a change of the configuration replaces it",
        f"router id {router_id(cluster)};",
        "log stderr all;  # pacslb keeps it in bird.log",
        "",
        "protocol device {",
        "  scan time 10;",
        "}",
        "",
    ]
    if bgp.bfd.enabled:
        interval = bgp.bfd.interval.milliseconds
        lines += [
            "protocol bfd {",
            '  interface "*" {',
            f"    min rx interval {interval} ms;",
            f"    min tx interval {interval} ms;",
            f"    idle tx interval {max(interval, 1000)} ms;",
            f"    multiplier {bgp.bfd.multiplier};",
            "  };",
            "}",
            "",
        ]
    for version in (4, 6):
        lines += [
            f"protocol static {STATIC_PROTOCOLS[version]} {{",
            f"  ipv{version};",
            f'  include "{folder / ROUTES_FILES[version]}";',
            "}",
            "",
        ]
    for index, neighbor in enumerate(bgp.neighbors):
        version = ipaddress.ip_address(neighbor.address).version
        lines += [
            f"protocol bgp {neighbor_protocol(index)} {{",
            f"  local as {bgp.local_as};" if bgp.local_port == 179 else f"  local port {bgp.local_port} as {bgp.local_as};",
            f"  neighbor {neighbor.address} port {neighbor.port} as {neighbor.remote_as};",
            f"  hold time {_seconds(bgp.hold_time.milliseconds)};",
        ]
        if bgp.keepalive.milliseconds:  # 0: BIRD derives it from the hold time (it refuses a keepalive of 0)
            lines.append(f"  keepalive time {_seconds(bgp.keepalive.milliseconds)};")
        lines += [
            f"  connect delay time {CONNECT_DELAY};",
            f"  connect retry time {CONNECT_RETRY};",
            f"  error wait time {ERROR_WAIT[0]}, {ERROR_WAIT[1]};",
        ]
        if bgp.bfd.enabled:
            lines.append("  bfd on;")
        lines += [
            f"  ipv{version} {{",
            "    import none;",
            f'    export where proto = "{STATIC_PROTOCOLS[version]}";',
            "  };",
            "}",
            "",
        ]
    return "\n".join(lines)


def render_routes(addresses: Iterable[str], version: int) -> str:
    """The static routes of one family: one host route per announced VIP (sorted; the other family's are left out)."""
    bits = 32 if version == 4 else 128
    chosen = sorted({ipaddress.ip_address(a) for a in addresses if ipaddress.ip_address(a).version == version})
    lines = [f"# the VIPs this node announces now (IPv{version}); pacslb rewrites it and runs `birdc configure`"]
    lines += [f"route {address}/{bits} blackhole;" for address in chosen]
    return "\n".join(lines) + "\n"


def render_all_routes(addresses: Iterable[str]) -> dict[str, str]:
    """Both route files, by file name."""
    listed = list(addresses)
    return {ROUTES_FILES[version]: render_routes(listed, version) for version in (4, 6)}
