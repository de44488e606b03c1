"""Commands that run the appliance: up, stop, status."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from typing import Annotated

import typer

from ..paths import StatePaths
from . import app
from .common import DEFAULT_CONFIG, EXIT_INVALID, ConfigOption, StateDirOption, load_or_exit, lock_state_dir_or_exit, state_paths

EXIT_NOT_RUNNING = 1  # status: no appliance runs on the state directory
EXIT_DEGRADED = 3  # status: HAProxy serves, but no controller supervises it

STATE_STYLES = {
    "UP": "green",
    "DOWN": "bold red",
    "DRAIN": "yellow",
    "MAINT": "magenta",
    "no-check": "cyan",
    "UNKNOWN": "dim",
    "STOPPED": "red",
}


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)


def _log_to_file(paths: StatePaths) -> None:
    """Also log to <state>/controller.log (rotated at 10 MB, 5 kept): the management API serves its tail."""
    from logging.handlers import RotatingFileHandler

    path = paths.controller_log
    root = logging.getLogger()
    if any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        return
    try:
        handler = RotatingFileHandler(path, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8")
    except OSError as exc:
        logging.getLogger("pacslb.controller").warning("cannot log to %s: %s", path, exc)
        return
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)


@app.command()
def up(
    config: ConfigOption = DEFAULT_CONFIG,
    state_dir_option: StateDirOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log debug messages too")] = False,
    pause_at: Annotated[
        str | None,
        typer.Option(
            "--pause-at",
            hidden=True,
            help="STAGE:SECONDS: pause every change at that stage of its "
            "transaction (before-engine, engine-confirmed), for crash tests that kill the controller there",
        ),
    ] = None,
) -> None:
    """Run the appliance in the foreground: controller, engines, health checks, API and WebUI. Logs go to stderr.

    HAProxy's own output goes to haproxy/haproxy.log in the state directory. Engines that already serve
    the state directory (HAProxy, keepalived, nftables tables left by a controller that died) are
    adopted, not started twice. SIGTERM or Ctrl-C (or 'pacslb stop') stops every engine too. SIGHUP
    applies the configuration file again.
    """
    from ..appliance import Appliance
    from ..model.files import read_config_text

    _setup_logging(verbose)
    from ..malloc import limit_arenas

    limit_arenas()  # before any thread runs: freed memory stays in few arenas (malloc.py)
    checkpoint = _pause_checkpoint(pause_at)
    paths = state_paths(state_dir_option)
    loaded = load_or_exit(config, paths)
    assert loaded.config is not None
    lock = lock_state_dir_or_exit(paths)
    _log_to_file(paths)
    try:
        logging.getLogger("pacslb.controller").info("pacslb controller (PID %d) on %s with %s", os.getpid(), paths.root, config)
        appliance = Appliance(paths, config, loaded.config, checkpoint=checkpoint)
        del loaded  # the appliance may run another revision (change/service.py): keep one model, not two
        text = read_config_text(config)  # as load_or_exit read it: regular, bounded
        if not isinstance(text, str):
            print(f"error: {config}: {text.message}", file=sys.stderr)
            raise typer.Exit(EXIT_INVALID)
        code = asyncio.run(appliance.run(text))
    finally:
        lock.release()
    raise typer.Exit(code)


def _pause_checkpoint(spec: str | None):
    """The crash tests' checkpoint: pause at one named stage of every change's transaction (change/runner.py)."""
    from ..change.runner import no_checkpoint

    if not spec:
        return no_checkpoint
    stage, _, seconds = spec.partition(":")
    if stage not in ("before-engine", "engine-confirmed") or not seconds.replace(".", "", 1).isdigit():
        print(f"error: --pause-at {spec!r}: give STAGE:SECONDS with STAGE before-engine or engine-confirmed",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(2)

    async def pause(at: str) -> None:
        if at == stage:
            logging.getLogger("pacslb.controller").warning("pausing %ss at stage %s (--pause-at)", seconds, stage)
            await asyncio.sleep(float(seconds))

    return pause


def _wait(condition, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@app.command()
def stop(
    state_dir_option: StateDirOption = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for everything to end")] = 30.0,
    leave_engines: Annotated[
        bool,
        typer.Option(
            "--leave-engines",
            help="stop only the controller (SIGUSR2): the engines keep serving, and the next 'pacslb up' adopts them "
            "(a package upgrade does this)",
        ),
    ] = False,
) -> None:
    """Stop the appliance and its engines, and wait until they are gone.

    Asks the controller through its API (SIGTERM when the API does not answer). Without a controller,
    what it left serving is stopped: keepalived and HAProxy by their recorded PIDs, and pacslb's nftables
    tables deleted.
    """
    from ..controller.client import ControllerClient, ControllerUnavailable
    from ..controller.lock import holder_pid, is_locked
    from ..engines.bird import process as bird
    from ..engines.etcd import process as etcd
    from ..engines.haproxy import process
    from ..engines.keepalived import process as keepalived
    from ..engines.keepalived.render import KeepalivedPaths
    from ..engines.powerdns import process as pdns
    from ..engines.waf import process as waf
    from ..engines.waf.paths import WafPaths

    paths = state_paths(state_dir_option)
    if leave_engines:
        _hand_over(paths, timeout)
        return
    did_something = False
    if is_locked(paths):
        pid = holder_pid(paths)
        try:
            ControllerClient(paths).stop()
            print(f"asked the controller (PID {pid}) to stop", file=sys.stderr)
        except ControllerUnavailable as exc:
            if pid is None or not process.is_running(pid) or "pacslb" not in " ".join(process.proc_cmdline(pid)):
                print(f"error: a controller holds {paths.controller_lock} but {exc}, and its PID is unknown", file=sys.stderr)
                raise typer.Exit(1) from None
            os.kill(pid, signal.SIGTERM)
            print(f"the controller's API does not answer ({exc}); sent SIGTERM to PID {pid}", file=sys.stderr)
        gone = _wait(lambda: not is_locked(paths) and (pid is None or not process.is_running(pid)), timeout)
        if not gone:
            print(f"error: the controller (PID {pid}) is still running after {timeout:g}s", file=sys.stderr)
            raise typer.Exit(1)
        did_something = True
    # a cluster node's bird (issue 20): first, the routers move its flows away
    did_something |= _stop_orphan(
        bird, bird.Files(paths.bird_dir), "bird", "which announced this node's VIPs without a controller"
    )
    # the HA pair's keepalived: first, so that the peer takes the floating IPs (SIGTERM: a priority-0 advert)
    did_something |= _stop_orphan(keepalived, KeepalivedPaths(paths.root), "keepalived")
    for master in process.masters_of(paths):
        print(f"stopping HAProxy (master PID {master}), which ran without a controller", file=sys.stderr)
        try:
            process.stop(master, timeout=timeout)
        except process.HAProxyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        did_something = True
    did_something |= _remove_orphan_tables(paths)
    did_something |= _remove_orphan_tproxy(paths)  # TPROXY's rule, route and table (issue 15): after HAProxy
    did_something |= _stop_orphan(pdns, pdns.Files(paths.powerdns_dir), "pdns_server")  # GSLB (issue 19)
    # the WAF tier (issue 18): after HAProxy, which sent it requests
    if _stop_orphan(waf, WafPaths(paths.root), "Apache, the WAF tier"):
        waf.remove_run(WafPaths(paths.root))
        did_something = True
    did_something |= _remove_orphan_addresses(paths)  # last: every engine above may use the addresses
    # a cluster node's etcd member (issue 20): the last engine down
    did_something |= _stop_orphan(etcd, etcd.Files(paths.etcd_dir), "etcd")
    if did_something:
        print(f"stopped the appliance on {paths.root}")
    else:
        print(f"no appliance runs on {paths.root}: nothing to stop")


def _hand_over(paths: StatePaths, timeout: float) -> None:
    """Stop the controller of `paths` and nothing else (SIGUSR2: Appliance.hand_over); no controller, nothing to do."""
    from ..controller.lock import holder_pid, is_locked
    from ..engines.haproxy import process

    if not is_locked(paths):
        print(f"no controller runs on {paths.root}: nothing to hand over")
        return
    pid = holder_pid(paths)
    if pid is None or not process.is_running(pid) or "pacslb" not in " ".join(process.proc_cmdline(pid)):
        print(f"error: a controller holds {paths.controller_lock} but its PID is unknown", file=sys.stderr)
        raise typer.Exit(1)
    os.kill(pid, signal.SIGUSR2)
    if not _wait(lambda: not is_locked(paths) and not process.is_running(pid), timeout):
        print(f"error: the controller (PID {pid}) is still running after {timeout:g}s", file=sys.stderr)
        raise typer.Exit(1)
    print(f"the controller (PID {pid}) stopped; the engines keep serving {paths.root} until 'pacslb up' adopts them")


def _remove_orphan_tables(paths: StatePaths) -> bool:
    """pacslb's nftables tables left by a controller that died (its Layer 4 services keep serving until now)."""
    from ..engines.nftables import process as nft

    if not paths.nftables_applied.exists():
        return False  # this state directory never ran Layer 4: the tables (if any) are another appliance's
    try:
        if not any(name == "pacslb" for _, name in nft.tables()):
            return False
        nft.remove()
    except (nft.NftError, OSError) as exc:
        print(f"error: cannot remove pacslb's nftables tables: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    paths.nftables_applied.unlink(missing_ok=True)
    print("removed pacslb's nftables tables, which served without a controller", file=sys.stderr)
    return True


def _remove_orphan_tproxy(paths: StatePaths) -> bool:
    """The TPROXY rule, route and nftables table a controller that died had installed (its record)."""
    from ..engines.contract import EngineError
    from ..engines.tproxy.engine import TproxyEngine

    engine = TproxyEngine(paths)
    if not engine.record.added:
        return False
    try:
        asyncio.run(engine.stop())
    except (EngineError, OSError) as exc:
        print(f"error: cannot remove what TPROXY needed: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print("removed the TPROXY rule, route and nftables table, which served without a controller", file=sys.stderr)
    return True


def _stop_orphan(process, files, what: str, doing: str = "which ran without a controller") -> bool:
    """The daemon an engine's `process` module adopts on `files` (this state directory's), left running by a
    controller that died: stopped by its PID, in the engine's own way (`process.stop`), and said in `what` and
    `doing`. True when there was one."""
    pid = process.adopt(files)
    if pid is None:
        return False
    print(f"stopping {what} (PID {pid}), {doing}", file=sys.stderr)
    process.stop(pid)
    return True


def _remove_orphan_addresses(paths: StatePaths) -> bool:
    """The VIP addresses a controller that died had added (its record, <state>/addresses/added.json): removed last,
    after HAProxy, as the controller does."""
    from ..engines.addresses.engine import AddressesEngine
    from ..engines.addresses.process import AddressError
    from ..engines.contract import EngineError

    engine = AddressesEngine(paths)
    added = list(engine.record.added)
    if not added:
        return False
    try:
        asyncio.run(engine.stop())
    except (EngineError, AddressError, OSError) as exc:
        print(f"error: cannot remove the VIP addresses the appliance added: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"removed the VIP addresses {', '.join(added)}, which the appliance had added", file=sys.stderr)
    return True


@app.command()
def status(
    state_dir_option: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Live state of every virtual service and real server.

    Exit status: 0 when the appliance runs; 1 when nothing runs on the state directory; 3 when it is
    degraded: HAProxy serves but no controller supervises it (the state is then read from HAProxy
    directly), or the controller runs but HAProxy does not.
    """
    from ..controller.client import ControllerClient, ControllerUnavailable
    from ..controller.lock import holder_pid, is_locked
    from ..controller.status import ApplianceStatus

    paths = state_paths(state_dir_option)
    code = 0
    try:
        data = ControllerClient(paths).status()
    except ControllerUnavailable as exc:
        if is_locked(paths):
            print(
                f"error: the controller (PID {holder_pid(paths)}) on {paths.root} does not answer: {exc}",
                file=sys.stderr,
            )
            raise typer.Exit(EXIT_NOT_RUNNING) from None
        data = _status_without_controller(paths)
        if data is None:
            print(
                f"error: no appliance runs on {paths.root} (no controller, no HAProxy); start one with "
                f"'pacslb up --state-dir {paths.root}'",
                file=sys.stderr,
            )
            raise typer.Exit(EXIT_NOT_RUNNING) from None
        print(
            f"warning: no controller runs on {paths.root}: HAProxy (master PID {data['engine']['master_pid']}) "
            "serves on its own, unsupervised; 'pacslb up' adopts it",
            file=sys.stderr,
        )
        code = EXIT_DEGRADED
    if not data["engine"]["running"]:
        print(f"error: HAProxy is not running: {data['engine'].get('error') or 'unknown reason'}", file=sys.stderr)
        code = EXIT_DEGRADED
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        _print_table(ApplianceStatus.model_validate(data), paths)
    raise typer.Exit(code)


def _status_without_controller(paths: StatePaths) -> dict | None:
    """Read the state from a HAProxy that serves without a controller, with the configuration it was given."""
    from ..controller.observe import observe
    from ..controller.status import EngineStatus
    from ..engines.haproxy import process
    from ..model import load_text

    masters = process.masters_of(paths)
    if not masters:
        return None
    try:
        loaded = load_text(paths.config.read_text())
    except OSError:
        loaded = None
    engine = EngineStatus(running=True, master_pid=masters[0], workers=process.children(masters[0]))
    if loaded is None or loaded.config is None:
        from ..model import Config

        config = Config(version=1)
        engine = engine.model_copy(update={"error": f"cannot read the configuration copy {paths.config}"})
    else:
        config = loaded.config
    return observe(paths, config, engine, None).model_dump(mode="json")


def _styled(state: str, transition: str | None = None) -> str:
    style = STATE_STYLES.get(state, "")
    text = f"[{style}]{state}[/]" if style else state
    return f"{text} ({transition})" if transition else text


def _print_table(status, paths: StatePaths) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"pacslb on {paths.root}", title_justify="left")
    for column in ("service", "real server", "address", "state", "weight", "check", "sessions cur/total"):
        table.add_column(column, no_wrap=column in ("service", "real server", "state"))
    for vs in status.virtual_services:
        table.add_row(
            f"[bold]{escape(vs.name)}[/] ({vs.mode})",
            "",
            escape(", ".join(vs.listen)),
            _styled(vs.state.value),
            "",
            escape(vs.note or ""),
            f"{vs.sessions.current}/{vs.sessions.total}",
        )
        for rs in vs.real_servers:
            table.add_row(
                "",
                escape(rs.name) + (" (backup)" if rs.backup else ""),
                escape(rs.address),
                _styled(rs.state.value, rs.transition),
                "-" if rs.weight is None else str(rs.weight),
                escape(rs.check.summary()),
                f"{rs.sessions.current}/{rs.sessions.total}",
            )
    console.print(table)
    engine = status.engine
    if engine.running:
        words = [f"HAProxy master PID {engine.master_pid}", f"workers {', '.join(map(str, engine.workers)) or '-'}"]
        if engine.adopted:
            words.append("adopted")
        if engine.restarts:
            words.append(f"restarted {engine.restarts}x")
        console.print(escape("; ".join(words)))
    else:
        console.print("[bold red]HAProxy is not running[/]")
    if engine.error:
        console.print(f"[red]{escape(engine.error)}[/]")
    if status.controller:
        console.print(escape(f"controller PID {status.controller.pid}, configuration {status.controller.config_file}"))
        for w in status.controller.check_workers:  # health/workers.py
            restarts = f", restarted {w.restarts}x (last: {w.last_exit})" if w.restarts else ""
            console.print(escape(f"check worker {w.index}: PID {w.pid or '-'}, {w.real_servers} real servers{restarts}"))
