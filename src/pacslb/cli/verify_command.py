"""`pacslb verify`: send a request through every route of the running configuration and report who answered."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer

from . import app
from .common import StateDirOption, print_problems, state_paths

EXIT_FAILED = 1


@app.command("verify")
def verify_command(
    state_dir_option: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, max=60.0, help="seconds per route")] = 5.0,
) -> None:
    """From the appliance itself, send through every virtual service, listener and rule a request that rule
    should take, and report which backend-only service and real server answered, with status and time.

    Rules that an earlier rule shadows are flagged without a request. Exit status: 0 when every route
    answered as expected; 1 when any did not (or a rule is shadowed, or the appliance does not run).
    """
    from ..engines.haproxy.runtime import RuntimeAPIError
    from ..model import load_text
    from ..verify.report import report_data, report_text
    from ..verify.runner import verify

    paths = state_paths(state_dir_option)
    if not paths.config.is_file():
        print(f"pacslb verify: {paths.config} does not exist: start the appliance first (pacslb up)", file=sys.stderr)
        raise typer.Exit(EXIT_FAILED)
    # the running configuration, applied already: its files were checked then, from the folder it was applied from
    loaded = load_text(paths.config.read_text())
    if loaded.config is None:
        print_problems(loaded.problems)
        raise typer.Exit(EXIT_FAILED)
    try:
        report = asyncio.run(verify(loaded.config, paths.haproxy_admin_socket, timeout))
    except RuntimeAPIError as exc:
        print(f"pacslb verify: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_FAILED) from None
    print(json.dumps(report_data(report), indent=2) if as_json else report_text(report))
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)
