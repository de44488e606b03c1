"""HAProxy as an engine of the appliance (engines/contract.py): the thin adapter over render, process and runtime.

  start        render -> `haproxy -c` on a temporary file -> adopt the master that already serves this state
               directory (reload it when it runs another file), or swap the file in and start one
  supervise    a dead master is started again on the last file that passed its check (growing pause
               between attempts that fail); HAProxy's notices, warnings and alerts go to the controller's log
  plan         the model diff and HAProxy's method (plan.py): runtime operations, a hitless reload, or
               nothing; the rendered file (not for a change of states and weights only: see below)
  check        `haproxy -c` on the new file in a temporary file beside the real one
  commit       runtime operations then the file swapped in, or the file swapped in and a confirmed reload
               (server-state file written from the model); a runtime operation that fails falls back to a
               reload of the new file
               A change of real servers' states and weights only (drain, halt, online, weight) is runtime
               operations alone: the file is rendered, checked and swapped in afterwards, in the background
               and coalesced (deferred.py), and always before HAProxy reads it again
  undo         the previous file back, the runtime state back to the previous model (a reload when needed)

The SHA-256 of the file the master runs is kept in StatePaths.haproxy_applied: it moves only after HAProxy
confirmed, and a restarted controller compares it to adopt without a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from ... import files
from ...model import Config
from ...paths import StatePaths
from .. import exits
from ..contract import EngineError, EngineState, Prepared
from . import logcopy, process, runtime_ops
from .deferred import DeferredFile
from .patch import patch_servers
from .plan import Method, OpKind, Plan, make_plan
from .render import HAProxyEnv
from .runtime import RuntimeAPI, RuntimeAPIError
from .section_cache import SectionCache

log = logging.getLogger("pacslb.controller")

SUPERVISE_INTERVAL = 0.5
RESTART_BACKOFF_MAX = 30.0
LOG_POLL = 0.5

Renderer = Callable[[Config, Path, Path], str]


def worker_privileges() -> dict[str, object]:
    """HAProxyEnv's user, group and chroot: HAProxy's workers drop root whenever the controller runs as root.

    Not root, HAProxy could not change its identity anyway (the tests and the bench run it so).
    """
    if os.geteuid() != 0:
        return {}
    return {"user": process.WORKER_USER, "group": process.WORKER_GROUP, "chroot": True}


def haproxy_env(state_dir: Path, base_dir: Path) -> HAProxyEnv:
    # prometheus: HAProxy's exporter on a Unix socket, for the management API's /metrics
    return HAProxyEnv(state_dir=state_dir, base_dir=base_dir, cpu_count=os.cpu_count() or 1, prometheus=True,
                      **worker_privileges())  # fmt: skip


# the sections of the services that did not change since the last render, reused (section_cache.py)
SECTIONS = SectionCache()


def render_haproxy(config: Config, state_dir: Path, base_dir: Path) -> str:
    from .render import render

    return render(config, haproxy_env(state_dir, base_dir), SECTIONS)


@dataclass
class Work:
    """HAProxy's part of one change (Prepared.data)."""

    plan: Plan
    old: Config
    new: Config
    text: str
    temp: Path | None = None  # the checked file, until it is swapped in
    base_dir: Path | None = None
    deferred: bool = False  # states and weights only: no file rendered before commit (DeferredFile writes it)
    previous: str | None = None  # the file that ran before commit (for undo)
    swapped: bool = False
    reloaded: bool = False
    runtime_done: bool = False


@dataclass
class CertificateWork:
    """A certificate stored and hot-swapped wherever HAProxy loaded it (Prepared.data of plan_certificate)."""

    path: Path
    bundle: bytes
    loaded_as: list[str]
    previous: bytes | None = None
    written: bool = False
    swapped: list[str] | None = None


