"""`pacslb cluster status|join|leave|drain NODE|undrain NODE|members|rejoin` (issue 20, docs/cluster.md).

Each asks the running controller of this node (its Unix-socket API, /api/v1/cluster), which reads and writes the
cluster's etcd."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from ..cluster.sessions import in_words
from . import app
from .common import StateDirOption, request_controller, state_paths

cluster_app = typer.Typer(help="The active-active cluster: nodes, revisions, drain.", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")


def _call(state_dir_option: Any, method: str, path: str, timeout: float = 15) -> tuple[int, dict]:
    response = request_controller(state_paths(state_dir_option), method, f"/cluster{path}", timeout=timeout)
    if response.status_code == 404 and path == "":
        return 200, {"configured": False}  # a controller without a cluster section has no such route
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {"ok": False, "message": response.text[:500]}


def _yes_no(value: Any, yes: str = "yes", no: str = "no") -> str:
    return "?" if value is None else (yes if value else no)


def format_status(status: dict, now: float | None = None) -> str:
    """The status as a person reads it (pure)."""
    if not status.get("configured"):
        return "this appliance is not a cluster node (the configuration has no cluster section)\n"
    now = time.time() if now is None else now
    etcd = status["etcd"]
    reach = "reachable" if etcd["reachable"] else f"NOT REACHABLE ({etcd['error']})"
    lines = [f"cluster {status['cluster']}: latest revision {status.get('latest_revision') if etcd['reachable'] else '?'}; "
             f"this node {status['node']} runs revision {status['runs']}; etcd {reach}"]  # fmt: skip
    if status.get("error"):
        lines.append(f"  error: {status['error']}")
    if status.get("partition"):
        keeps = " (on_partition: keep-serving: it keeps announcing)" if status.get("on_partition") == "keep-serving" else ""
        lines.append(f"  this node is cut off: {status['partition']}{keeps}")
    lines.append(f"  {'NODE':<14} {'ADDRESS':<18} {'ONLINE':<7} {'HEALTH':<8} {'REVISION':<9} {'DRAINED':<8} "
                 f"{'SESSIONS':<22} VIPS")  # fmt: skip
    for node in status["nodes"]:
        health = _yes_no(node.get("healthy"), "ok", "DOWN") if node.get("online") else "-"
        revision = str(node["revision"]) if node.get("revision") is not None else "-"
        drained = "left" if node.get("left") else _yes_no(node.get("drained"))
        vips = ", ".join(node["vips"]) if node.get("vips") is not None else "-"
        seen = f"  (seen {max(0, now - node['seen_at']):.0f}s ago)" if node.get("seen_at") else ""
        sessions = in_words(node.get("sessions")) if node.get("online") else "-"
        lines.append(f"  {node['name']:<14} {node['address']:<18} {_yes_no(node.get('online')):<7} {health:<8} "
                     f"{revision:<9} {drained:<8} {sessions:<22} {vips}{seen}")  # fmt: skip
        if node.get("error"):
            lines.append(f"      error: {node['error']}")
    return "\n".join(lines) + "\n"


@cluster_app.command()
def status(
    state_dir_option: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Every node of the cluster: address, online, health, the revision it runs, drained, the VIPs it announces.

    Exit status: 0 when every node is online, healthy and runs the latest revision; 3 otherwise (or etcd cannot be
    read); 1 when no controller runs."""
    _, found = _call(state_dir_option, "GET", "")
    sys.stdout.write(json.dumps(found, indent=2) + "\n" if as_json else format_status(found))
    if found.get("configured"):
        latest = found.get("latest_revision")
        fine = found["etcd"]["reachable"] and all(
            n.get("online") and n.get("healthy") and n.get("revision") == latest for n in found["nodes"] if not n.get("left")
        )
        if not fine:
            raise typer.Exit(3)


def _act(state_dir_option: Any, path: str, timeout: float = 15) -> None:
    code, body = _call(state_dir_option, "POST", path, timeout)
    print(body.get("message") or body, file=sys.stdout if code < 400 else sys.stderr)
    if code >= 400:
        raise typer.Exit(1)


@cluster_app.command()
def drain(node: Annotated[str, typer.Argument(help="the node's name")], state_dir_option: StateDirOption = None) -> None:
    """Drain NODE: it withdraws its VIPs; `undrain` returns it.

    Its established connections live on only where the routers keep flows on their first node (docs/cluster.md).
    """
    _act(state_dir_option, f"/nodes/{node}/drain")


@cluster_app.command()
def undrain(node: Annotated[str, typer.Argument(help="the node's name")], state_dir_option: StateDirOption = None) -> None:
    """Return a drained NODE: it announces its VIPs again."""
    _act(state_dir_option, f"/nodes/{node}/undrain")


@cluster_app.command()
def join(state_dir_option: StateDirOption = None) -> None:
    """This node (back) in the cluster: not drained, not left; it applies the latest revision."""
    _act(state_dir_option, "/join")


@cluster_app.command()
def leave(state_dir_option: StateDirOption = None) -> None:
    """This node leaves the cluster: drained, it takes no further revision until `pacslb cluster join`."""
    _act(state_dir_option, "/leave")


def format_members(found: dict) -> str:
    """etcd's members as a person reads them (pure)."""
    lines = [f"  {'NAME':<14} {'ID':<17} {'STARTED':<8} {'LEADER':<7} {'PEER URLS':<28} CLIENT URLS"]
    for m in found.get("members") or []:
        lines.append(f"  {m['name'] or '(not started)':<14} {m['id']:<17} {_yes_no(m['started']):<8} "
                     f"{_yes_no(m['leader']):<7} {', '.join(m['peer_urls']):<28} {', '.join(m['client_urls']) or '-'}")  # fmt: skip
    if not found.get("leader"):
        lines.append("  no leader known: the members may have no quorum")
    me = found.get("this_node") or {}
    if me.get("needs_rejoin"):
        lines.append(
            f"  this node's member ({me['name']}) does not run: its data directory was lost; run `pacslb cluster rejoin`"
        )
    elif me.get("rejoining"):
        lines.append(f"  this node's member ({me['name']}) rejoined and has not caught up yet")
    return "\n".join(lines) + "\n"


@cluster_app.command()
def members(
    state_dir_option: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the members as JSON")] = False,
) -> None:
    """etcd's members: name, ID, started or not, leader, peer and client URLs (what `etcdctl member list` says)."""
    code, found = _call(state_dir_option, "GET", "/members")
    if code >= 400:
        print(found.get("message") or found, file=sys.stderr)
        raise typer.Exit(1)
    sys.stdout.write(json.dumps(found, indent=2) + "\n" if as_json else format_members(found))


@cluster_app.command()
def rejoin(
    state_dir_option: StateDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="rejoin even when this node's member is healthy")] = False,
) -> None:
    """This node's etcd member again, after its data directory was lost or is corrupt: through the other members,
    the old member is removed and added again, and this node's member starts on an empty data directory and
    catches up (the old one is kept as data.lost-TIME). Needs the other members' quorum."""
    # stopping etcd (10 s at most), an addition etcd defers (15 s), the start (20 s) and the catch-up (60 s) take
    # longer than other requests
    _act(state_dir_option, "/rejoin" + ("?force=true" if force else ""), timeout=180)


__all__ = ["format_members", "format_status"]
