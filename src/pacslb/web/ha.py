"""The WebUI's HA pair page: both nodes (this one, and the peer as this controller last heard it), each one's VRRP
state (master / backup / fault), the last configuration sync, split brain; admins promote or demote a secondary.

`pair_view` is pure: the HA pair's status (ha/pair.py `HAPair.status`, what `pacslb ha status` prints) in, what
the page shows out. Without an `ha` section the page says so and how to set one up (docs/high-availability.md).
Promote and demote are the controller's own (`pacslb ha promote|demote`), audited here as the user's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.auth import Principal, client_ip
from .context import controller_of, flash, page_principal, page_role, render

router = APIRouter(include_in_schema=False)
TRANSITIONS_SHOWN = 20
STATE_CLASS = {"MASTER": "st-up", "BACKUP": "st-unknown", "FAULT": "st-down", "STOP": "st-maint"}

PROMOTE_QUESTION = ("Promote this secondary? It will take configuration changes from users directly and stop taking the "
                    "primary's configuration (it does not push its own either). The floating IPs do not move: VRRP decides "
                    "them. Undo it with Demote.")  # fmt: skip
DEMOTE_QUESTION = ("Demote this node? It will refuse direct configuration changes again and take the primary's configuration "
                   "at the next sync (changes made here while it was promoted are replaced). The floating IPs do not move.")  # fmt: skip


def _sync_of(state: dict[str, Any]) -> str:
    """How a node takes its configuration, in words."""
    if state.get("role") == "primary":
        return "pushes its configuration to the peer"
    if state.get("promoted"):
        return "promoted: takes changes directly, not the primary's configuration"
    synced = state.get("synced")
    if not synced:
        return "has not taken a configuration from the primary yet"
    return f"runs revision {synced.get('primary_revision')} of the primary (local revision {synced.get('local_revision')})"


def _node(label: str, state: dict[str, Any], address: str, role: str) -> dict[str, Any]:
    vrrp = str(state.get("vrrp_state") or "UNKNOWN")
    return {"label": label, "address": state.get("address") or address, "role": state.get("role") or role,
            "promoted": bool(state.get("promoted")), "vrrp": vrrp, "vrrp_class": STATE_CLASS.get(vrrp, "st-unknown"),
            "since": state.get("vrrp_since"), "priority": state.get("priority"), "revision": state.get("revision"),
            "sync": _sync_of({**state, "role": state.get("role") or role}),
            "synced_at": (state.get("synced") or {}).get("at")}  # fmt: skip


def pair_view(status: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of the pair's status (pure)."""
    node, peer = status["node"], status["peer"]
    peer_state = peer.get("state") or {}
    this = _node("this node", node, node.get("address", ""), node.get("role", ""))
    other = _node("peer", peer_state if peer.get("reachable") else {}, peer.get("address", ""), peer.get("role", ""))
    other.update(reachable=bool(peer.get("reachable")), error=peer.get("error"), last_seen=peer.get("last_seen"))
    if not other["reachable"]:
        other.update(vrrp="unreachable", vrrp_class="st-down", sync="-")
    masters = [n["label"] for n in (this, other) if n["vrrp"] == "MASTER"]
    in_step = other["reachable"] and peer_state.get("synced_digest") == node.get("synced_digest")
    push = status.get("last_push")
    if node.get("role") == "primary":
        if push:
            sync = {"at": push.get("at"), "revision": push.get("revision"), "ok": bool(push.get("ok")),
                    "message": push.get("message") or "", "what": "last push to the peer"}  # fmt: skip
        else:
            sync = {"at": None, "revision": None, "ok": None, "message": "no push yet (the peer already ran it, or "
                    "has not answered)", "what": "last push to the peer"}  # fmt: skip
    else:
        synced = node.get("synced") or {}
        sync = {"at": synced.get("at"), "revision": synced.get("primary_revision"), "ok": True if synced else None,
                "message": f"applied here as local revision {synced.get('local_revision')}" if synced else
                "nothing taken from the primary yet", "what": "last configuration taken from the primary"}  # fmt: skip
    warnings = []
    if len(masters) == 2:
        warnings.append("both nodes are MASTER: split brain (the peer link or VRRP between them is cut)")
    split = status.get("split_brain")
    if split:
        lasted = f" for {split['seconds']:.2f}s" if split.get("seconds") is not None else ""
        state = "resolved" if split.get("resolved") else "ONGOING"
        warnings.append(f"split brain ({state}): both nodes were master{lasted}; rule {split.get('rule')}, "
                        f"kept by {split.get('kept_by')}")  # fmt: skip
    keepalived = status.get("keepalived") or {}
    if keepalived.get("error"):
        warnings.append(f"keepalived: {keepalived['error']}")
    secondary = node.get("role") == "secondary"
    return {
        "nodes": [this, other],
        "masters": masters,
        "in_step": in_step,
        "sync": sync,
        "split_brain": split,
        "split_brain_at": (split or {}).get("since"),
        "split_brain_rule": status.get("split_brain_rule"),
        "warnings": warnings,
        "keepalived": keepalived,
        "transitions": list(reversed(status.get("transitions") or []))[:TRANSITIONS_SHOWN],
        "can_promote": secondary and not node.get("promoted"),
        "can_demote": secondary and bool(node.get("promoted")),
        "secondary": secondary,
    }


def _pair(request: Request) -> Any:
    """The HA pair subsystem, or None without an `ha` section (or a controller that has none)."""
    return getattr(controller_of(request), "ha", None)


@router.get("/ha", response_class=HTMLResponse)
async def ha_page(request: Request, principal: Principal = Depends(page_principal)) -> Response:
    pair = _pair(request)
    if pair is None:
        return render(request, "ha.html", principal, pair=None)
    status = await asyncio.to_thread(pair.status)
    return render(request, "ha.html", principal, pair=pair_view(status), promote_question=PROMOTE_QUESTION,
                  demote_question=DEMOTE_QUESTION)  # fmt: skip


async def _act(request: Request, principal: Principal, action: str) -> Response:
    pair = _pair(request)
    if pair is None:
        flash(request, principal, "this appliance has no HA pair (no `ha` section): nothing to " + action, "error")
        return RedirectResponse("/ha", status_code=303)
    answer = pair.promote() if action == "promote" else pair.demote()
    ok = bool(answer.get("ok"))
    request.app.state.auth.audit(principal.username, f"ha.{action}", target="this node", outcome="applied" if ok else "refused",
                                 client_ip=client_ip(request), via=principal.via, detail={"message": answer.get("message")})  # fmt: skip
    flash(request, principal, str(answer.get("message") or action), "ok" if ok else "error")
    return RedirectResponse("/ha", status_code=303)


@router.post("/ha/promote")
async def promote(request: Request, principal: Principal = Depends(page_role("admin"))) -> Response:
    return await _act(request, principal, "promote")


@router.post("/ha/demote")
async def demote(request: Request, principal: Principal = Depends(page_role("admin"))) -> Response:
    return await _act(request, principal, "demote")
