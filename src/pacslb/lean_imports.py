"""Imports the controller never uses, kept out of it: each would cost resident memory for the controller's life.

httpx, when click, rich and pygments happen to be installed (typer brings them), imports its own command-line
client (`httpx._main`) only to offer `httpx.main`: about 80 modules and 4 MB resident in the controller
(measured: 78.3 -> 74.3 MB for the controller's imports; bench/README.md, "The controller's performance").
pacslb never runs httpx's command line, so an empty stand-in takes that module's place before httpx is
first imported. typer imports rich itself when it formats help, as before.
"""

from __future__ import annotations

import sys
import types

STAND_IN = "httpx._main"


def _no_httpx_cli() -> None:
    raise SystemExit("httpx's command-line client is not loaded inside pacslb: run the `httpx` command itself")


def skip_httpx_cli() -> bool:
    """Put the stand-in in place; False when httpx (or its CLI) was imported already and nothing could be saved."""
    if "httpx" in sys.modules or STAND_IN in sys.modules:
        return False
    stand_in = types.ModuleType(STAND_IN, "pacslb's stand-in for httpx's command-line client (lean_imports.py)")
    stand_in.main = _no_httpx_cli  # type: ignore[attr-defined]
    sys.modules[STAND_IN] = stand_in
    return True