class HAProxyEngine:
    name = "haproxy"

    def __init__(
        self,
        paths: StatePaths,
        gate: asyncio.Lock,
        binary: str = process.DEFAULT_BINARY,
        renderer: Renderer = render_haproxy,
        supervise_interval: float = SUPERVISE_INTERVAL,
    ) -> None:
        self.paths = paths
        self.gate = gate  # the appliance's change gate: a restart never runs beside a change
        self.binary = binary
        self.renderer = renderer
        self.supervise_interval = supervise_interval
        self.master: process.Master | None = None
        self.restarts = 0
        self.error: str | None = None
        # told ("died", why) before a dead master is started again and ("running", PID) after: a cluster node
        # withdraws its VIPs meanwhile (cluster/routing.py); a watcher that fails never stops the supervision
        self.watchers: list[Callable[[str, str], Awaitable[None]]] = []
        self.config: Config | None = None  # the model HAProxy runs
        self.base_dir: Path | None = None
        self._stopping = asyncio.Event()
        self.deferred = DeferredFile(self._prepare_file)
        self._written: tuple[Config, Path, str] | None = None  # the model, base directory and text of the file on disk

    # --- the artefact --------------------------------------------------------------------------------

    def wanted(self, config: Config) -> bool:
        return True  # HAProxy always runs: the health endpoint, the exporter and every Layer 7 service

    def running(self) -> bool:
        return self.master is not None and self.master.alive()

    def runtime_api(self, timeout: float = 10.0) -> RuntimeAPI:
        """The one runtime-API client of this HAProxy (stats socket, level admin)."""
        return RuntimeAPI(self.paths.haproxy_admin_socket, timeout=timeout)

    def _render_and_check(self, config: Config, base_dir: Path, text: str | None = None) -> tuple[str, Path, list[str]]:
        if not self.paths.haproxy_server_state.exists():
            self._reset_server_state()
        if text is None:
            text = self.renderer(config, self.paths.root, base_dir)
        temp = files.temp_file(self.paths.haproxy_dir, ".haproxy.cfg.", text)
        result = process.check(temp, self.binary)
        if not result.ok:
            temp.unlink(missing_ok=True)
            raise EngineError("HAProxy refuses the rendered configuration (nothing was changed)",
                              result.messages or [result.output], refused=True)  # fmt: skip
        return text, temp, [m for m in result.messages if m.startswith("warning")]

    def _prepare_file(self, config: Config, base_dir: Path):
        """DeferredFile's write: the file on disk with the changed server lines rewritten (patch.py), or `config`'s
        rendered whole, then checked (slow); returns (install, discard)."""
        text = None
        written = self._written
        if written is not None and written[1] == base_dir and self.renderer is render_haproxy:
            text = patch_servers(written[2], written[0], config, haproxy_env(self.paths.root, base_dir))
        text, temp, _ = self._render_and_check(config, base_dir, text)

        def install() -> None:
            files.replace(temp, self.paths.haproxy_config)
            files.atomic_write(self.paths.haproxy_applied, files.sha256(text) + "\n")
            self._written = (config, base_dir, text)

        return install, lambda: temp.unlink(missing_ok=True)

    def flush_file(self) -> None:
        """Write the file a runtime-only change left due now (blocking): before HAProxy reads it."""
        try:
            self.deferred.flush()
        except EngineError as exc:
            log.error("haproxy.cfg could not be written from the running model: %s", exc)

    def _reset_server_state(self) -> None:
        """An empty server-state file (format version line only): HAProxy reads it without a warning."""
        files.atomic_write(self.paths.haproxy_server_state, "1\n")

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        started = time.monotonic()
        plan = make_plan(old, new, haproxy_env(self.paths.root, base_dir),
                         haproxy_env(self.paths.root, self.base_dir or base_dir))  # fmt: skip
        planned = time.monotonic()
        if _states_and_weights_only(plan) and self.running():
            # runtime operations alone; the file follows in the background (deferred.py)
            return Prepared(self.name, True, None, [s for s in plan.lines()[1 + len(plan.changes) :] if s.startswith(("HAProxy", "  "))],
                            data=Work(plan, old, new, "", base_dir=base_dir, deferred=True),
                            timings={"plan": planned - started}, shown_plan=plan)  # fmt: skip
        text = self.renderer(new, self.paths.root, base_dir)
        rendered = time.monotonic()
        changed = plan.method is not Method.NONE or text != files.read_text(self.paths.haproxy_config)
        steps = plan.lines()[1 + len(plan.changes) :] if plan.changes else []
        return Prepared(
            self.name, changed, files.sha256(text), [s for s in steps if s.startswith(("HAProxy", "  "))],
            data=Work(plan, old, new, text, base_dir=base_dir), timings={"plan": planned - started, "render": rendered - planned},
            shown_plan=plan,
        )  # fmt: skip

    async def check(self, prepared: Prepared) -> None:
        if isinstance(prepared.data, CertificateWork):
            if prepared.data.loaded_as and not self.running():
                raise EngineError(f"HAProxy is not running ({self.error or 'unknown reason'}): nothing was changed")
            return  # the certificate itself was checked (key, chain, expiry) before it came here
        work: Work = prepared.data
        if work.plan.method is not Method.NONE and not self.running():
            raise EngineError(f"HAProxy is not running ({self.error or 'unknown reason'}): nothing was changed")
        if work.deferred:
            return  # states and weights of servers HAProxy runs: the runtime API checks each operation
        started = time.monotonic()
        await asyncio.to_thread(self._check, work, prepared)
        prepared.timings["check"] = time.monotonic() - started

    def _check(self, work: Work, prepared: Prepared) -> None:
        if not self.paths.haproxy_server_state.exists():
            self._reset_server_state()
        work.temp = files.temp_file(self.paths.haproxy_dir, ".haproxy.cfg.", work.text)
        result = process.check(work.temp, self.binary)
        if not result.ok:
            self.discard(prepared)
            raise EngineError("HAProxy refuses the rendered configuration (nothing was changed)",
                              result.messages or [result.output], refused=True)  # fmt: skip
        prepared.warnings += [m for m in result.messages if m.startswith("warning")]

    def discard(self, prepared: Prepared) -> None:
        work = prepared.data
        if isinstance(work, Work) and work.temp is not None:
            work.temp.unlink(missing_ok=True)
            work.temp = None

    def plan_certificate(self, path: Path, bundle: bytes, loaded_as: list[str]) -> Prepared:
        """A certificate file replaced, and swapped in memory (`set ssl cert`) wherever HAProxy loaded it: no reload."""
        steps = [f"HAProxy: set ssl cert {p} (no reload)" for p in sorted(set(loaded_as))]
        return Prepared(
            self.name, True, steps=[f"write {path}", *steps], data=CertificateWork(path, bundle, sorted(set(loaded_as)))
        )

    def _commit_certificate(self, work: CertificateWork) -> None:
        from ... import pki

        work.previous = work.path.read_bytes() if work.path.exists() else None
        pki.write_pem(work.path, work.bundle, private=True)
        work.written, work.swapped = True, []
        try:
            for loaded in work.loaded_as:
                self.runtime_api().set_ssl_cert(loaded, work.bundle)
                work.swapped.append(loaded)
        except RuntimeAPIError as exc:
            raise EngineError("HAProxy refused the certificate", [str(exc)]) from None

    def _undo_certificate(self, work: CertificateWork) -> None:
        from ... import pki

        if not work.written:
            return
        if work.previous is None:
            work.path.unlink(missing_ok=True)
            return
        pki.write_pem(work.path, work.previous, private=True)
        errors = []
        for loaded in work.swapped or []:  # put back what was already swapped
            try:
                self.runtime_api().set_ssl_cert(loaded, work.previous)
            except RuntimeAPIError as exc:
                errors.append(str(exc))
        if errors:
            raise EngineError("HAProxy could not take the previous certificate back", errors)

    # --- commit and undo -----------------------------------------------------------------------------

    async def commit(self, prepared: Prepared) -> None:
        if isinstance(prepared.data, CertificateWork):
            await asyncio.to_thread(self._commit_certificate, prepared.data)
            return
        started = time.monotonic()
        prepared.result = await asyncio.to_thread(self._commit, prepared.data)
        prepared.timings["engine"] = time.monotonic() - started

    def _commit(self, work: Work) -> dict:
        before = self._workers()
        result: dict = {"method": work.plan.method.value, "workers_before": before}
        if work.plan.method is Method.RELOAD:
            self._swap_and_reload(work, "the reload failed")
        elif work.plan.method is Method.RUNTIME:
            try:
                work.runtime_done = True
                runtime_ops.execute(self.runtime_api(), work.plan.operations)
            except runtime_ops.OperationFailed as exc:
                log.warning("runtime operation failed (%s): a hitless reload applies the change instead", exc)
                result["fallback"] = str(exc)
                result["method"] = Method.RELOAD.value
                if work.deferred:  # the file was not rendered: render and check it now
                    work.text, work.temp, _ = self._render_and_check(work.new, work.base_dir or self.base_dir or Path("."))
                try:
                    self._swap_and_reload(work, "a runtime operation failed, and so did the reload")
                except EngineError as failed:
                    failed.messages.insert(0, str(exc))
                    raise
            else:
                if work.deferred:
                    self.deferred.due(work.new, work.base_dir or self.base_dir or Path("."))
                else:
                    self._swap(work)
        else:
            self._swap(work)
        if work.text:
            files.atomic_write(self.paths.haproxy_applied, files.sha256(work.text) + "\n")
        self.config, self.error = work.new, None
        result["workers_after"] = self._workers()
        result["reloaded"] = result["method"] == Method.RELOAD.value
        return result

    def _swap(self, work: Work) -> None:
        if work.temp is None:  # not checked (a caller that skipped check): check now
            work.temp = files.temp_file(self.paths.haproxy_dir, ".haproxy.cfg.", work.text)
        temp = work.temp

        def swap() -> None:  # supersedes a file a runtime-only change left due: this model is newer
            work.previous = files.read_text(self.paths.haproxy_config)
            files.replace(temp, self.paths.haproxy_config)
            self._written = (work.new, work.base_dir, work.text) if work.base_dir is not None else None

        self.deferred.swap_in(swap)
        work.temp, work.swapped = None, True

    def _swap_and_reload(self, work: Work, summary: str) -> None:
        """Swap the file in and reload; on failure put the previous file back (the old worker still serves)."""
        self._swap(work)
        try:
            # the new worker reads this file: health from HAProxy, admin states and weights from the new model
            runtime_ops.save_server_state(self.paths, work.new)
            process.reload(self.paths, save_state=False)
        except (process.HAProxyError, RuntimeAPIError, OSError) as exc:
            if work.previous is not None:
                files.atomic_write(self.paths.haproxy_config, work.previous)
                self._written = None
            raise EngineError(summary, [str(exc)]) from None
        work.reloaded = True

    async def undo(self, prepared: Prepared) -> None:
        if isinstance(prepared.data, CertificateWork):
            await asyncio.to_thread(self._undo_certificate, prepared.data)
            return
        await asyncio.to_thread(self._undo, prepared.data)

    def _undo(self, work: Work) -> None:
        if work.swapped and work.previous is not None:
            previous = work.previous
            self.deferred.swap_in(lambda: files.atomic_write(self.paths.haproxy_config, previous))
            self._written = None  # the file of the previous model: the next write renders it whole
            files.atomic_write(self.paths.haproxy_applied, files.sha256(work.previous) + "\n")
        elif work.deferred and work.runtime_done:
            self.deferred.due(work.old, work.base_dir or self.base_dir or Path("."))  # the file follows the model back
        self.config = work.old
        if not self.running():
            return
        try:
            if work.reloaded:
                runtime_ops.save_server_state(self.paths, work.old)
                process.reload(self.paths, save_state=False)
            elif work.runtime_done:
                self.converge_to(work.old, reload_with=None)
        except (process.HAProxyError, RuntimeAPIError, OSError) as exc:
            raise EngineError("HAProxy could not be set back to the previous configuration", [str(exc)]) from None

    def converge_to(self, config: Config, reload_with: Path | None = None) -> None:
        """Make HAProxy's runtime states and weights agree with `config` (blocking); reload when servers differ.
        With `reload_with` (a base directory) the file is rendered and checked again before that reload."""
        drift = runtime_ops.converge(self.runtime_api(), config)
        if not drift.needs_reload:
            return
        log.warning("HAProxy runs other real servers than the model (missing %s, extra %s): reloading",
                    drift.missing, drift.extra)  # fmt: skip
        if reload_with is not None:
            text, temp, _ = self._render_and_check(config, reload_with)
            self.deferred.swap_in(lambda: files.replace(temp, self.paths.haproxy_config))
            files.atomic_write(self.paths.haproxy_applied, files.sha256(text) + "\n")
            self._written = (config, reload_with, text)
        else:
            self.flush_file()  # HAProxy reads the file: it must be the running model's
        runtime_ops.save_server_state(self.paths, config)
        process.reload(self.paths, save_state=False)

    def converge(self) -> None:
        """After a start, an adoption or a restart: the runtime states as the running model says (blocking)."""
        if not self.running() or self.config is None:
            return
        try:
            self.converge_to(self.config, reload_with=self.base_dir)
        except (EngineError, process.HAProxyError, RuntimeAPIError, OSError) as exc:
            log.error("cannot make HAProxy's runtime state agree with the model: %s", exc)

    def _workers(self) -> list[int]:
        try:
            return [w.pid for w in process.show_proc(self.paths, timeout=5.0).current_workers]
        except (process.HAProxyError, RuntimeAPIError):
            return []

    def applied_digest(self) -> str | None:
        return (files.read_text(self.paths.haproxy_applied) or "").strip() or None

    def serves_state_dir(self) -> bool:
        """Whether an HAProxy master of this state directory runs (before start: is there one to adopt)."""
        return bool(process.masters_of(self.paths))

    # --- start, supervise, stop ----------------------------------------------------------------------

    async def start(self, config: Config, base_dir: Path) -> None:
        """Adopt the HAProxy that serves this state directory, or start one. Raises EngineError."""
        self.paths.haproxy_dir.mkdir(parents=True, exist_ok=True)
        problems = process.socket_path_problems(self.paths)
        if os.geteuid() == 0:
            problems += process.worker_identity_problems()
        if problems:
            raise EngineError(f"HAProxy cannot run on {self.paths.root}", problems)
        try:
            await asyncio.to_thread(self._start, config, base_dir)
        except (process.HAProxyError, RuntimeAPIError, OSError) as exc:
            raise EngineError("HAProxy could not be started", [str(exc)]) from None
        self.config, self.base_dir = config, base_dir

    def _start(self, config: Config, base_dir: Path) -> None:
        text, temp, warnings = self._render_and_check(config, base_dir)
        for warning in warnings:
            log.warning("haproxy -c: %s", warning)
        digest = files.sha256(text)
        master = process.adopt(self.paths)
        if master is not None:
            self.master = master
            log.info("adopted the running HAProxy master (PID %d, workers %s)", master.pid, master.workers())
            if self.applied_digest() == digest and files.read_text(self.paths.haproxy_config) == text:
                temp.unlink(missing_ok=True)
                self._written = (config, base_dir, text)
                log.info("its configuration is the one to run: no reload")
                return
            log.info("its configuration differs from the one to run: reloading it")
            work = Work(Plan([]), config, config, text, temp, base_dir=base_dir)
            try:
                self._swap_and_reload(work, "the adopted HAProxy could not be reloaded")
            except EngineError as exc:
                self.error = str(exc)
                log.error("%s", exc)
                return
            files.atomic_write(self.paths.haproxy_applied, digest + "\n")
            log.info("HAProxy reloaded on the new configuration")
            return
        for stray in process.find_masters(self.paths):
            log.warning("an HAProxy master (PID %d) of this state directory does not answer its CLI: stopping it", stray)
            process.stop(stray)
        files.replace(temp, self.paths.haproxy_config)
        self._written = (config, base_dir, text)
        # A fresh start runs what the configuration says; runtime states saved for an old master's
        # reloads do not carry over. (A supervised restart keeps them: see _restart.)
        self._reset_server_state()
        self.master = process.start(self.paths, self.binary)
        files.atomic_write(self.paths.haproxy_applied, digest + "\n")
        log.info("HAProxy started (master PID %d, workers %s)", self.master.pid, self.master.workers())

    async def supervise(self) -> None:
        """Restart a dead master; copy HAProxy's messages to the controller's log. Runs until stop()."""
        await asyncio.gather(self._restart_loop(), self._copy_log(logcopy.log_size(self.paths.haproxy_log)))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _restart_loop(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            if self.master is not None:  # wake as soon as it ends (a killed worker takes its master with it)
                await exits.process_exit(self.master.pid, self.supervise_interval, self._stopping)
            else:
                await self._sleep(self.supervise_interval)
            if self._stopping.is_set():
                return
            try:
                async with self.gate:
                    if self._stopping.is_set() or self.master is None or self.master.alive():
                        continue
                    dead = self.master
                    log.error("HAProxy master (PID %d) died (%s): starting it again", dead.pid, dead.exit_status)
                    await self._tell("died", f"master PID {dead.pid}: {dead.exit_status}")
                    try:
                        master = await asyncio.to_thread(self._restart)
                    except (process.HAProxyError, RuntimeAPIError, OSError) as exc:
                        self.error = f"HAProxy could not be started again: {exc}"
                        log.error("%s; next attempt in %gs", self.error, backoff)
                        await self._sleep(backoff)
                        backoff = min(backoff * 2, RESTART_BACKOFF_MAX)
                        continue
                    self.master = master
                    self.restarts += 1
                    self.error = None
                    backoff = 1.0
                    log.warning("HAProxy runs again (master PID %d; restart %d)", master.pid, self.restarts)
                    await self._tell("running", str(master.pid))
            except Exception:
                log.exception("supervision failed; it goes on")
                await self._sleep(backoff)

    async def _tell(self, event: str, detail: str) -> None:
        for watcher in self.watchers:
            try:
                await watcher(event, detail)
            except Exception:
                log.exception("a watcher of HAProxy's %s failed", event)

    def _restart(self) -> process.Master:
        found = process.adopt(self.paths)  # someone may have started one meanwhile: never run two
        if found is not None:
            return found
        self.flush_file()  # the new master reads the file: the running model's, runtime changes included
        if self.config is not None:
            runtime_ops.rewrite_saved_state(self.paths, self.config)  # states and weights from the model
        master = process.start(self.paths, self.binary)
        self.master = master
        self.converge()
        return master

    async def _copy_log(self, position: int) -> None:
        pending = b""
        while not self._stopping.is_set():
            await self._sleep(LOG_POLL)
            try:
                position, pending = await asyncio.to_thread(logcopy.copy_new_lines, self.paths.haproxy_log,
                                                            position, pending)  # fmt: skip
            except Exception:
                log.exception("copying %s failed; it goes on", self.paths.haproxy_log)

    async def stop(self) -> None:
        self._stopping.set()
        async with self.gate:
            await asyncio.to_thread(self.flush_file)  # the file at rest is the running model's (a start adopts it)
            await asyncio.to_thread(self.deferred.stop)
            if self.master is not None:
                pid = self.master.pid
                await asyncio.to_thread(process.stop, self.master)
                log.info("HAProxy stopped (master PID %d)", pid)

    # --- observe -------------------------------------------------------------------------------------

    def observe(self) -> EngineState:
        master = self.master
        if master is None or not master.alive():
            return EngineState(self.name, False, master.pid if master else None, self.restarts,
                               self.error or "HAProxy is not running")  # fmt: skip
        detail: dict = {"adopted": master.adopted, "workers": [], "reloads": 0}
        error = self.error
        try:
            table = master.show_proc(timeout=2.0)
            detail["workers"], detail["reloads"] = [w.pid for w in table.workers], table.master.reloads
        except (RuntimeAPIError, process.HAProxyError) as exc:
            error = error or str(exc)
            detail["workers"] = master.workers()
        return EngineState(self.name, True, master.pid, self.restarts, error, detail)

    def serves(self) -> tuple[bool, str]:
        """Whether HAProxy serves: a live master whose stats socket answers (blocking)."""
        if not self.running():
            return False, self.error or "HAProxy is not running"
        try:
            self.runtime_api(timeout=2.0).show_info()
        except RuntimeAPIError as exc:
            return False, f"HAProxy's stats socket does not answer: {exc}"
        return True, "HAProxy serves"

    def orphans(self) -> list[str]:
        own = self.master.pid if self.master is not None else None
        return [f"HAProxy master PID {pid}" for pid in process.find_masters(self.paths) if pid != own]


def _states_and_weights_only(plan: Plan) -> bool:
    """A plan of drains, halts, onlines and weights of servers HAProxy runs, and nothing else."""
    return plan.method is Method.RUNTIME and all(op.kind in (OpKind.STATE, OpKind.WEIGHT) for op in plan.operations)
