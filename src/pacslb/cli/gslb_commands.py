"""`pacslb gslb status`: per GSLB name, which sites are answered to which client networks and why (issue 19).

It asks the running controller (its Unix-socket API, GET /api/v1/gslb)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated, Any

import typer

from . import app
from .common import StateDirOption, ask_controller, state_paths

gslb_app = typer.Typer(help="Global server load balancing: health-aware DNS answers across sites.", no_args_is_help=True)
app.add_typer(gslb_app, name="gslb")


def _fetch(state_dir_option: Any) -> dict:
    return ask_controller(state_paths(state_dir_option), "GET", "/gslb")


def format_status(status: dict) -> str:
    """The status as a person reads it (pure)."""
    if not status.get("configured"):
        return "GSLB is not configured (the configuration has no gslb section)\n"
    state = "answering" if status["running"] else "NOT RUNNING"
    lines = [f"PowerDNS {state} on {status['listen']} (PID {status.get('pid') or '-'}, {status.get('reloads', 0)} reloads)"]
    if status.get("error"):
        lines.append(f"  error: {status['error']}")
    lines.append("sites:")
    for site in status["sites"]:
        why = site.get("reason") or ("no check" if site.get("check") == "none" else "not decided yet")
        if site.get("virtual_service"):
            why += f"; local service {site['virtual_service']}: {'up' if site.get('local_up') is not False else 'DOWN'}"
        since = ""
        if site.get("changed_at"):
            since = " since " + dt.datetime.fromtimestamp(site["changed_at"], dt.timezone.utc).strftime("%H:%M:%S UTC")
        lines.append(f"  {site['name']:<16} {'UP' if site['up'] else 'DOWN':<5} {', '.join(site['addresses'])}  ({why}){since}")
    lines.append("names:")
    for name in status["names"]:
        flag = "  ALL MEMBERS DOWN: answering the fallback" if name["all_down"] else ""
        lines.append(f"  {name['name']} ({name['policy']}, ttl {name['ttl']}s){flag}")
        for answer in name["answers"]:
            sites = ", ".join(answer["sites"]) or "fallback"
            lines.append(
                f"    {', '.join(answer['clients']):<28} -> {sites:<12} {', '.join(answer['addresses'])}  ({answer['reason']})"
            )
    return "\n".join(lines) + "\n"


@gslb_app.command()
def status(
    state_dir_option: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Per GSLB name, which sites are answered to which client networks and why; every site's health.

    Exit status: 0 when every name has a healthy site; 3 when a name answers its fallback (every member down)
    or PowerDNS does not run; 1 when no controller runs."""
    found = _fetch(state_dir_option)
    sys.stdout.write(json.dumps(found, indent=2) + "\n" if as_json else format_status(found))
    if found.get("configured") and (not found["running"] or any(n["all_down"] for n in found["names"])):
        raise typer.Exit(3)
