"""`pacslb waf`: the WAF tier's events, and an exclusion for a false positive (recorded as a revision).

events reads the audit logs of the state directory itself (no controller needed); exclude asks the running
controller, whose change front door validates the exclusion with the rest of the configuration.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from . import app
from .common import EXIT_INVALID, StateDirOption, state_paths

waf_app = typer.Typer(help="The web application firewall: events, exclusions for false positives.", no_args_is_help=True)
app.add_typer(waf_app, name="waf")


@waf_app.command()
def events(
    service: Annotated[Optional[str], typer.Option("--service", "-s", help="only this virtual service's events")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="newest events shown")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="events and counts as JSON")] = False,
    state_dir_option: StateDirOption = None,
) -> None:
    """Requests the WAF blocked or detected, newest first, then the counts per rule and per service."""
    from ..engines.waf.events import read_events, summarize
    from ..engines.waf.paths import WafPaths

    found = read_events(WafPaths(state_paths(state_dir_option).root), service, limit)
    summary = summarize(found)
    if as_json:
        print(json.dumps({"events": [e.as_dict() for e in found], "summary": summary}, indent=2))
        return
    if not found:
        print("no WAF events")
        return
    for e in found:
        verdict = "blocked " if e.blocked else "detected"
        print(f"{e.time}  {verdict}  {e.policy}  {e.client}  {e.status or '-'}  {e.method} {e.uri[:80]}")
        for m in e.matches:
            if m.rule_id in e.rule_ids:
                print(f"    {m.rule_id}  {m.message[:70]}" + (f"  data: {m.data[:80]}" if m.data else ""))
    print("\nper rule:   " + ", ".join(f"{r['rule_id']} {r['count']}" for r in summary["rules"]))
    print(
        "per service: "
        + ", ".join(f"{s['service']} {s['blocked']} blocked, {s['detected']} detected" for s in summary["services"])
    )


@waf_app.command()
def exclude(
    policy: Annotated[str, typer.Argument(help="the WAF policy: a virtual service, or SERVICE.RULE")],
    rule_id: Annotated[list[int], typer.Option("--rule-id", "-r", help="a CRS rule id to exclude (repeatable)")] = [],  # noqa: B006 - typer reads the default
    tag: Annotated[list[str], typer.Option("--tag", help="a CRS tag to exclude (repeatable)")] = [],  # noqa: B006 - same
    parameter: Annotated[Optional[str], typer.Option("--parameter", help="only for this query or form parameter")] = None,
    header: Annotated[Optional[str], typer.Option("--header", help="only for this request header")] = None,
    path_begins: Annotated[Optional[str], typer.Option("--path-begins", help="only under this path")] = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="why: the false positive it answers")] = None,
    state_dir_option: StateDirOption = None,
) -> None:
    """Add an exclusion to a WAF policy, as a new revision (validated like any change)."""
    from ..controller.client import ControllerClient, ControllerUnavailable

    exclusion = {"rule_ids": rule_id, "tags": tag, "parameter": parameter, "header": header, "path_begins": path_begins,
                 "reason": reason}  # fmt: skip
    body = {"policy": policy, "exclusion": {k: v for k, v in exclusion.items() if v not in (None, [])}}
    paths = state_paths(state_dir_option)
    try:
        result = ControllerClient(paths, timeout=120)._change("/waf/exclusions", body)
    except ControllerUnavailable as exc:
        print(f"error: {exc}; start the appliance with 'pacslb up --state-dir {paths.root}'", file=sys.stderr)
        raise typer.Exit(1) from None
    outcome = result.get("outcome")
    for problem in result.get("problems", []):
        print(f"{problem.get('path', '')}: {problem.get('message', '')}", file=sys.stderr)
    stream = sys.stdout if outcome in ("applied", "unchanged") else sys.stderr
    print(result.get("message", outcome), file=stream)
    if outcome == "invalid":
        raise typer.Exit(EXIT_INVALID)
    if outcome not in ("applied", "unchanged"):
        raise typer.Exit(1)
