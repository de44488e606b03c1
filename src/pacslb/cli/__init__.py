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
from . import config_commands  # noqa: E402,F401
from . import run_commands  # noqa: E402,F401
from . import init_command  # noqa: E402,F401
from . import change_commands  # noqa: E402,F401
from . import layer4_commands  # noqa: E402,F401
from . import demo_command  # noqa: E402,F401
from . import agent_command  # noqa: E402,F401
from . import ha_commands  # noqa: E402,F401  (the HA pair, issue 7)
from . import user_commands  # noqa: E402,F401


def main() -> None:
    app()
