"""A node's BGP and BFD sessions as its member key carries them to the other nodes (pure), so that `pacslb cluster
status`, `GET /api/v1/cluster` and the WebUI's Cluster page show, for every node, whether its routers hear it.

    summary(detail) -> {"bgp": [{neighbor, established, state}], "bfd": [{address, state}]} | None
    in_words(sessions) -> "BGP 2/2 up, BFD 2/2 up"                         (the one-line form of the CLI)

`detail` is the BIRD engine's state (`observe().detail`: its `bgp` and `bfd` lists, refreshed by the routing's
look). The lists are bounded (MAX_SESSIONS) and each state cut to MAX_STATE characters: a member key stays small.
"""

from __future__ import annotations

from typing import Any, Mapping

MAX_SESSIONS = 16  # cluster.bgp.neighbors holds at most 8; BFD has one session per neighbour
MAX_STATE = 80  # BIRD's BGP state with its reason ("Active  Socket: Connection refused")


def summary(detail: Mapping[str, Any] | None) -> dict | None:
    """The sessions of a node's BIRD in the member key's form; None when BIRD reported none (not a cluster node)."""
    if not detail or ("bgp" not in detail and "bfd" not in detail):
        return None
    bgp = [
        {"neighbor": str(s.get("neighbor", s.get("protocol", "?"))), "established": bool(s.get("established")),
         "state": str(s.get("info") or s.get("state") or "unknown")[:MAX_STATE]}
        for s in list(detail.get("bgp") or [])[:MAX_SESSIONS]
    ]  # fmt: skip
    bfd = [{"address": str(s.get("address", "?")), "state": str(s.get("state", "unknown"))[:MAX_STATE]}
           for s in list(detail.get("bfd") or [])[:MAX_SESSIONS]]  # fmt: skip
    return {"bgp": bgp, "bfd": bfd}


def in_words(sessions: Mapping[str, Any] | None) -> str:
    """'BGP 2/2 up, BFD 1/2 up' ('-' when the node did not say)."""
    if not sessions:
        return "-"
    bgp, bfd = sessions.get("bgp") or [], sessions.get("bfd") or []
    words = [f"BGP {sum(1 for s in bgp if s.get('established'))}/{len(bgp)} up"]
    if bfd:
        words.append(f"BFD {sum(1 for s in bfd if s.get('state') == 'Up')}/{len(bfd)} up")
    return ", ".join(words)
