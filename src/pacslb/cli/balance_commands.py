"""`pacslb balance run|validate`: the reading-workload balancing service (issue 21), outside the packet path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from . import app

balance_app = typer.Typer(help="Reading-workload balancing: assign exams to radiologists (HL7 in, REST next case out).",
                          no_args_is_help=True)  # fmt: skip
app.add_typer(balance_app, name="balance")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="the reading schedule and exam-effort table (YAML)")]


def _load(path: Path):
    from ..balance.config import load_config

    config, problems = load_config(path)
    if problems:
        for problem in problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(2)
    return config


@balance_app.command("validate")
def validate(config: ConfigOption = Path("balance.yaml")) -> None:
    """Exit 0 when the file is valid; else exit 2 and one line per problem, `field.path: message`."""
    loaded = _load(config)
    typer.echo(f"{config}: valid ({len(loaded.readers)} readers, {len(loaded.shifts)} shifts, {len(loaded.effort)} effort rows)")


@balance_app.command("run")
def run(
    config: ConfigOption = Path("balance.yaml"),
    state_dir: Annotated[Path, typer.Option("--state-dir", help="where balance.sqlite is kept")] = Path("balance-state"),
    host: Annotated[str, typer.Option(help="address of both listeners")] = "127.0.0.1",
    mllp_port: Annotated[int, typer.Option("--mllp-port", help="HL7 MLLP listener (ORM, ORU)")] = 2575,
    http_port: Annotated[int, typer.Option("--http-port", help="REST API and page")] = 8090,
    exit_after: Annotated[float | None, typer.Option("--exit-after", help="stop after this many seconds")] = None,
) -> None:
    """Run the service in the foreground: HL7 orders and reports over MLLP, next case and the page over HTTP."""
    from ..balance.runner import run as run_service

    loaded = _load(config)
    if loaded.ups is not None:
        try:
            import pynetdicom  # noqa: F401 - only whether it is there
        except ImportError:
            typer.echo("ups: the DICOM UPS push needs pynetdicom (pip install 'pacslb[balance]'), or remove ups", err=True)
            raise typer.Exit(2) from None
    try:
        asyncio.run(run_service(loaded, state_dir, host, mllp_port, http_port, exit_after))
    except OSError as exc:  # a port taken, an address not on this host, a state directory we cannot write
        typer.echo(f"balance: cannot start: {exc}", err=True)
        raise typer.Exit(1) from None
