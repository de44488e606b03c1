"""`pacslb ha`: the HA pair. pair (this node's peer-link certificate), status, promote, demote.

status / promote / demote ask the running controller (its Unix-socket API); pair works without one.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..paths import StatePaths
from . import app
from .common import StateDirOption, ask_controller, state_paths

ha_app = typer.Typer(help="The HA pair: peer-link certificate, status of both nodes, promote / demote.", no_args_is_help=True)
app.add_typer(ha_app, name="ha")


def _paths(option: Path | None) -> StatePaths:
    return state_paths(option)


def _request(option: Path | None, method: str, path: str) -> dict[str, Any]:
    paths = _paths(option)
    not_pair = f"the appliance on {paths.root} is not part of an HA pair (its configuration has no `ha` section)"
    return ask_controller(paths, method, f"/ha{path}", not_found=not_pair)


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


@ha_app.command()
def pair(
    state_dir_option: StateDirOption = None,
    address: Annotated[list[str], typer.Option("--address", help="this node's own address, put in the certificate")] = [],  # noqa: B006
) -> None:
    """Print this node's peer-link certificate (made when missing) and its fingerprint.

    Copy the certificate to the peer and name it there in `ha.sync.peer_certificate` (and the fingerprint
    in `ha.sync.peer_fingerprint`, to check the copy); do the same the other way round.
    """
    from ..ha.peer_link import colon_fingerprint, ensure_node_certificate, fingerprint

    paths = _paths(state_dir_option)
    cert = ensure_node_certificate(paths.root, "pacslb HA node " + " ".join(address), address)
    pem = cert.read_bytes()
    print(f"# this node's peer-link certificate: {cert}", file=sys.stderr)
    print(f"# SHA-256 fingerprint: {colon_fingerprint(fingerprint(pem))}", file=sys.stderr)
    sys.stdout.write(pem.decode())


@ha_app.command()
def status(
    state_dir_option: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
    transitions: Annotated[int, typer.Option(help="VRRP transitions shown (latest)")] = 10,
) -> None:
    """Both nodes of the pair: which one is master, the revision each runs, when they last synced."""
    data = _request(state_dir_option, "GET", "")
    if as_json:
        print(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    node, peer = data["node"], data["peer"]
    peer_state = peer.get("state") or {}
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title="HA pair", title_justify="left")
    for column in ("node", "role", "address", "VRRP", "since", "revision", "last synced"):
        table.add_column(column)

    def synced(state: dict) -> str:
        s = state.get("synced")
        if state.get("role") == "primary":
            return "pushes"
        if state.get("promoted"):
            return "promoted: takes changes, not the primary's"
        if not s:
            return "never"
        return f"primary rev {s.get('primary_revision')} at {_when(s.get('at'))}"

    table.add_row("this node", node["role"], node["address"], node["vrrp_state"], _when(node.get("vrrp_since")),
                  str(node.get("revision")), escape(synced(node)))  # fmt: skip
    if peer["reachable"]:
        table.add_row("peer", peer_state.get("role", peer["role"]), peer["address"], peer_state.get("vrrp_state", "?"),
                      _when(peer_state.get("vrrp_since")), str(peer_state.get("revision")), escape(synced(peer_state)))  # fmt: skip
    else:
        table.add_row("peer", peer["role"], peer["address"], "[red]unreachable[/]", _when(peer.get("last_seen")), "-",
                      escape(peer.get("error") or ""))  # fmt: skip
    console.print(table)
    masters = [
        n for n, s in (("this node", node), ("peer", peer_state if peer["reachable"] else {})) if s.get("vrrp_state") == "MASTER"
    ]
    console.print(f"master: {', '.join(masters) or 'none seen'}; in step: "
                  f"{'yes' if peer['reachable'] and peer_state.get('synced_digest') == node['synced_digest'] else 'no'}")  # fmt: skip
    if data.get("split_brain"):
        sb = data["split_brain"]
        lasted = f", both nodes master for {sb['seconds']:.2f}s" if sb.get("seconds") is not None else ""
        console.print(
            f"[red]split brain[/] at {_when(sb['since'])}{lasted}, rule {sb['rule']}, resolved {_when(sb.get('resolved'))}"
        )
    push = data.get("last_push")
    if push:
        console.print(escape(f"last push: revision {push['revision']} at {_when(push['at'])}: "
                             f"{'ok' if push['ok'] else 'FAILED'} {push.get('message', '')}"))  # fmt: skip
    for event in data["transitions"][-transitions:]:
        console.print(escape(f"  {_when(event['at'])}  {event['state']:<11} {event['reason']}"))


@ha_app.command()
def promote(state_dir_option: StateDirOption = None) -> None:
    """Let this secondary take changes (and no configuration from the primary): when the primary is gone for long."""
    print(_request(state_dir_option, "POST", "/promote")["message"])


@ha_app.command()
def demote(state_dir_option: StateDirOption = None) -> None:
    """Undo promote: refuse direct changes again and take the primary's configuration."""
    answer = _request(state_dir_option, "POST", "/demote")
    print(answer["message"])
    if not answer.get("ok"):
        raise typer.Exit(1)
