"""The VRRP record of this node: keepalived's transitions (from its notify script's log) with the reason
of each, as an administrator reads them in `pacslb ha status`."""

from __future__ import annotations

from dataclasses import dataclass

MAX_TRANSITIONS = 200


@dataclass
class Event:
    at: float
    state: str
    reason: str
    priority: int | None = None


def reason(old: str, new: str) -> str:
    """Why a node went from `old` to `new` (pure)."""
    if new == "MASTER":
        return ("the peer stopped advertising or sent priority 0 (its appliance stopped or died, or the peer "
                "link is cut): this node took the floating IPs and sent gratuitous ARPs")  # fmt: skip
    if new == "BACKUP" and old == "MASTER":
        return "a peer of higher priority advertises (preemption or split brain resolved): floating IPs released"
    if new == "BACKUP" and old in ("UNKNOWN", "START"):
        return "keepalived started: both nodes start as backup, the one that hears no master takes over"
    if new == "BACKUP":
        return f"left {old}: back in service as backup"
    if new == "FAULT":
        return "HAProxy is not running (tracked) or the interface is down: floating IPs released"
    if new == "STOP":
        return "keepalived stopped (`pacslb stop`): a master sends priority 0 and the peer takes over at once"
    if new == "START":
        was = (
            "; the keepalived before it ended without a trace (killed, or the node died)"
            if old not in ("STOP", "UNKNOWN")
            else ""
        )
        return f"keepalived started afresh{was}"
    return new.lower()
