"""`pacslb demo`: the True PACS template in front of simulated True PACS services, on this machine.

One foreground process does it all, in this order:
  1. certificates (a demo CA, the VIP's, the simulated servers'), the simulated services' spec and the
     True PACS configuration pointed at them, under the state directory (pacslb.demo.truepacs);
  2. the simulated services, as a child process (`python -m pacslb.demo.services`; it also ends when
     this process dies, as its standard input closes);
  3. the appliance, in this process: the controller, HAProxy and the controller API, as `pacslb up`
     runs them (so `pacslb status` and `pacslb stop` work on the state directory);
  4. it prints each virtual service with a command that answers through it, then waits.
Ctrl-C, SIGTERM or `pacslb stop --state-dir DIR` stops HAProxy, the controller and the simulated services.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..api.state import access_lines, port_is_free  # the WebUI address and admin credentials (issue 5)
from . import app
from .common import EXIT_INVALID, load_or_exit, lock_state_dir_or_exit, trusted_paths_or_exit

log = logging.getLogger("pacslb.demo")

READY_TIMEOUT = 60.0


def _program() -> str:
    """How the user called pacslb, for the commands the demo prints (`.venv/bin/pacslb`, or `pacslb`)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "pacslb":
        return shlex.quote(argv0)
    return "pacslb"


def _demo_state_dir(option: Path | None) -> Path:
    from ..demo.truepacs import DEFAULT_STATE_DIR

    if option is not None:
        return option.absolute()
    env = os.environ.get("PACSLB_STATE_DIR")
    return Path(env).absolute() if env else DEFAULT_STATE_DIR


def _not_a_demo_directory(root: Path, demo_config: Path) -> str | None:
    """Why the demo must not use `root` (it holds something else: a real appliance's state), or None."""
    if not root.exists():
        return None
    if not root.is_dir():
        return f"{root} is not a directory"
    if demo_config.exists() or not any(root.iterdir()):
        return None
    return (
        f"{root} is not empty and is not a pacslb demo's state directory (no {demo_config.name} in it): the demo "
        "writes its certificates and configuration there and stops an HAProxy it finds serving it, so it "
        "refuses; choose another --state-dir (or unset PACSLB_STATE_DIR)"
    )


