"""`pacslb persistence clear SERVICE`: empty a virtual service's persistence table on the running appliance.

It talks to HAProxy's runtime socket in the state directory (as `pacslb verify` does), changes no revision, and
records the clear (or its refusal) in the audit log (src/pacslb/persistence.py).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from . import app
from .common import StateDirOption, print_problems, state_paths

EXIT_REFUSED = 1

persistence_app = typer.Typer(help="Persistence tables of the running appliance.", no_args_is_help=True)
app.add_typer(persistence_app, name="persistence")


@persistence_app.command()
def clear(
    service: Annotated[str, typer.Argument(help="the virtual service whose table is emptied")],
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    state_dir_option: StateDirOption = None,
) -> None:
    """Forget which real server each client of SERVICE stuck to: every client is scheduled again at its next
    connection. Audited; no revision. Exit 1 when nothing was cleared (no such service, no table, HAProxy down)."""
    from ..change.service import default_author
    from ..model import load_text
    from ..persistence import ClearRefused, clear_persistence

    paths = state_paths(state_dir_option)
    if not paths.config.is_file():
        print(f"pacslb persistence clear: {paths.config} does not exist: start the appliance first (pacslb up)", file=sys.stderr)
        raise typer.Exit(EXIT_REFUSED)
    loaded = load_text(paths.config.read_text())  # the running configuration, applied already
    if loaded.config is None:
        print_problems(loaded.problems)
        raise typer.Exit(EXIT_REFUSED)
    try:
        cleared = clear_persistence(loaded.config, paths.haproxy_admin_socket, service, paths.audit_log,
                                    username=default_author(), via="cli")  # fmt: skip
    except ClearRefused as refused:
        print(f"pacslb persistence clear: {refused.message}", file=sys.stderr)
        raise typer.Exit(EXIT_REFUSED) from None
    print(json.dumps(cleared.as_dict(), indent=2) if as_json else cleared.message)
