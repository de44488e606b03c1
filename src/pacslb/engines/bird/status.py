"""What BIRD says of its sessions, read from `birdc show protocols` and `birdc show bfd sessions` (parsers: pure).

bgp_sessions(text)   per BGP protocol: its state (up, start, ...) and BGP's own (Established, Active, Idle ...)
bfd_sessions(text)   per BFD neighbour: its address, interface and state (Up, Down, Init, AdminDown)
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


@dataclass(frozen=True)
class BGPSession:
    protocol: str  # uplink1, ... (engines/bird/render.py neighbor_protocol)
    state: str  # BIRD's protocol state: up, start, down
    since: str
    info: str  # BGP's state: Established, Active, Connect, Idle, ... with BIRD's reason after it

    @property
    def established(self) -> bool:
        return self.state == "up" and self.info.startswith("Established")

    def as_dict(self) -> dict:
        return {**asdict(self), "established": self.established}


@dataclass(frozen=True)
class BFDSession:
    address: str
    interface: str
    state: str  # Up, Down, Init, AdminDown
    since: str

    def as_dict(self) -> dict:
        return asdict(self)


def _since_and_rest(tokens: list[str]) -> tuple[str, list[str]]:
    if len(tokens) >= 2 and _DATE.match(tokens[0]) and _TIME.match(tokens[1]):
        return f"{tokens[0]} {tokens[1]}", tokens[2:]
    return (tokens[0], tokens[1:]) if tokens else ("", [])


def bgp_sessions(text: str) -> list[BGPSession]:
    """The BGP protocols of `show protocols` (the device, BFD and static protocols are left out)."""
    found = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) < 5 or tokens[1] != "BGP":
            continue
        since, rest = _since_and_rest(tokens[4:])
        found.append(BGPSession(tokens[0], tokens[3], since, " ".join(rest)))
    return found


def _is_address(token: str) -> bool:
    try:
        ipaddress.ip_address(token)
    except ValueError:
        return False
    return True


def bfd_sessions(text: str) -> list[BFDSession]:
    """The sessions of `show bfd sessions` (every BFD protocol's)."""
    found = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) >= 4 and _is_address(tokens[0]):
            since, _ = _since_and_rest(tokens[3:])
            found.append(BFDSession(tokens[0], tokens[1], tokens[2], since))
    return found
