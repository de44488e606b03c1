"""Changes of the running configuration, each one a revision: apply, runtime control of real servers, rollback.

The controller's `changes` (a ChangeManager) is what the API, SIGHUP and startup go through.

apply (a file, a rollback, SIGHUP), with the engine lock held:
  validate (field-pathed problems) -> plan (controller/plan.py) -> revision written `pending`
  -> render + `haproxy -c` in a temporary file -> Layer 4 (nftables), when its services changed
  -> HAProxy: runtime operations then the file swapped in, or the file swapped in and a confirmed
     hitless reload (server-state file written from the model) -> revision marked `applied`.
  A failure at any step leaves the previous configuration serving (the previous file goes back, a
  failed runtime operation falls back to a reload of the new file, and if that fails too the old
  file is reloaded), marks the revision `failed` with the reason, and says why.

runtime control of a real server (`pacslb server drain|halt|online|weight`), the fast path:
  runtime API operation first (visible at once, no reload) -> revision `pending` -> render +
  `haproxy -c` + swap (the file says the same: drain is `weight 0`, halt is `disabled`) -> `applied`.
  If the file cannot be written, the runtime state is set back to the previous model.

Crash safety: HAProxy's applied-file digest (StatePaths.haproxy_applied) moves only after HAProxy
confirmed, and the revision is marked applied after that. At startup, `startup` settles what a killed
controller left `pending` (applied if HAProxy runs exactly its file, failed otherwise) and chooses what
to run: the current revision, or the configuration file when it changed since it was last read.
`started` then makes the runtime states agree with the model (and reloads if servers differ).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import getpass
import logging
import os
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engines.haproxy import process
from ..engines.haproxy.render import HAProxyEnv
from ..engines.haproxy.runtime import RuntimeAPI, RuntimeAPIError
from ..model import Config, Problem, dump_yaml, load_text, validate_data
from ..model.config import RealServerState
from ..model.diff import Change
from ..model.ha import restart_needed
from ..store import Revision, RevisionStore, StoreError
from ..store.revisions import config_digest
from . import files, runtime_ops
from .plan import Method, Operation, OpKind, Plan, make_plan

if TYPE_CHECKING:
    from .appliance import Controller, Prepared

log = logging.getLogger("pacslb.controller")

# Crash-safety tests: "STAGE:SECONDS" makes the controller pause at that stage of an apply, so that a
# test can kill it there. Stages: before-engine (revision pending, file checked, nothing touched),
# engine-confirmed (HAProxy confirmed, revision not yet marked applied).
TEST_PAUSE_ENV = "PACSLB_TEST_PAUSE"

META_CONFIG_FILE = "config_file"  # {"path", "sha256"} of the configuration file as it was last read


class Outcome(str, Enum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    DRY_RUN = "dry-run"
    INVALID = "invalid"  # the model has problems (field paths)
    REFUSED = "refused"  # an engine refused it, or it failed: the previous configuration serves
    NOT_FOUND = "not-found"


HTTP_STATUS = {
    Outcome.APPLIED: 200,
    Outcome.UNCHANGED: 200,
    Outcome.DRY_RUN: 200,
    Outcome.INVALID: 422,
    Outcome.REFUSED: 409,
    Outcome.NOT_FOUND: 404,
}


class ChangeError(Exception):
    """A change failed after validation; what ran before still runs. `messages` holds the engines' own words."""

    def __init__(self, summary: str, messages: list[str] | None = None) -> None:
        self.summary = summary
        self.messages = messages or []
        super().__init__(summary + "".join(f"\n  {m}" for m in self.messages))


@dataclass
class ChangeResult:
    outcome: Outcome
    message: str  # one sentence: what happened, or why nothing did
    plan: Plan | None = None
    revision: Revision | None = None
    parent: int | None = None
    problems: list[Problem] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "message": self.message,
            "plan": self.plan.as_dict() if self.plan else None,
            "revision": self.revision.summary() if self.revision else None,
            "parent": self.parent,
            "problems": [{"path": p.path, "message": p.message, "severity": p.severity} for p in self.problems],
            "messages": self.messages,
            "warnings": self.warnings,
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
            "engine": self.engine,
        }


