"""The appliance controller: it brings HAProxy up on the configuration, keeps it up, and answers the API.

Startup, in one direction:
  render (pure) -> `haproxy -c` on a temporary file -> adopt the master that already serves this
  state directory, or atomically swap the file into place and start one -> serve the API.

While it runs:
  - supervision: a dead HAProxy master is logged and started again on the last file that passed its
    check (with a growing pause between attempts that fail);
  - HAProxy's own notices, warnings and alerts from its log are copied to the controller's log;
  - SIGHUP reads the configuration file again and applies it with a confirmed reload;
  - SIGTERM, SIGINT and POST /api/v1/stop stop HAProxy and everything else the controller started.

A controller killed with SIGKILL leaves HAProxy serving (it runs in a session of its own); the next
controller adopts it, compares the configuration it runs with the one it should run (the SHA-256 in
StatePaths.haproxy_applied), and reloads it when they differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..engines.haproxy import process
from ..engines.haproxy.runtime import RuntimeAPI, RuntimeAPIError
from ..model import Config
from ..paths import StatePaths
from ..store import StoreError
from . import files, runtime_ops
from .api import ApiServer, serve
from .changes import ChangeManager
from .layer4 import LAYER4_ERRORS, Layer4  # Layer 4 (nftables, issue 8)
from .observe import observe
from .status import ApplianceStatus, ControllerStatus, EngineStatus
from .subsystems import Subsystem, SubsystemError, build as build_subsystems

log = logging.getLogger("pacslb.controller")
haproxy_log = logging.getLogger("pacslb.haproxy")

SUPERVISE_INTERVAL = 0.5
RESTART_BACKOFF_MAX = 30.0
LOG_ROTATE_BYTES = 64 * 1024 * 1024
MAX_CONTROLLER_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL


class ApplyError(Exception):
    """A configuration could not be applied; what runs was left as it was. `messages` says why."""

    def __init__(self, summary: str, messages: list[str] | None = None) -> None:
        self.messages = messages or []
        super().__init__(summary + "".join(f"\n  {m}" for m in self.messages))


Renderer = Callable[[Config, Path, Path], str]


def render_haproxy(config: Config, state_dir: Path, base_dir: Path) -> str:
    from ..engines.haproxy.render import HAProxyEnv, render

    # prometheus: HAProxy's exporter on a Unix socket, for the management API's /metrics
    env = HAProxyEnv(state_dir=state_dir, base_dir=base_dir, cpu_count=os.cpu_count() or 1, prometheus=True)
    return render(config, env)


@dataclass
class Prepared:
    """A rendered HAProxy configuration that passed `haproxy -c`, waiting in a temporary file to be swapped in."""

    text: str
    temp: Path
    warnings: list[str]
    render_seconds: float = 0.0
    check_seconds: float = 0.0

    @property
    def digest(self) -> str:
        return files.sha256(self.text)

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


class Controller:
    def __init__(
        self,
        paths: StatePaths,
        config_file: Path,
        config: Config,
        haproxy_binary: str = process.DEFAULT_BINARY,
        renderer: Renderer = render_haproxy,
        supervise_interval: float = SUPERVISE_INTERVAL,
    ) -> None:
        self.paths = paths
        self.config_file = config_file.resolve()
        self.config = config
        self.base_dir = self.config_file.parent  # relative certificate paths of `config` are read from here
        self.binary = haproxy_binary
        self.renderer = renderer
        self.supervise_interval = supervise_interval
        self.master: process.Master | None = None
        self.restarts = 0
        self.started_at = time.time()
        self.engine_error: str | None = None
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._engine_lock = asyncio.Lock()  # one start, reload or stop of HAProxy at a time
        self._tasks: list[asyncio.Task] = []
        self.changes = ChangeManager(self)  # apply, runtime control, rollback; revisions (controller/changes.py)
        self.layer4 = Layer4(paths)  # Layer 4 (nftables, issue 8)
        self.subsystems: list[Subsystem] = []  # health checks, HA, management API (controller/subsystems.py)

    # --- preparing and applying ------------------------------------------------------------------

    def _reset_server_state(self) -> None:
        """An empty server-state file (format version line only): HAProxy reads it without a warning."""
        files.atomic_write(self.paths.haproxy_server_state, "1\n")

    def prepare(self, config: Config, base_dir: Path | None = None) -> Prepared:
        """Render and let HAProxy check the result in a temporary file next to the real one (blocking)."""
        if not self.paths.haproxy_server_state.exists():
            self._reset_server_state()
        started = time.monotonic()
        text = self.renderer(config, self.paths.root, base_dir or self.base_dir)
        temp = files.temp_file(self.paths.haproxy_dir, ".haproxy.cfg.", text)
        rendered = time.monotonic()
        result = process.check(temp, self.binary)
        checked = time.monotonic()
        if not result.ok:
            temp.unlink(missing_ok=True)
            raise ApplyError(
                "HAProxy refuses the rendered configuration (nothing was changed)",
                result.messages or [result.output],
            )
        warnings = [m for m in result.messages if m.startswith("warning")]
        return Prepared(text, temp, warnings, rendered - started, checked - rendered)

    def _swap_in(self, prepared: Prepared) -> str | None:
        """Put a checked file in place; return the previous text (for a rollback)."""
        previous = files.read_text(self.paths.haproxy_config)
        files.replace(prepared.temp, self.paths.haproxy_config)
        return previous

    def _record_applied(self, prepared: Prepared, config_text: str | None) -> None:
        files.atomic_write(self.paths.haproxy_applied, prepared.digest + "\n")
        if config_text is not None:
            files.atomic_write(self.paths.config, config_text)

    def _reload(self, prepared: Prepared, config_text: str | None, config: Config | None = None) -> None:
        """Swap the file in and reload; on failure put the previous file back (the old worker still serves).

        The new worker reads the server-state file written here: health from HAProxy, admin states and
        weights from `config` (the model being applied; default the one that runs).
        """
        previous = self._swap_in(prepared)
        try:
            runtime_ops.save_server_state(self.paths, config or self.config)
            process.reload(self.paths, save_state=False)
        except BaseException:
            if previous is not None:
                files.atomic_write(self.paths.haproxy_config, previous)
            raise
        self._record_applied(prepared, config_text)

    def start_engine(self, config_text: str | None) -> None:
        """Adopt the HAProxy that serves this state directory, or start one (blocking; at startup)."""
        prepared = self.prepare(self.config)
        for warning in prepared.warnings:
            log.warning("haproxy -c: %s", warning)
        master = process.adopt(self.paths)
        if master is not None:
            self.master = master
            log.info("adopted the running HAProxy master (PID %d, workers %s)", master.pid, master.workers())
            running = (files.read_text(self.paths.haproxy_applied) or "").strip()
            on_disk = files.read_text(self.paths.haproxy_config)
            if running == prepared.digest and on_disk == prepared.text:
                prepared.discard()
                log.info("its configuration is the one to run: no reload")
                self._record_applied(prepared, config_text)
            else:
                log.info("its configuration differs from the one to run: reloading it")
                try:
                    self._reload(prepared, config_text)
                except process.ReloadError as exc:
                    self.engine_error = str(exc)
                    log.error("%s", exc)
                else:
                    log.info("HAProxy reloaded on the new configuration")
            return
        for stray in process.find_masters(self.paths):
            log.warning("an HAProxy master (PID %d) of this state directory does not answer its CLI: stopping it", stray)
            process.stop(stray)
        self._swap_in(prepared)
        # A fresh start runs what the configuration says; runtime states saved for an old master's
        # reloads do not carry over. (A supervised restart keeps them: see _restart.)
        self._reset_server_state()
        self.master = process.start(self.paths, self.binary)
        self._record_applied(prepared, config_text)
        log.info("HAProxy started (master PID %d, workers %s)", self.master.pid, self.master.workers())

    async def apply_file(self) -> None:
        """SIGHUP: read the configuration file again and apply it as a new revision.

        Planned like any apply (controller/changes.py): runtime operations when they suffice, else a
        confirmed hitless reload; Layer 4 (nftables) gets it when its services changed.
        """
        await self.changes.apply_file()

    # --- supervision -----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            await self._sleep(self.supervise_interval)
            if self._stop.is_set():
                return
            try:
                async with self._engine_lock:
                    if self._stop.is_set() or self.master is None or self.master.alive():
                        continue
                    dead = self.master
                    log.error("HAProxy master (PID %d) died (%s): starting it again", dead.pid, dead.exit_status)
                    try:
                        master = await asyncio.to_thread(self._restart)
                    except (process.HAProxyError, RuntimeAPIError, OSError) as exc:
                        self.engine_error = f"HAProxy could not be started again: {exc}"
                        log.error("%s; next attempt in %gs", self.engine_error, backoff)
                        await self._sleep(backoff)
                        backoff = min(backoff * 2, RESTART_BACKOFF_MAX)
                        continue
                    self.master = master
                    self.restarts += 1
                    self.engine_error = None
                    backoff = 1.0
                    log.warning("HAProxy runs again (master PID %d; restart %d)", master.pid, self.restarts)
            except Exception:  # noqa: BLE001 - supervision must outlive any surprise
                log.exception("supervision failed; it goes on")
                await self._sleep(backoff)

    def _restart(self) -> process.Master:
        found = process.adopt(self.paths)  # someone may have started one meanwhile: never run two
        if found is not None:
            return found
        runtime_ops.rewrite_saved_state(self.paths, self.config)  # states and weights from the model
        master = process.start(self.paths, self.binary)
        self.master = master
        self.changes.converge()
        return master

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def _log_size(self) -> int:
        try:
            return self.paths.haproxy_log.stat().st_size
        except OSError:
            return 0

    async def _copy_haproxy_log(self, position: int) -> None:
        """Copy HAProxy's notices, warnings and alerts from its log file (from `position` on) to the controller's log."""
        pending = b""
        while not self._stop.is_set():
            await self._sleep(0.5)
            try:
                position, pending = await asyncio.to_thread(self._copy_new_log_lines, position, pending)
            except Exception:  # noqa: BLE001 - a log reader must not stop the appliance
                log.exception("copying %s failed; it goes on", self.paths.haproxy_log)

    _LOG_LINE = re.compile(r"^\[(NOTICE|WARNING|ALERT)\]\s+\((\d+)\)\s*:\s*(.*)$")
    _LOG_LEVELS = {"NOTICE": logging.INFO, "WARNING": logging.WARNING, "ALERT": logging.ERROR}

    def _copy_new_log_lines(self, position: int, pending: bytes) -> tuple[int, bytes]:
        path = self.paths.haproxy_log
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0, b""
        if size < position:  # truncated (rotated): start over
            position, pending = 0, b""
        if size > position:
            with open(path, "rb") as f:
                f.seek(position)
                data = f.read(min(size - position, 16 * 1024 * 1024))
            position += len(data)
            lines = (pending + data).split(b"\n")
            pending = lines.pop()[-65536:]
            for raw in lines:
                match = self._LOG_LINE.match(raw.decode(errors="replace").strip())
                if match:
                    haproxy_log.log(self._LOG_LEVELS[match[1]], "(%s) %s", match[2], match[3])
        if position > LOG_ROTATE_BYTES:
            return self._rotate_log(), b""
        return position, pending

    def _rotate_log(self) -> int:
        """Copy the log aside and truncate it: HAProxy appends (O_APPEND), so it writes on at the new end."""
        path = self.paths.haproxy_log
        old = path.with_name(path.name + ".1")
        with open(path, "rb") as src, open(old, "wb") as dst:
            while chunk := src.read(1024 * 1024):
                dst.write(chunk)
        os.truncate(path, 0)
        log.info("%s rotated to %s", path, old)
        return 0

    # --- observing -------------------------------------------------------------------------------

    def engine_status(self) -> EngineStatus:
        master = self.master
        if master is None or not master.alive():
            return EngineStatus(
                running=False,
                master_pid=master.pid if master else None,
                adopted=bool(master and master.adopted),
                restarts=self.restarts,
                error=self.engine_error or "HAProxy is not running",
            )
        workers: list[int] = []
        reloads = 0
        error = self.engine_error
        try:
            table = master.show_proc(timeout=2.0)
            workers = [w.pid for w in table.workers]
            reloads = table.master.reloads
        except (RuntimeAPIError, process.HAProxyError) as exc:
            error = error or str(exc)
            workers = master.workers()
        return EngineStatus(
            running=True,
            master_pid=master.pid,
            workers=workers,
            adopted=master.adopted,
            restarts=self.restarts,
            reloads=reloads,
            error=error,
        )

    def status(self) -> ApplianceStatus:
        """The live state (blocking: it asks HAProxy)."""
        engine = self.engine_status()
        controller = ControllerStatus(
            pid=os.getpid(), state_dir=str(self.paths.root), config_file=str(self.config_file), started_at=self.started_at
        )
        return observe(self.paths, self.config, engine, controller, self.check_results())

    def check_results(self) -> dict[tuple[str, str], dict]:
        """Results of the checks the appliance runs itself (health-check service, Layer 4), by (service, real server)."""
        results: dict[tuple[str, str], dict] = {}
        try:
            layer4 = list(self.layer4.checker.watches.items())
        except RuntimeError:  # the watches changed while being read (another thread): next time
            layer4 = []
        for key, watch in layer4:
            vs = self.config.service(key[0])
            results[key] = {
                "type": vs.health_check.type if vs else None,
                "up": watch.up if watch.decided else None,
                "reason": watch.last.reason if watch.last else None,
                "changed_at": watch.changed_at,
            }
        for subsystem in list(self.subsystems):
            report = getattr(subsystem, "check_results", None)
            if report is not None:
                try:
                    results.update(report())
                except RuntimeError:  # the watches changed while being read (another thread): next time
                    pass
        return results

    def healthy(self) -> tuple[bool, str]:
        if self._stop.is_set():
            return False, f"stopping ({self._stop_reason})"
        if self.master is None or not self.master.alive():
            return False, self.engine_error or "HAProxy is not running"
        try:
            RuntimeAPI(self.paths.haproxy_admin_socket, timeout=2.0).show_info()
        except RuntimeAPIError as exc:
            return False, f"HAProxy's stats socket does not answer: {exc}"
        return True, "HAProxy serves"

    # --- running ---------------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            log.info("stopping (%s)", reason)
            self._stop.set()

    async def run(self, config_text: str | None = None) -> int:
        """Run until asked to stop; return the exit status (0 after a requested stop)."""
        problems = process.socket_path_problems(self.paths)
        if len(str(self.paths.controller_socket)) > MAX_CONTROLLER_SOCKET_PATH:
            problems.append(f"{self.paths.controller_socket} is too long for a Unix socket: choose a shorter state directory")
        if problems:
            log.error("cannot run on %s:\n  %s", self.paths.root, "\n  ".join(problems))
            return 2
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        self.paths.haproxy_dir.mkdir(parents=True, exist_ok=True)
        log_position = self._log_size()
        try:
            # revisions: settle what a killed controller left pending; run the current revision, or the
            # configuration file when it changed since it was last read (controller/changes.py)
            config_text = await asyncio.to_thread(self.changes.startup, config_text)
        except StoreError as exc:
            log.error("the revision store cannot be used: %s", exc)
            return 1
        try:
            await asyncio.to_thread(self.start_engine, config_text)
        except ApplyError as exc:
            log.error("%s", exc)
            await asyncio.to_thread(self.changes.startup_failed, str(exc))
            return 2
        except (process.HAProxyError, RuntimeAPIError, OSError) as exc:
            log.error("HAProxy could not be started: %s", exc)
            await asyncio.to_thread(self.changes.startup_failed, str(exc))
            return 1
        # --- Layer 4 (nftables, issue 8): controller/layer4.py ---
        try:
            await self.layer4.start(self.config)
        except LAYER4_ERRORS as exc:
            log.error("Layer 4 could not be started: %s", exc)
            await self._shutdown(None)
            return 2
        # --- end Layer 4 ---
        try:
            await asyncio.to_thread(self.changes.started)  # record it; runtime states as the model says
        except StoreError as exc:
            log.error("the revision store cannot be written: %s", exc)
        try:
            await self._start_subsystems()
        except SubsystemError as exc:
            log.error("%s", exc)
            await self._shutdown(None)
            return 2

        try:
            api = await serve(self, self.paths.controller_socket)
        except (Exception, SystemExit) as exc:  # uvicorn exits on some startup failures
            log.error("the API cannot listen on %s: %s", self.paths.controller_socket, exc)
            await self._shutdown(None)
            return 1
        loop.add_signal_handler(signal.SIGHUP, lambda: self._tasks.append(loop.create_task(self.apply_file())))
        self._tasks += [loop.create_task(self._supervise()), loop.create_task(self._copy_haproxy_log(log_position))]
        log.info("controller ready (PID %d): API on %s", os.getpid(), self.paths.controller_socket)
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(api)
        return 0

    async def _start_subsystems(self) -> None:
        self.subsystems = []
        for subsystem in build_subsystems(self):
            await subsystem.start(self.config)
            self.subsystems.append(subsystem)  # only started ones are stopped
            log.info("%s started", subsystem.name)

    async def notify_applied(self, config: Config) -> None:
        """Tell every subsystem that `config` now runs (after an apply, a runtime change or a rollback)."""
        for subsystem in self.subsystems:
            try:
                await subsystem.applied(config)
            except Exception:  # noqa: BLE001 - the change stands; the subsystem says what went wrong
                log.exception("%s could not take the new configuration", subsystem.name)

    async def _shutdown(self, api: ApiServer | None) -> None:
        for subsystem in reversed(self.subsystems):
            try:
                await subsystem.stop()
            except Exception:  # noqa: BLE001 - stopping goes on
                log.exception("%s did not stop cleanly", subsystem.name)
        self.subsystems = []
        await self.layer4.stop()  # Layer 4 (nftables, issue 8): stop its checks, delete pacslb's tables
        async with self._engine_lock:
            if self.master is not None:
                pid = self.master.pid
                await asyncio.to_thread(process.stop, self.master)
                log.info("HAProxy stopped (master PID %d)", pid)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if api is not None:
            await api.close()
        log.info("controller stopped")
