"""The `pacslb` command. Each module of this package adds one group of commands to `app`."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="pacslb",
    help="pacslb: an open application delivery controller (load balancer) for medical imaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"pacslb {version('pacslb')}")  # the installed distribution's (the Debian package builds it)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """pacslb: an open application delivery controller (load balancer) for medical imaging."""


# Importing the command modules registers their commands on `app`.
from . import (  # noqa: E402 - the command modules register on `app`, which must exist first
    agent_command,  # noqa: F401
    alerts_commands,  # noqa: F401  (alerts, issue 14)
    backup_commands,  # noqa: F401  (backup, restore, support bundle: issue 14)
    balance_commands,  # noqa: F401  (reading-workload balancing, issue 21)
    change_commands,  # noqa: F401
    cluster_commands,  # noqa: F401  (the cluster, issue 20)
    cluster_pki_commands,  # noqa: F401  (etcd over TLS: the cluster CA, issue 20)
    config_commands,  # noqa: F401
    demo_command,  # noqa: F401
    gslb_commands,  # noqa: F401  (GSLB, issue 19)
    ha_commands,  # noqa: F401  (the HA pair, issue 7)
    init_command,  # noqa: F401
    layer4_commands,  # noqa: F401
    persistence_commands,  # noqa: F401  (clear a persistence table, issue 15)
    run_commands,  # noqa: F401
    user_commands,  # noqa: F401
    verify_command,  # noqa: F401  (issue 15)
    waf_commands,  # noqa: F401  (the WAF tier, issue 18)
)


def main() -> None:
    app()