@app.command()
def demo(
    state_dir_option: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="state directory (or PACSLB_STATE_DIR; default /var/lib/pacslb-demo). Keep it short: "
            "HAProxy's Unix sockets live in it",
            show_default=False,
        ),
    ] = None,
    port_offset: Annotated[
        int,
        typer.Option("--port-offset", help="add N to every VIP port (80 -> 80+N ...) when the guide's ports are taken"),
    ] = 0,
    vip_address: Annotated[str, typer.Option("--vip-address", help="address the virtual services listen on")] = "127.0.0.1",
    server_octet: Annotated[
        int,
        typer.Option(
            "--server-octet",
            help="the simulated real servers listen on 127.N.10.1 ... 127.N.41.2 (N from 0 to 255)",
        ),
    ] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log the controller's debug messages too")] = False,
) -> None:
    """Run the True PACS template in front of simulated True PACS services on this machine (loopback).

    Everything stays in the state directory: certificates, configuration, HAProxy's files and log.

    The VIPs listen on the guide's ports (80, 3080, 8081, 8082, 8443, 9094) of 127.0.0.1; --port-offset moves them.

    The simulated real servers listen on the guide's ports (80, 443, ...) of 127.N.x.y: that needs root.

    Ctrl-C, SIGTERM or 'pacslb stop --state-dir DIR' stops everything the demo started.
    """
    from ..appliance import Appliance
    from ..controller.client import ControllerClient, ControllerUnavailable
    from ..demo import DemoError
    from ..demo.truepacs import TruePacsDemo
    from ..engines.haproxy import process

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the readiness poll is not news
    if not 0 <= server_octet <= 255:
        print(f"--server-octet {server_octet}: choose 0 to 255", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    try:
        ipaddress.ip_address(vip_address)
    except ValueError:
        print(f"--vip-address {vip_address!r} is not an IP address", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID) from None
    paths = trusted_paths_or_exit(_demo_state_dir(state_dir_option))  # not another user's directory (exit 1)
    plan = TruePacsDemo(paths.root, vip_address=vip_address, port_offset=port_offset, server_octet=server_octet,
                        agent_port=_agent_port())  # fmt: skip
    problems = plan.problems()
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)
    socket_problems = process.socket_path_problems(paths)
    if socket_problems:
        for problem in socket_problems:
            print(f"error: {problem}", file=sys.stderr)
        raise typer.Exit(EXIT_INVALID)

    not_ours = _not_a_demo_directory(paths.root, plan.config_file)
    if not_ours:
        print(f"error: {not_ours}", file=sys.stderr)
        raise typer.Exit(1)

    lock = lock_state_dir_or_exit(paths)

    services = None
    code = 1
    try:
        # A HAProxy left by an earlier demo whose process was killed still serves this directory, with the
        # certificates of that run: stop it, so that this run starts clean.
        for master in process.masters_of(paths):
            log.warning("stopping the HAProxy (master PID %d) that an earlier run left on %s", master, paths.root)
            process.stop(master)
        plan.write()
        loaded = load_or_exit(plan.config_file, paths)
        assert loaded.config is not None

        services = plan.services(stderr=None)
        try:
            ready = services.start()
        except DemoError as exc:
            print(f"error: the simulated services did not start: {exc}", file=sys.stderr)
            if "ermission" in str(exc):
                print(
                    "  the simulated real servers listen on the guide's ports, 80 and 443 among them: run pacslb demo "
                    "as root (or lower net.ipv4.ip_unprivileged_port_start)",
                    file=sys.stderr,
                )
            raise typer.Exit(1) from None
        control_url = ready["control"]["url"]
        log.info("simulated services ready (PID %d), control endpoint %s", services.pid, control_url)

        management = loaded.config.settings.management  # the WebUI: its own free port when 9443 is taken
        if management.port and not port_is_free(management.address, management.port):
            log.warning("port %d is taken: the WebUI gets a free port (printed below)", management.port)
            management.port = 0
        controller = Appliance(paths, plan.config_file, loaded.config)
        client = ControllerClient(paths, timeout=5.0)

        async def announce(run: asyncio.Task) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + READY_TIMEOUT
            while not run.done() and loop.time() < deadline:
                try:
                    healthy, _ = await asyncio.to_thread(client.health)
                except ControllerUnavailable:
                    healthy = False
                if healthy:
                    banner = plan.banner(program=_program(), services_pid=services.pid, control_url=control_url)
                    print(banner, flush=True)
                    print("\n".join(access_lines(paths.root)), flush=True)
                    return
                await asyncio.sleep(0.2)
            if not run.done():
                log.error("the appliance did not get ready within %gs", READY_TIMEOUT)

        async def watch_services() -> None:
            """The demo ends when its simulated services do (killed by someone): nothing would answer."""
            assert services is not None and services.proc is not None
            while services.proc.poll() is None:
                await asyncio.sleep(1.0)
            log.error("the simulated services (PID %d) exited (%s): stopping the demo", services.pid, services.proc.returncode)
            controller.request_stop("the simulated services exited")

        async def main() -> int:
            run = asyncio.create_task(controller.run(plan.config_file.read_text()))
            watchers = [asyncio.create_task(announce(run)), asyncio.create_task(watch_services())]
            try:
                return await run
            finally:
                for watcher in watchers:
                    watcher.cancel()

        code = asyncio.run(main())
        died = services.proc.poll() if services.proc is not None else None
        if code == 0 and died not in (None, 0):
            code = 1  # the demo ended because its simulated services died
        elif code != 0:
            print(
                f"error: the appliance did not start (exit status {code}); see the messages above and "
                f"{paths.haproxy_log}. If a VIP port is taken, move the VIP ports with --port-offset N",
                file=sys.stderr,
            )
    except KeyboardInterrupt:
        code = 130
    finally:
        if services is not None:
            status = services.stop()
            log.info("simulated services stopped (exit status %s)", status)
        lock.release()
    log.info("pacslb demo stopped")
    raise typer.Exit(code)


def _agent_port() -> int | None:
    """The demo's health-check agent port: None (the default, 334) when that is free on 127.0.0.1, else the first free
    port from 335 to 1023 (privileged, as the model asks): another appliance on the machine holds 334."""
    from ..api.state import port_is_free
    from ..model.config import HealthSettings

    default = HealthSettings().agent_port
    if port_is_free("127.0.0.1", default):
        return None
    for port in range(default + 1, 1024):
        if port_is_free("127.0.0.1", port):
            log.warning("port %d (the health-check agent) is taken: the demo uses %d (settings.health.agent_port)", default, port)
            return port
    return None  # every one taken: the controller says so when it cannot listen
