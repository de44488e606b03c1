"""The `pacslb` command. Each module of this package adds one group of commands to `app`."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="pacslb",
    help="pacslb: an open application delivery controller (load balancer) for medical imaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Importing the command modules registers their commands on `app`.
from . import (  # noqa: E402 - the command modules register on `app`, which must exist first
    agent_command,  # noqa: F401
    change_commands,  # noqa: F401
    config_commands,  # noqa: F401
    demo_command,  # noqa: F401
    ha_commands,  # noqa: F401  (the HA pair, issue 7)
    init_command,  # noqa: F401
    layer4_commands,  # noqa: F401
    run_commands,  # noqa: F401
    user_commands,  # noqa: F401
    verify_command,  # noqa: F401  (issue 15)
)


def main() -> None:
    app()
