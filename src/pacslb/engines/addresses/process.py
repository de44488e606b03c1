"""The I/O of the addresses engine: `ip` (iproute2) to list, add and delete addresses, `arping -U`
(iputils-arping) for the gratuitous ARP of an IPv4 address, and an unsolicited neighbour advertisement
sent here (ICMPv6, raw socket) for an IPv6 one, so that neighbours forget the previous owner at once.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
from pathlib import Path

IP = "ip"
ARPING = "arping"
TIMEOUT = 10.0


class AddressError(Exception):
    """`ip` or `arping` failed; the message has their own words."""


def _run(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AddressError(f"{' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise AddressError(f"{' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def interface_exists(interface: str) -> bool:
    try:
        _run([IP, "link", "show", "dev", interface])
    except AddressError:
        return False
    return True


def addresses(interface: str) -> set[str]:
    """ADDRESS/PREFIX of every address on `interface` now."""
    found = json.loads(_run([IP, "-j", "addr", "show", "dev", interface]) or "[]")
    return {f"{a['local']}/{a['prefixlen']}" for link in found for a in link.get("addr_info", []) if "local" in a}


def add(interface: str, address: str, announced: bool = True) -> None:
    """Add ADDRESS/PREFIX (IPv6 without duplicate address detection: a VIP must answer at once), then announce it
    (`announced`: not for a cluster node's VIPs, which are routed to it)."""
    ipv6 = ":" in address
    _run([IP, "addr", "add", address, "dev", interface, *(["nodad"] if ipv6 else [])])
    if announced:
        announce(interface, address.split("/")[0])


def delete(interface: str, address: str) -> None:
    _run([IP, "addr", "del", address, "dev", interface])


def announce(interface: str, address: str) -> None:
    """Tell the neighbours that `address` is here now: a gratuitous ARP, or an unsolicited neighbour advertisement."""
    if ":" not in address:
        _run([ARPING, "-q", "-U", "-c", "1", "-I", interface, address])
        return
    try:
        _unsolicited_na(interface, address)
    except OSError as exc:
        raise AddressError(f"unsolicited neighbour advertisement of {address} on {interface}: {exc}") from None


def _unsolicited_na(interface: str, address: str) -> None:
    """RFC 4861 7.2.6: a neighbour advertisement to all nodes, override flag set, with our link-layer address."""
    index = socket.if_nametoindex(interface)
    mac = bytes.fromhex(Path(f"/sys/class/net/{interface}/address").read_text().strip().replace(":", ""))
    target = socket.inet_pton(socket.AF_INET6, address)
    # type 136, code 0, checksum (the kernel fills it in), flags: override; target; option 2 (target link-layer address)
    message = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + target + struct.pack("!BB", 2, 1) + mac
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)  # hop limit 255, or receivers drop it
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.bind((address, 0, 0, index))
        sock.sendto(message, ("ff02::1", 0, 0, index))