def release_memory() -> None:
    """Give the memory of a change's transient objects (two models, their dumps, the rendered text) back to
    the system: a full collection, then glibc's malloc_trim. Without it the controller's resident size
    stays at the peak of its largest change."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def default_author() -> str:
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is no reason to fail
        return f"uid {os.getuid()}"


class _Clock:
    """Durations of the steps of one change, for the result (and the benchmark)."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.times: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.times[name] = self.times.get(name, 0.0) + now - self.last
        self.last = now

    def done(self) -> dict[str, float]:
        self.times["total"] = time.monotonic() - self.start
        return self.times


class ChangeManager:
    def __init__(self, controller: "Controller") -> None:
        self.c = controller
        self._store: RevisionStore | None = None
        self._startup_revision: Revision | None = None
        self._file_seen: dict[str, str] | None = None

    @property
    def store(self) -> RevisionStore:
        if self._store is None:
            self._store = RevisionStore(self.c.paths.revisions_db)
        return self._store

    def env(self, base_dir: Path) -> HAProxyEnv:
        return HAProxyEnv(state_dir=self.c.paths.root, base_dir=base_dir, cpu_count=os.cpu_count() or 1,
                           prometheus=True)  # HAProxy's exporter for the management API's /metrics

    def _api(self, timeout: float = 10.0) -> RuntimeAPI:
        return RuntimeAPI(self.c.paths.haproxy_admin_socket, timeout=timeout)

    def _haproxy_running(self) -> bool:
        return self.c.master is not None and self.c.master.alive()

    def _checkpoint(self, stage: str) -> None:
        wanted = os.environ.get(TEST_PAUSE_ENV, "")
        name, _, seconds = wanted.partition(":")
        if name == stage:
            log.warning("pausing %ss at stage %s (%s)", seconds or "30", stage, TEST_PAUSE_ENV)
            time.sleep(float(seconds or 30))

    def _refused(self, kind: str) -> str | None:
        """Why the HA pair refuses this change here (the secondary takes changes from the primary only)."""
        guard = getattr(self.c, "change_guard", None)  # set by controller/ha.py while it runs
        return guard(kind) if guard is not None else None

    # --- startup ---------------------------------------------------------------------------------

    def startup(self, config_text: str | None) -> str | None:
        """Before the engine starts (blocking): settle pending revisions, choose the configuration to run.

        Returns the text to keep as the copy of what runs (StatePaths.config).
        """
        store = self.store
        paths = self.c.paths
        running = bool(process.masters_of(paths))
        applied_digest = (files.read_text(paths.haproxy_applied) or "").strip()
        for rev in store.pending():
            if running and rev.engine_digest and rev.engine_digest == applied_digest:
                store.mark_applied(rev.id)
                log.warning("revision %d was left pending by a controller that stopped; HAProxy runs it: marked applied", rev.id)
            else:
                store.mark_failed(rev.id, "interrupted: the controller stopped before HAProxy confirmed it")
                log.warning("revision %d was left pending by a controller that stopped before HAProxy confirmed it: "
                            "marked failed", rev.id)  # fmt: skip
        current = store.current()
        seen = {"path": str(self.c.config_file), "sha256": files.sha256(config_text or "")}
        self._file_seen = seen
        if current is not None and store.meta(META_CONFIG_FILE) == seen:
            loaded = validate_data(current.config_data)
            if loaded.ok and loaded.config is not None:
                self.c.config = loaded.config
                self.c.base_dir = Path(current.base_dir) if current.base_dir else self.c.config_file.parent
                log.info("running revision %d (%s has not changed since it was last read)", current.id, self.c.config_file)
                return current.config_text
            log.error("revision %d no longer validates (%s): running %s instead", current.id,
                      "; ".join(map(str, loaded.problems)), self.c.config_file)  # fmt: skip
        data = self.c.config.model_dump_json()
        if current is not None and current.digest == config_digest(data):
            log.info("%s holds revision %d, the one that ran last", self.c.config_file, current.id)
            return config_text
        why = f"it changed since revision {current.id}" if current else "first start"
        self._startup_revision = store.add(
            data,
            config_text or config_yaml(self.c.config),
            author=default_author(),
            message=f"{self.c.config_file} read at startup ({why})",
            kind="file",
            parent=current.id if current else None,
            base_dir=str(self.c.config_file.parent),
        )
        log.info("revision %d: %s (%s)", self._startup_revision.id, self.c.config_file, why)
        return config_text

    def started(self) -> None:
        """After the engine started or was adopted (blocking): record, then make runtime states agree with the model."""
        digest = (files.read_text(self.c.paths.haproxy_applied) or "").strip()
        if self._startup_revision is not None:
            self.store.set_engine_digest(self._startup_revision.id, digest)
            self.store.mark_applied(self._startup_revision.id)
            self._startup_revision = None
        if self._file_seen is not None:
            self.store.set_meta(META_CONFIG_FILE, self._file_seen)
        self.converge()
        release_memory()

    def startup_failed(self, reason: str) -> None:
        if self._startup_revision is not None:
            self.store.mark_failed(self._startup_revision.id, reason)
            self._startup_revision = None

    def converge(self) -> None:
        """Make HAProxy's runtime states and weights agree with the model; reload if servers differ (blocking)."""
        if not self._haproxy_running():
            return
        try:
            drift = runtime_ops.converge(self._api(), self.c.config)
        except RuntimeAPIError as exc:
            log.error("cannot compare HAProxy's real servers with the model: %s", exc)
            return
        if drift.needs_reload:
            log.warning("HAProxy runs other real servers than the model (missing %s, extra %s): reloading",
                        drift.missing, drift.extra)  # fmt: skip
            try:
                prepared = self.c.prepare(self.c.config)
                self.c._reload(prepared, None, self.c.config)
            except (process.HAProxyError, RuntimeAPIError, OSError, _apply_error()) as exc:
                log.error("the reload failed: %s", exc)

    # --- apply -----------------------------------------------------------------------------------

    async def apply(
        self,
        *,
        text: str | None = None,
        data: dict[str, Any] | None = None,
        yaml_text: str | None = None,
        base_dir: Path | None = None,
        author: str | None = None,
        message: str | None = None,
        kind: str = "apply",
        dry_run: bool = False,
    ) -> ChangeResult:
        """Apply a whole configuration (YAML text, or plain data) as a new revision."""
        if not dry_run and (refusal := self._refused(kind)):
            return ChangeResult(Outcome.REFUSED, refusal)
        clock = _Clock()
        base_dir = Path(base_dir) if base_dir else self.c.base_dir
        if text is not None:
            loaded = await asyncio.to_thread(load_text, text, base_dir)
        else:
            loaded = await asyncio.to_thread(validate_data, data, base_dir)
        clock.lap("validate")
        warnings = [str(p) for p in loaded.problems if p.severity == "warning"]
        if not loaded.ok or loaded.config is None:
            errors = [p for p in loaded.problems if p.severity == "error"]
            return ChangeResult(
                Outcome.INVALID,
                f"the configuration has {len(errors)} problem{'s' if len(errors) != 1 else ''}: nothing was changed",
                problems=loaded.problems,
                timings=clock.done(),
            )
        new = loaded.config
        stored_text = yaml_text if yaml_text is not None else (text if text is not None else config_yaml(new))
        async with self.c._engine_lock:
            result = await self._apply_locked(
                new, stored_text, base_dir, author or default_author(), message or "", kind, dry_run, clock
            )
        del loaded, new
        result.warnings = warnings + result.warnings
        self._release_later()
        return result

    def _release_later(self) -> None:
        """release_memory in a thread, after the answer (it takes tens of milliseconds on large models)."""
        try:
            asyncio.get_running_loop().run_in_executor(None, release_memory)
        except RuntimeError:
            release_memory()

    async def _apply_locked(
        self, new: Config, stored_text: str, base_dir: Path, author: str, message: str, kind: str, dry_run: bool,
        clock: _Clock,
    ) -> ChangeResult:  # fmt: skip
        old = self.c.config
        plan = await asyncio.to_thread(make_plan, old, new, self.env(base_dir), self.env(self.c.base_dir))
        clock.lap("plan")
        parent = await asyncio.to_thread(self.store.current_id)
        if reason := restart_needed(old.ha, new.ha):
            return ChangeResult(Outcome.REFUSED, reason, plan=plan, parent=parent, timings=clock.done())
        if plan.empty and base_dir == self.c.base_dir:
            current = await asyncio.to_thread(self.store.get, parent, False) if parent else None
            return ChangeResult(Outcome.UNCHANGED, "the appliance already runs this configuration: nothing to do",
                                plan=plan, revision=current, parent=parent, timings=clock.done())  # fmt: skip
        if dry_run:
            try:
                prepared = await asyncio.to_thread(self.c.prepare, new, base_dir)
            except _apply_error() as exc:
                return ChangeResult(Outcome.REFUSED, f"dry run: {exc.args[0].splitlines()[0]}", plan=plan,
                                    parent=parent, messages=exc.messages, timings=clock.done())  # fmt: skip
            prepared.discard()
            clock.lap("render_check")
            return ChangeResult(Outcome.DRY_RUN, "dry run: HAProxy accepts the new file; nothing was changed",
                                plan=plan, parent=parent, warnings=prepared.warnings, timings=clock.done())  # fmt: skip
        if plan.method is not Method.NONE and not self._haproxy_running():
            return ChangeResult(Outcome.REFUSED, f"HAProxy is not running ({self.c.engine_error or 'unknown reason'}): "
                                "nothing was changed", plan=plan, parent=parent, timings=clock.done())  # fmt: skip
        try:
            rev = await asyncio.to_thread(
                self.store.add, new.model_dump_json(), stored_text, author=author, message=message, kind=kind,
                parent=parent, base_dir=str(base_dir), plan=plan.as_dict(),
            )  # fmt: skip
        except StoreError as exc:
            return ChangeResult(Outcome.REFUSED, f"the revision cannot be recorded ({exc}): nothing was changed",
                                plan=plan, parent=parent, timings=clock.done())  # fmt: skip
        clock.lap("record")
        prepared = None
        try:
            prepared = await asyncio.to_thread(self.c.prepare, new, base_dir)
            clock.lap("render_check")
            clock.times["render"], clock.times["check"] = prepared.render_seconds, prepared.check_seconds
            await asyncio.to_thread(self.store.set_engine_digest, rev.id, prepared.digest)
            await asyncio.to_thread(self._checkpoint, "before-engine")
            layer4_done = await self._layer4_apply(new, plan)
            try:
                engine = await asyncio.to_thread(self._engine_apply, plan, prepared, old, new, stored_text)
            except BaseException:
                if layer4_done:
                    await self._layer4_apply(old, plan, undo=True)
                raise
            clock.lap("engine")
        except (ChangeError, _apply_error()) as exc:
            if prepared is not None:
                prepared.discard()  # still in its temporary file unless it was swapped in
            summary = getattr(exc, "summary", None) or exc.args[0].splitlines()[0]
            await asyncio.to_thread(self.store.mark_failed, rev.id, str(exc))
            log.error("revision %d failed (%s); the previous configuration keeps serving", rev.id, exc)
            return ChangeResult(Outcome.REFUSED, f"{summary}; the previous configuration keeps serving",
                                plan=plan, revision=self.store.get(rev.id, False), parent=parent,
                                messages=exc.messages, timings=clock.done())  # fmt: skip
        self.c.config = new
        self.c.base_dir = base_dir
        self.c.engine_error = None
        await asyncio.to_thread(self._checkpoint, "engine-confirmed")
        try:
            await asyncio.to_thread(self.store.mark_applied, rev.id)
        except StoreError as exc:  # HAProxy runs it: the next start settles the pending revision by its digest
            log.error("revision %d runs but cannot be marked applied: %s", rev.id, exc)
            prepared.warnings.append(f"the revision could not be marked applied ({exc}); the next start will")
        await self._notify(new)  # after mark_applied: subsystems (HA sync) read the current revision
        clock.lap("record")
        done = self.store.get(rev.id, False)
        how = {"reload": "HAProxy reloaded", "runtime": "runtime operations, no reload", "none": "no HAProxy change"}
        log.info("revision %d applied (%s) by %s: %s", rev.id, how[engine.get("method", plan.method.value)], author,
                 message or kind)  # fmt: skip
        return ChangeResult(
            Outcome.APPLIED,
            f"revision {rev.id} applied: {how[engine.get('method', plan.method.value)]}",
            plan=plan, revision=done, parent=parent, warnings=prepared.warnings, timings=clock.done(), engine=engine,
        )  # fmt: skip

    def _workers(self) -> list[int]:
        try:
            return [w.pid for w in process.show_proc(self.c.paths, timeout=5.0).current_workers]
        except (process.HAProxyError, RuntimeAPIError):
            return []

    def _engine_apply(self, plan: Plan, prepared: "Prepared", old: Config, new: Config, text: str) -> dict[str, Any]:
        """HAProxy's part of an apply (blocking, engine lock held). Raises ChangeError; what ran before then runs."""
        before = self._workers()
        engine: dict[str, Any] = {"method": plan.method.value, "workers_before": before}
        if plan.method is Method.RELOAD:
            self._reload(prepared, text, new, "the reload failed")
        elif plan.method is Method.RUNTIME:
            try:
                runtime_ops.execute(self._api(), plan.operations)
            except runtime_ops.OperationFailed as exc:
                log.warning("runtime operation failed (%s): a hitless reload applies the change instead", exc)
                engine["fallback"] = str(exc)
                engine["method"] = Method.RELOAD.value
                try:
                    self._reload(prepared, text, new, "a runtime operation failed, and so did the reload")
                except ChangeError as failed:
                    self._undo_runtime(old)
                    failed.messages.insert(0, str(exc))
                    raise
            else:
                self.c._swap_in(prepared)
                self.c._record_applied(prepared, text)
        else:
            self.c._swap_in(prepared)
            self.c._record_applied(prepared, text)
        engine["workers_after"] = self._workers()
        engine["reloaded"] = engine["method"] == Method.RELOAD.value
        return engine

    def _reload(self, prepared: "Prepared", text: str | None, config: Config, summary: str) -> None:
        try:
            self.c._reload(prepared, text, config)
        except (process.HAProxyError, RuntimeAPIError, OSError) as exc:
            raise ChangeError(summary, [str(exc)]) from None

    def _undo_runtime(self, old: Config) -> None:
        """After runtime operations that could not be finished: back to the previous model (whose file is on disk)."""
        try:
            drift = runtime_ops.converge(self._api(), old)
            if drift.needs_reload:
                runtime_ops.save_server_state(self.c.paths, old)
                process.reload(self.c.paths, save_state=False)
        except (process.HAProxyError, RuntimeAPIError) as exc:
            log.error("could not set the runtime state back to the previous configuration: %s", exc)

    async def _layer4_apply(self, config: Config, plan: Plan, undo: bool = False) -> bool:
        """Layer 4 services are nftables': hand it the configuration when they changed. True when it applied."""
        layer4 = getattr(self.c, "layer4", None)
        if not plan.layer4 or layer4 is None:
            return False
        try:
            await layer4.apply(config)
        except Exception as exc:  # noqa: BLE001 - its errors are its own; report them with the change
            if undo:
                log.error("Layer 4 could not be set back to the previous configuration: %s", exc)
                return False
            raise ChangeError("Layer 4 (nftables) refused the change", [str(exc)]) from None
        return True

    # --- runtime control of real servers -----------------------------------------------------------

    async def set_real_server(
        self,
        service: str,
        real_server: str,
        *,
        state: RealServerState | None = None,
        weight: int | None = None,
        every_service: bool = False,
        author: str | None = None,
        message: str | None = None,
    ) -> ChangeResult:
        """drain / halt / online (`state`) or `weight` of one real server (of every service it serves, with
        `every_service`): runtime API first, then the revision and the file."""
        if refusal := self._refused("server"):
            return ChangeResult(Outcome.REFUSED, refusal)
        clock = _Clock()
        author = author or default_author()
        async with self.c._engine_lock:
            old = self.c.config
            vs = old.service(service)
            if vs is None:
                return ChangeResult(Outcome.NOT_FOUND, f"there is no virtual service {service}")
            target = next((rs for rs in vs.real_servers if rs.name == real_server), None)
            if target is None:
                return ChangeResult(Outcome.NOT_FOUND, f"virtual service {service} has no real server {real_server}")
            targets = [(vs, target)]
            if every_service:
                targets = [
                    (other, rs) for other in old.virtual_services for rs in other.real_servers
                    if rs.address == target.address and rs.port == target.port
                ]  # fmt: skip
            updates: dict[tuple[str, str], dict[str, Any]] = {}
            changes: list[Change] = []
            operations: list[Operation] = []
            layer4: list[tuple[str, str]] = []
            for owner, rs in targets:
                update: dict[str, Any] = {}
                path = f"virtual_services[{owner.name}].real_servers[{rs.name}]"
                if state is not None and rs.state is not state:
                    update["state"] = state
                    changes.append(Change(f"{path}.state", "changed", rs.state.value, state.value))
                if weight is not None and rs.weight != weight:
                    update["weight"] = weight
                    changes.append(Change(f"{path}.weight", "changed", rs.weight, weight))
                if not update:
                    continue
                updates[(owner.name, rs.name)] = update
                if owner.mode.is_layer4:
                    layer4.append((owner.name, rs.name))
                    continue
                if "weight" in update:
                    operations.append(Operation(OpKind.WEIGHT, owner.name, rs.name, weight=weight))
                if "state" in update:
                    operations.append(Operation(OpKind.STATE, owner.name, rs.name, state=state,
                                                weight=update.get("weight", rs.weight)))  # fmt: skip
            plan = Plan(changes, operations=operations, layer4=sorted({s for s, _ in layer4}))
            if not changes:
                what = state.value if state is not None else f"weight {weight}"
                return ChangeResult(Outcome.UNCHANGED, f"{service}/{real_server} is already {what}: nothing to do",
                                    plan=plan, timings=clock.done())  # fmt: skip
            if operations and not self._haproxy_running():
                return ChangeResult(Outcome.REFUSED, "HAProxy is not running: nothing was changed", plan=plan)
            new = _with_real_servers(old, updates)
            if not message:
                what = state.value if state is not None else f"weight {weight}"
                message = f"{what} {service}/{real_server}" + (" on every service it serves" if every_service else "")
            clock.lap("plan")
            try:
                if operations:
                    await asyncio.to_thread(runtime_ops.execute, self._api(), operations)
                clock.lap("runtime")
                await self._layer4_servers(layer4, new)
            except (runtime_ops.OperationFailed, ChangeError) as exc:
                await asyncio.to_thread(self._undo_runtime, old)
                return ChangeResult(Outcome.REFUSED, f"{exc}; nothing was changed", plan=plan,
                                    messages=getattr(exc, "messages", []), timings=clock.done())  # fmt: skip
            parent = await asyncio.to_thread(self.store.current_id)
            result = await self._record_runtime(old, new, plan, parent, author, message or "", clock, layer4)
        self._release_later()
        return result

    async def _record_runtime(
        self, old: Config, new: Config, plan: Plan, parent: int | None, author: str, message: str, clock: _Clock,
        layer4: list[tuple[str, str]],
    ) -> ChangeResult:  # fmt: skip
        """The revision and the file of a runtime change already made (engine lock held)."""
        rev: Revision | None = None
        try:
            # no YAML for a runtime change (it came from no text): its JSON is YAML too, and far quicker to make
            text = await asyncio.to_thread(new.model_dump_json)
            rev = await asyncio.to_thread(
                self.store.add, text, "", author=author, message=message, kind="server",
                parent=parent, base_dir=str(self.c.base_dir), plan=plan.as_dict(),
            )  # fmt: skip
            clock.lap("record")
            prepared = await asyncio.to_thread(self.c.prepare, new)
            clock.lap("render_check")
            clock.times["render"], clock.times["check"] = prepared.render_seconds, prepared.check_seconds
            await asyncio.to_thread(self.store.set_engine_digest, rev.id, prepared.digest)
            await asyncio.to_thread(self.c._swap_in, prepared)
        except (_apply_error(), OSError, StoreError) as exc:
            # the file could not be written: set the runtime state back, so that what runs is what it says
            await asyncio.to_thread(self._undo_runtime, old)
            try:
                await self._layer4_servers(layer4, old)
            except ChangeError as undo:
                log.error("Layer 4 could not be set back: %s", undo)
            if rev is not None:
                await asyncio.to_thread(self.store.mark_failed, rev.id, str(exc))
            return ChangeResult(Outcome.REFUSED, f"the change could not be recorded and written ({exc}); "
                                "the runtime state was set back", plan=plan, parent=parent,
                                messages=getattr(exc, "messages", []), timings=clock.done())  # fmt: skip
        self.c.config = new
        warnings = []
        try:
            await asyncio.to_thread(self.c._record_applied, prepared, text)
            await asyncio.to_thread(self.store.mark_applied, rev.id)
        except (OSError, StoreError) as exc:  # the file says it and HAProxy runs it: the next start settles it
            log.error("revision %d runs but cannot be marked applied: %s", rev.id, exc)
            warnings.append(f"the revision could not be marked applied ({exc}); the next start will")
        await self._notify(new)  # after mark_applied: subsystems (HA sync) read the current revision
        clock.lap("record")
        log.info("revision %d applied (runtime operations, no reload) by %s: %s", rev.id, author,
                 "; ".join(str(op) for op in plan.operations) or ", ".join(plan.layer4))  # fmt: skip
        return ChangeResult(
            Outcome.APPLIED,
            f"revision {rev.id} applied: runtime operations, no reload",
            plan=plan, revision=self.store.get(rev.id, False), parent=parent, timings=clock.done(), warnings=warnings,
            engine={"method": Method.RUNTIME.value, "reloaded": False},
        )  # fmt: skip

    async def _notify(self, config: Config) -> None:
        notify = getattr(self.c, "notify_applied", None)  # stand-ins in unit tests have none
        if notify is not None:
            await notify(config)

    async def _layer4_servers(self, targets: list[tuple[str, str]], config: Config) -> None:
        layer4 = getattr(self.c, "layer4", None)
        if layer4 is None or not targets:
            return
        for service, name in targets:
            rs = next(r for r in config.service(service).real_servers if r.name == name)  # type: ignore[union-attr]
            try:
                await layer4.set_server(service, name, state=rs.state, weight=rs.weight)
            except Exception as exc:  # noqa: BLE001 - its errors are its own
                raise ChangeError("Layer 4 (nftables) refused the change", [str(exc)]) from None

    # --- rollback and SIGHUP -----------------------------------------------------------------------

    async def rollback(
        self, rev_id: int, *, author: str | None = None, message: str | None = None, dry_run: bool = False
    ) -> ChangeResult:
        rev = await asyncio.to_thread(self.store.get, rev_id)
        if rev is None:  # never was, or pruned (the store says which, and what it keeps)
            return ChangeResult(Outcome.NOT_FOUND, await asyncio.to_thread(self.store.missing, rev_id))
        note = f"rollback to revision {rev_id}" + (f": {message}" if message else "")
        return await self.apply(
            data=rev.config_data,
            yaml_text=rev.config_yaml or None,
            base_dir=Path(rev.base_dir) if rev.base_dir else None,
            author=author,
            message=note,
            kind="rollback",
            dry_run=dry_run,
        )

    async def apply_file(self) -> ChangeResult:
        """SIGHUP: read the configuration file again and apply it as a revision."""
        path = self.c.config_file
        try:
            text = await asyncio.to_thread(path.read_text)
        except OSError as exc:
            log.error("cannot read %s: %s; nothing was changed", path, exc)
            return ChangeResult(Outcome.INVALID, f"cannot read {path}: {exc}")
        result = await self.apply(
            text=text, base_dir=path.parent, author=default_author(), message=f"{path} read again (SIGHUP)", kind="file"
        )
        for problem in result.problems:
            log.warning("%s: %s", path, problem)
        if result.outcome is Outcome.INVALID:
            log.error("%s is not valid: nothing was changed", path)
        elif result.outcome is Outcome.REFUSED:
            log.error("%s: %s", path, result.message)
        else:
            await asyncio.to_thread(self.store.set_meta, META_CONFIG_FILE, {"path": str(path), "sha256": files.sha256(text)})
            if result.outcome is Outcome.UNCHANGED:
                log.info("%s: HAProxy already runs this configuration", path)
        return result


def config_yaml(config: Config) -> str:
    """The configuration as YAML, as `dump_yaml` writes it, with libyaml's emitter when PyYAML has it: the
    same text several times faster, which matters on the fast path of large configurations."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", None)
    if dumper is None:
        return dump_yaml(config)
    data = {"version": config.version, **config.model_dump(mode="json", exclude_defaults=True)}
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, width=120)


def _with_real_servers(config: Config, updates: dict[tuple[str, str], dict[str, Any]]) -> Config:
    """A copy of `config` with some real servers' fields replaced; everything else is shared, not copied
    (configurations are never changed in place)."""
    services = []
    for vs in config.virtual_services:
        if any(key[0] == vs.name for key in updates):
            servers = [
                rs.model_copy(update=updates[(vs.name, rs.name)]) if (vs.name, rs.name) in updates else rs
                for rs in vs.real_servers
            ]
            vs = vs.model_copy(update={"real_servers": servers})
        services.append(vs)
    return config.model_copy(update={"virtual_services": services})


def _apply_error():
    from .appliance import ApplyError

    return ApplyError
