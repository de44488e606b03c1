"""What every probe shares: the real server to check, the verdict, the probe's shape and the service context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Target:
    """The real server a probe checks (the check's `port` already applied)."""

    address: str
    port: int


@dataclass(frozen=True)
class Result:
    """One check's verdict; `reason` says what an administrator can act on."""

    up: bool
    reason: str


@dataclass(frozen=True)
class CheckContext:
    """What a probe may need from the virtual service around the real server: its VIP and VIP port
    (the `external` check passes them to the script). None for a backend-only service."""

    vip: str | None = None
    vip_port: int | None = None


class Probe(Protocol):
    timeout: float

    async def probe(self, target: Target) -> Result: ...
