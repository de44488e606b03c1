"""`pacslb agent`: the feedback agent, run on a real server (HAProxy's agent-check protocol)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import app
from .common import EXIT_INVALID

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


@app.command()
def agent(
    listen: Annotated[
        str, typer.Option("--listen", help="ADDRESS:PORT to answer on (the service's feedback_agent.port)")
    ] = "0.0.0.0:3333",
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            help="shell command whose output is the answer: a weight 0-100, or drain, down, maint, ready, up "
            "(a reason may follow the word); default: the weight follows CPU idle",
        ),
    ] = None,
    drain_file: Annotated[Path | None, typer.Option("--drain-file", help="answer drain while this file exists")] = None,
    down_file: Annotated[Path | None, typer.Option("--down-file", help="answer down while this file exists")] = None,
    min_weight: Annotated[int, typer.Option("--min-weight", min=0, max=100, help="lowest weight reported (percent)")] = 1,
    max_weight: Annotated[int, typer.Option("--max-weight", min=1, max=100, help="highest weight reported (percent)")] = 100,
    command_timeout: Annotated[
        float,
        typer.Option("--command-timeout", min=0.1, max=60, help="seconds --command may take; after that no answer is given"),
    ] = 2.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log debug messages too")] = False,
) -> None:
    """Run the feedback agent: HAProxy asks it every interval, and the server's weight follows the answer.

    Answers 'up N%' (weight), 'up 0%' (drain) or 'down #reason'; never HAProxy's sticky admin words
    (ready, drain, maint), so an operator's drain or halt stays as the operator set it.
    """
    from ..health.agent_server import AgentServer
    from ..health.feedback_agent import Agent, parse_listen

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if min_weight > max_weight:
        typer.echo(f"--min-weight {min_weight} is above --max-weight {max_weight}: lower it", err=True)
        raise typer.Exit(EXIT_INVALID)

    async def run() -> int:
        feedback = Agent(command, drain_file, down_file, min_weight, max_weight, command_timeout)
        await feedback.start()

        async def respond(_request: str) -> str:
            return await feedback.respond()

        server = AgentServer(respond, host, port, reads_request=False)
        try:
            await server.start()
        except OSError as exc:
            logging.getLogger("pacslb.agent").error("cannot listen on %s: %s", listen, exc.strerror or exc)
            await feedback.close()
            return 1
        logging.getLogger("pacslb.agent").info(
            "feedback agent on %s:%d (%s)", host, server.bound_port or port, f"command {command!r}" if command else "CPU idle"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.close()
        await feedback.close()
        return 0

    raise typer.Exit(asyncio.run(run()))
