"""The one front door of every change: apply, runtime control of real servers, rollback, SIGHUP, HA sync,
certificate hot swap. The REST API, the WebUI, the CLI (through the controller API) and the HA peer link
all call `Changes`; none of them talks to an engine.

A change, under the appliance's change gate (one at a time):
  refuse on an HA secondary (guard) -> refuse a stale base revision -> validate (field-pathed problems)
  -> refuse what needs a restart -> every engine plans -> nothing changed: answer `unchanged`
  -> the preconditions (the agent port of the health service is listened on) or refuse
  -> revision written `pending` -> the transaction (change/transaction.py, run by change/runner.py):
     check every artefact, record the engines' digests, commit engine by engine in order, undo on failure
  -> revision `applied` (or `failed` with the reason) -> the subsystems hear of it -> answer.
Every answer is also written to the audit log, whichever door it came through.

Secrets (the AMQP check's password; model/secrets.py) are stored apart: the revision holds the placeholder
"********", the secret store (store/secrets.py, mode 0600) the values by revision and field path, written
before any engine is touched. A placeholder written back keeps the running secret; a rollback takes the
secrets of the revision it goes back to.

At startup `startup` settles the revisions a killed controller left pending (change/transaction.py
`settle`) and chooses what to run: the current revision, or the configuration file when it changed
since it was last read; `started` records it once the engines run.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import getpass
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

from .. import files
from ..engines.contract import Engine, Prepared
from ..engines.haproxy.plan import Method, Plan
from ..model import Config, dump_yaml, load_text, validate_data
from ..model.config import RealServerState
from ..model.diff import diff
from ..model.files import Reserved, read_config_text
from ..model.ha import restart_needed
from ..model.problems import Problem
from ..model.reuse import ValidatedServices
from ..model.secrets import has_secrets, resolve, stored_form
from ..paths import StatePaths
from ..store import Revision, RevisionStatus, RevisionStore, SecretStore, StoreError
from ..store.revision_delta import Parts
from ..store.revisions import config_digest
from . import runner
from .result import ChangeResult, Outcome
from .revision_json import RevisionJson
from .secrets_apart import move_secrets_out
from .transaction import settle, stale

log = logging.getLogger("pacslb.controller")


def store_guarded(change):
    """A change whose state directory cannot be read or written (disk full, read-only, I/O error) is refused
    with what to do, instead of ending in a server error. Every StoreError that reaches this point comes
    before the engines changed or after they were set back (the applied path catches its own)."""

    @functools.wraps(change)
    async def guarded(self, *args, **kwargs):
        try:
            return await change(self, *args, **kwargs)
        except StoreError as exc:
            log.error("a change was refused: the state directory cannot be read or written (%s)", exc)
            return ChangeResult(Outcome.REFUSED, store_refusal(self.paths.root, exc))

    return guarded


def store_refusal(root: Path, exc: Exception) -> str:
    """What a change refused because the state directory failed says (disk full, read-only, I/O error)."""
    return (f"the state directory {root} cannot be read or written ({exc}): nothing was changed; free space on it or "
            "make it writable, then try again")  # fmt: skip


META_CONFIG_FILE = "config_file"  # {"path", "sha256"} of the configuration file as it was last read
SYNC_KIND = "sync"  # a configuration the HA peer pushed: the only change a secondary takes
# The doors of root on the appliance's host (the controller's Unix socket, SIGHUP, the start): only they may change
# settings.files, which says what root may read and run; an admin of the management API may not widen it.
HOST_DOORS = frozenset({"cli", "signal", "startup"})

Guard = Callable[[str], "str | None"]
Notify = Callable[[Config], Awaitable[None]]


@dataclass(frozen=True)
class Origin:
    """Who asks for a change, and through which door: recorded in the revision and the audit log."""

    author: str
    via: str = "cli"  # cli | api | web | ha | cluster | signal | startup
    client_ip: str | None = None


AuditRecorder = Callable[[Origin, str, str, ChangeResult], None]
# A cluster node's hook (cluster/state.py): under the gate, after the engines planned and before any commits, the
# change is written to the cluster's etcd; an answer refuses it (another node's change landed first: a conflict).
# Its last argument checks the change with every engine's checker first (EngineError), so that nothing an engine
# refuses here reaches the other nodes.
Publish = Callable[[Config, Config, Origin, str, Callable[[], Awaitable[None]]], Awaitable["ChangeResult | None"]]


class Precondition(Protocol):
    """What a configuration needs outside the engines before any engine commits it: the health service's agent
    port, which HAProxy asks as soon as it runs the new configuration. Checked under the gate after the
    engines planned and before the revision is written: a refusal changes nothing."""

    async def prepare(self, old: Config, new: Config) -> str | None:
        """Take what `new` needs (e.g. listen on its port); return why the change is refused, or None."""
        ...

    async def release(self, running: Config) -> None:
        """Give back what `prepare` took and `running` (the configuration that runs now) does not use."""
        ...


@dataclass
class Running:
    """The model that runs, and the folder its relative paths (certificates, pages) are read from."""

    config: Config
    base_dir: Path
    config_file: Path


class EditError(Exception):
    """An edit of the configuration's data could not be made (a missing item, a bad request): nothing changed."""

    def __init__(self, outcome: Outcome, message: str, **extra: Any) -> None:
        self.outcome = outcome
        self.message = message
        self.extra = extra
        super().__init__(message)


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


def config_yaml(config: Config) -> str:
    """The configuration as YAML, as `dump_yaml` writes it, with libyaml's emitter when PyYAML has it: the
    same text several times faster, which matters on the fast path of large configurations."""
    import yaml

    if not hasattr(yaml, "CSafeDumper"):
        return dump_yaml(config)
    data = {"version": config.version, **config.model_dump(mode="json", exclude_defaults=True)}
    return yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=120)


def with_real_servers(config: Config, updates: dict[tuple[str, str], dict[str, Any]]) -> Config:
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


def recorded_digests(engine_digest: str | None) -> dict[str, str]:
    """The per-engine digests a revision recorded at Begin (older stores recorded HAProxy's alone)."""
    if not engine_digest:
        return {}
    if engine_digest.startswith("{"):
        try:
            found = json.loads(engine_digest)
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
    return {"haproxy": engine_digest}


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


_HOW = {"reload": "HAProxy reloaded", "runtime": "runtime operations, no reload", "none": "no HAProxy change"}


@dataclass
class Changes:
    paths: StatePaths
    running: Running
    engines: Sequence[Engine]  # in commit order
    gate: asyncio.Lock  # the appliance's change gate: one change (or engine restart) at a time
    guard: Guard = lambda kind: None  # why this node refuses a change of `kind` (the HA secondary), or None
    notify: Notify | None = None  # the subsystems hear of every applied configuration
    audit: AuditRecorder | None = None
    checkpoint: runner.Checkpoint = runner.no_checkpoint
    certificates: Any = None  # the engine that hot-swaps certificates (HAProxy): plan_certificate(path, bundle, loaded_as)
    preconditions: Sequence[Precondition] = ()  # checked before any engine commits (the health service's agent port)
    publish: Publish | None = None  # a cluster node: the change goes to etcd first (cluster/state.py)
    _store: RevisionStore | None = field(default=None, init=False)
    _secrets: SecretStore | None = field(default=None, init=False)
    _startup_revision: Revision | None = field(default=None, init=False)
    _file_seen: dict[str, str] | None = field(default=None, init=False)
    _json: RevisionJson = field(default_factory=RevisionJson, init=False)  # revisions' JSON, unchanged services reused
    _validated: ValidatedServices = field(default_factory=ValidatedServices, init=False)  # services whose data is unchanged
    # (id, digest, JSON cut at its services) of the last revision written from `_json`: the next one's delta base
    _json_base: tuple[int, str, Parts] | None = field(default=None, init=False)

    @property
    def store(self) -> RevisionStore:
        if self._store is None:
            self._store = RevisionStore(self.paths.revisions_db)
        return self._store

    @property
    def secrets(self) -> SecretStore:
        """The secrets of each revision (created with the first revision that has one)."""
        if self._secrets is None:
            self._secrets = SecretStore(self.paths.secrets_db)
        return self._secrets

    def secret_store(self) -> SecretStore | None:
        """The secret store when there is one (for revision diffs), else None."""
        return self.secrets if self.paths.secrets_db.exists() else None

    def stored_secrets(self, rev_id: int) -> dict[str, str]:
        """The secrets revision `rev_id` ran with, by field path (blocking); {} when none are stored."""
        if not self.paths.secrets_db.exists():
            return {}
        return self.secrets.get(rev_id)

    def _record_secrets(self, rev_id: int, config: Config) -> None:
        """Store a revision's secrets apart from it (blocking); nothing to write for a configuration without."""
        values = stored_form(config)
        if values:
            self.secrets.put(rev_id, values)

    def _forget_secrets(self, pruned: list[int]) -> None:
        if pruned and self.paths.secrets_db.exists():
            try:
                self.secrets.forget(pruned)
            except StoreError as exc:  # the next start deletes them (keep_only)
                log.warning("the secrets of pruned revisions could not be deleted: %s", exc)

    def _add_applied(self, dumped: Parts | str, base_dir: Path, origin: Origin, message: str, kind: str,
                     parent: int | None, plan: Plan, base: tuple[int, str, Parts] | None) -> Revision:  # fmt: skip
        """Record an applied revision and prune, in one transaction (blocking)."""
        rev, pruned = self.store.add_applied(dumped, "", author=origin.author, message=message, kind=kind, parent=parent,
                                             base_dir=str(base_dir), plan=plan.as_dict(), base=base)  # fmt: skip
        self._forget_secrets(pruned)
        return rev

    def _mark_applied(self, rev_id: int) -> None:
        """Mark a revision applied (blocking); the secrets of the revisions that pruned away go with them."""
        self._forget_secrets(self.store.mark_applied(rev_id))

    def revision_config(self, rev: Revision) -> Config:
        """The configuration of a revision with the secrets it ran with (blocking): what HA sync pushes.
        StoreError when it no longer validates or its secrets are not stored."""
        loaded = validate_data(rev.config_data)
        if not loaded.ok or loaded.config is None:
            raise StoreError(f"revision {rev.id} no longer validates: " + "; ".join(map(str, loaded.problems)))
        config, problems = resolve(loaded.config, self.stored_secrets(rev.id), f"revision {rev.id}'s stored secrets")
        if problems:
            raise StoreError("; ".join(map(str, problems)))
        return config

    @property
    def config(self) -> Config:
        return self.running.config

    @property
    def base_dir(self) -> Path:
        return self.running.base_dir

    @property
    def reserved(self) -> Reserved:
        """The state directory, where no configured file may lie but the certificates uploaded to certs/."""
        return Reserved(self.paths.root, self.paths.certs_dir)

    def current_revision(self) -> int | None:
        return self.store.current_id()

    async def _record_audit(self, origin: Origin, action: str, target: str, result: ChangeResult) -> ChangeResult:
        if self.audit is not None:
            try:
                await asyncio.to_thread(self.audit, origin, action, target, result)
            except Exception:
                log.exception("the audit log could not record %s %s", action, target)
        return result

    # --- startup ---------------------------------------------------------------------------------

    def startup(self, config_text: str | None, engines_running: bool) -> str | None:
        """Before the engines start (blocking): settle pending revisions, choose the configuration to run.

        `engines_running`: an HAProxy of this state directory runs (its digest can settle revisions).
        Returns the text to keep as the copy of what runs (StatePaths.config).
        """
        store = self.store
        move_secrets_out(store, lambda: self.secrets, config_yaml)  # once: revisions of older releases hold them
        if self.paths.secrets_db.exists():
            self.secrets.keep_only(store.ids())  # revisions pruned meanwhile (pacslb revisions prune)
        running = {e.name: e.applied_digest() for e in self.engines} if engines_running else {}
        pending = {rev.id: recorded_digests(rev.engine_digest) for rev in store.pending()}
        for verdict in settle(pending, running):
            if verdict.applied:
                store.mark_applied(verdict.revision)
                log.warning("revision %d was left pending by a controller that stopped; %s: marked applied",
                            verdict.revision, verdict.reason)  # fmt: skip
            else:
                store.mark_failed(verdict.revision, verdict.reason)
                log.warning("revision %d was left pending by a controller that stopped (%s): marked failed",
                            verdict.revision, verdict.reason)  # fmt: skip
        current = store.current()
        config_file = self.running.config_file
        seen = {"path": str(config_file), "sha256": files.sha256(config_text or "")}
        self._file_seen = seen
        stored = self.stored_secrets(current.id) if current is not None else {}
        if current is not None and store.meta(META_CONFIG_FILE) == seen:
            base_dir = Path(current.base_dir) if current.base_dir else config_file.parent
            loaded = validate_data(current.config_data, base_dir, self.reserved, self._validated)  # its files too: where they lie
            problems = loaded.problems
            if loaded.ok and loaded.config is not None:
                config, problems = resolve(loaded.config, stored, f"revision {current.id}'s stored secrets")
                if not problems:
                    self.running.config = config
                    self.running.base_dir = base_dir
                    log.info("running revision %d (%s has not changed since it was last read)", current.id, config_file)
                    return current.config_text
            log.error("revision %d cannot run again (%s): running %s instead", current.id,
                      "; ".join(map(str, problems)), config_file)  # fmt: skip
        # a placeholder in the file keeps the secret that ran last; with none stored the file cannot run
        self.running.config, problems = resolve(self.running.config, stored, "the revision that ran last")
        if problems:
            raise StoreError(f"{config_file}: " + "; ".join(map(str, problems)))
        data = self.running.config.model_dump_json()  # secrets as the placeholder: the revision holds none
        secret = has_secrets(self.running.config)
        if current is not None and current.digest == config_digest(data) and stored == stored_form(self.running.config):
            log.info("%s holds revision %d, the one that ran last", config_file, current.id)
            return current.config_text if secret else config_text
        why = f"it changed since revision {current.id}" if current else "first start"
        text = config_yaml(self.running.config) if secret or not config_text else config_text  # the file's text has them
        self._startup_revision = store.add(
            data,
            text,
            author=default_author(),
            message=f"{config_file} read at startup ({why})",
            kind="file",
            parent=current.id if current else None,
            base_dir=str(config_file.parent),
        )
        self._record_secrets(self._startup_revision.id, self.running.config)
        log.info("revision %d: %s (%s)", self._startup_revision.id, config_file, why)
        return text if secret else config_text

    def started(self, config_text: str | None) -> None:
        """After the engines started or were adopted (blocking): record what runs."""
        if config_text is not None:
            files.atomic_write(self.paths.config, config_text)
        if self._startup_revision is not None:
            digests = {e.name: d for e in self.engines if (d := e.applied_digest())}
            self.store.set_engine_digest(self._startup_revision.id, json.dumps(digests, sort_keys=True))
            self._mark_applied(self._startup_revision.id)
            self._startup_revision = None
        if self._file_seen is not None:
            self.store.set_meta(META_CONFIG_FILE, self._file_seen)
        release_memory()

    def startup_failed(self, reason: str) -> None:
        if self._startup_revision is not None:
            self.store.mark_failed(self._startup_revision.id, reason)
            self._startup_revision = None

    # --- the transaction -------------------------------------------------------------------------

    def _plan(self, old: Config, new: Config, base_dir: Path) -> list[tuple[Engine, Prepared]]:
        """Every engine's plan (blocking: engines render), those with nothing to do included."""
        return [(e, e.plan(old, new, base_dir)) for e in self.engines if e.wanted(old) or e.wanted(new)]

    @staticmethod
    def _shown_plan(old: Config, new: Config, planned: list[tuple[Engine, Prepared]]) -> Plan:
        """The change's plan as the CLI, API and WebUI show it: the model diff with HAProxy's method (HAProxy
        always runs; its plan also names the Layer 4 services that changed)."""
        for _, prepared in planned:
            if isinstance(prepared.shown_plan, Plan):
                return prepared.shown_plan
        return Plan(diff(old, new))

    async def _transact(
        self, old: Config, new: Config, stored_text: str, base_dir: Path, origin: Origin, message: str, kind: str,
        dry_run: bool, clock: _Clock, unchanged_message: str = "the appliance already runs this configuration: nothing to do",
    ) -> ChangeResult:  # fmt: skip
        """Plan, check, commit and record one change (the gate held)."""
        planned = await asyncio.to_thread(self._plan, old, new, base_dir)
        plan = self._shown_plan(old, new, planned)
        parts = [(e, p) for e, p in planned if p.changed]
        clock.lap("plan")
        parent = await asyncio.to_thread(self.store.current_id)
        if plan.empty and base_dir == self.running.base_dir:
            for engine, prepared in parts:
                engine.discard(prepared)
            current = await asyncio.to_thread(self.store.get, parent, False) if parent else None
            return ChangeResult(Outcome.UNCHANGED, unchanged_message, plan=plan, revision=current, parent=parent,
                                timings=clock.done())  # fmt: skip
        if refusal := await self._prepare(old, new):
            for engine, prepared in parts:
                engine.discard(prepared)
            await self._release()
            return ChangeResult(Outcome.REFUSED, refusal, plan=plan, parent=parent, timings=clock.done())
        try:
            if dry_run:
                return await self._dry_run(parts, plan, parent, clock)
            if self.publish is not None and (refusal_answer := await self.publish(old, new, origin, kind,
                                                                                  functools.partial(_check, parts))) is not None:  # fmt: skip
                for engine, prepared in parts:
                    engine.discard(prepared)
                refusal_answer.plan, refusal_answer.parent, refusal_answer.timings = plan, parent, clock.done()
                return refusal_answer
            return await self._commit(old, new, stored_text, base_dir, origin, message, kind, clock, plan, parts, parent)
        finally:
            await self._release()  # what the preconditions took for a change that did not land

    async def _prepare(self, old: Config, new: Config) -> str | None:
        """Every precondition, in order: why the change is refused, or None (each one undoes itself in `_release`)."""
        for precondition in self.preconditions:
            if refusal := await precondition.prepare(old, new):
                log.error("%s", refusal)
                return refusal
        return None

    async def _release(self) -> None:
        for precondition in self.preconditions:
            try:
                await precondition.release(self.running.config)
            except Exception:
                log.exception("a precondition of the change could not release what it took")

    async def _commit(
        self, old: Config, new: Config, stored_text: str, base_dir: Path, origin: Origin, message: str, kind: str,
        clock: _Clock, plan: Plan, parts: list[tuple[Engine, Prepared]], parent: int | None,
    ) -> ChangeResult:  # fmt: skip
        """Record the revision `pending`, run the transaction, and record what it did (the gate held)."""
        steps = {p.engine: p.steps for _, p in parts}
        if _record_once(parts, new, stored_text):
            return await self._commit_once(new, base_dir, origin, message, kind, clock, plan, parts, parent, steps)
        if stored_text and has_secrets(new):
            stored_text = config_yaml(new)  # the text given holds the secrets; the model's dump shows the placeholder
        rev = None
        try:
            # the revision holds the placeholder (the default dump); the values go to the secret store, before
            # any engine is touched (a controller killed in between leaves a pending revision no engine ran)
            dumped = await asyncio.to_thread(self._json.dump_parts, new)
            base, self._json_base = self._json_base, None  # a delta of the last revision written, if it is one
            rev = await asyncio.to_thread(
                self.store.add, dumped, stored_text, author=origin.author, message=message, kind=kind,
                parent=parent, base_dir=str(base_dir), plan=plan.as_dict(), base=base,
            )  # fmt: skip
            if isinstance(dumped, Parts):
                self._json_base = (rev.id, rev.digest, dumped)
            await asyncio.to_thread(self._record_secrets, rev.id, new)
        except StoreError as exc:
            for engine, prepared in parts:
                engine.discard(prepared)
            if rev is not None:
                await asyncio.to_thread(self.store.mark_failed, rev.id, f"its secrets cannot be stored: {exc}")
            log.error("a change was refused: its revision cannot be recorded (%s)", exc)
            return ChangeResult(Outcome.REFUSED, store_refusal(self.paths.root, exc), plan=plan, parent=parent,
                                timings=clock.done())  # fmt: skip
        clock.lap("record")

        async def begin(digests) -> None:
            clock.lap("check")
            if digests:  # none (a runtime change of states and weights: no file yet) settles as none recorded
                await asyncio.to_thread(self.store.set_engine_digest, rev.id, json.dumps(dict(digests), sort_keys=True))

        record, warnings = await self._run_engines(parts, begin, clock)
        if not record.applied:
            await asyncio.to_thread(self.store.mark_failed, rev.id, "\n  ".join([record.summary, *record.messages]))
            log.error("revision %d failed (%s); the previous configuration keeps serving", rev.id, record.summary)
            return ChangeResult(Outcome.REFUSED, f"{record.summary}; the previous configuration keeps serving",
                                plan=plan, revision=self.store.get(rev.id, False), parent=parent,
                                messages=list(record.messages), timings=clock.done(), engines=steps)  # fmt: skip
        self.running.config, self.running.base_dir = new, base_dir
        try:
            if stored_text:
                await asyncio.to_thread(files.atomic_write, self.paths.config, stored_text)
            await asyncio.to_thread(self._mark_applied, rev.id)
        except (OSError, StoreError) as exc:  # the engines run it: the next start settles it by its digests
            log.error("revision %d runs but cannot be marked applied: %s", rev.id, exc)
            warnings.append(f"the revision could not be marked applied ({exc}); the next start will")
        if self.notify is not None:
            await self.notify(new)  # after mark_applied: subsystems (HA sync) read the current revision
        clock.lap("record")
        shown = next((p for _, p in parts if isinstance(p.shown_plan, Plan)), None)  # the engine whose plan is shown
        engine = dict(shown.result) if shown is not None else {"method": Method.NONE.value, "reloaded": False}
        how = _HOW[engine.get("method", plan.method.value)]
        if kind == "server" and not engine.get("reloaded"):
            how = _HOW["runtime"]
        log.info("revision %d applied (%s) by %s: %s", rev.id, how, origin.author, message or kind)
        try:
            recorded = await asyncio.to_thread(self.store.get, rev.id, False)
        except StoreError as exc:  # it runs all the same: say so, never "nothing was changed"
            recorded = None
            warnings.append(f"revision {rev.id} runs but cannot be read back ({exc})")
        return ChangeResult(Outcome.APPLIED, f"revision {rev.id} applied: {how}", plan=plan,
                            revision=recorded, parent=parent, warnings=warnings,
                            timings=clock.done(), engine=engine, engines=steps)  # fmt: skip

    async def _run_engines(self, parts: list[tuple[Engine, Prepared]], begin: Any, clock: _Clock) -> tuple[Any, list[str]]:
        """The transaction over the engines (runner.run), with each engine's own step times added to `clock`:
        (its record, the engines' warnings)."""
        record = await runner.run(parts, begin=begin, checkpoint=self.checkpoint)
        clock.lap("engine")
        for _, prepared in parts:
            for name, seconds in prepared.timings.items():
                clock.times[name] = clock.times.get(name, 0.0) + seconds
        return record, [w for _, p in parts for w in p.warnings]

    async def _commit_once(
        self, new: Config, base_dir: Path, origin: Origin, message: str, kind: str, clock: _Clock, plan: Plan,
        parts: list[tuple[Engine, Prepared]], parent: int | None, steps: dict[str, Any],
    ) -> ChangeResult:  # fmt: skip
        """A change that leaves nothing on disk for a start to settle (runtime operations only; `_record_once`):
        the transaction first, then the revision recorded once, `applied` (and pruning) in one SQLite commit,
        or `failed`. A controller killed before that commit leaves no revision, as a `pending` one would have
        settled: failed, HAProxy's runtime states converged back to the current revision at the next start. A
        commit that fails (the state directory full or read-only) sets the engines back: the change is refused."""

        async def begin(digests) -> None:
            clock.lap("check")

        record, warnings = await self._run_engines(parts, begin, clock)
        dumped = await asyncio.to_thread(self._json.dump_parts, new)
        base, self._json_base = self._json_base, None  # a delta of the last revision written, if it is one
        if not record.applied:
            error = "\n  ".join([record.summary, *record.messages])
            rev = None
            try:
                rev = await asyncio.to_thread(
                    self.store.add, dumped, "", author=origin.author, message=message, kind=kind, parent=parent,
                    base_dir=str(base_dir), plan=plan.as_dict(), status=RevisionStatus.FAILED, error=error, base=base,
                )  # fmt: skip
            except StoreError as exc:
                log.error("the failed change could not be recorded: %s", exc)
            if rev is not None and isinstance(dumped, Parts):
                self._json_base = (rev.id, rev.digest, dumped)
            log.error("%s failed (%s); the previous configuration keeps serving", message or kind, record.summary)
            return ChangeResult(Outcome.REFUSED, f"{record.summary}; the previous configuration keeps serving",
                                plan=plan, revision=rev, parent=parent, messages=list(record.messages),
                                timings=clock.done(), engines=steps)  # fmt: skip
        try:
            rev = await asyncio.to_thread(self._add_applied, dumped, base_dir, origin, message, kind, parent, plan, base)
        except StoreError as exc:  # the state directory failed (a full disk): the engines go back, nothing is changed
            return await self._set_back(parts, exc, plan, parent, clock, steps)
        if isinstance(dumped, Parts):
            self._json_base = (rev.id, rev.digest, dumped)
        self.running.config, self.running.base_dir = new, base_dir
        clock.lap("record")
        if self.notify is not None:
            await self.notify(new)  # after the record: subsystems (HA sync) read the current revision
        clock.lap("notify")
        shown = next((p for _, p in parts if isinstance(p.shown_plan, Plan)), None)
        engine = dict(shown.result) if shown is not None else {"method": Method.NONE.value, "reloaded": False}
        how = _HOW[engine.get("method", plan.method.value)]
        if kind == "server" and not engine.get("reloaded"):
            how = _HOW["runtime"]
        log.info("revision %d applied (%s) by %s: %s", rev.id, how, origin.author, message or kind)
        return ChangeResult(Outcome.APPLIED, f"revision {rev.id} applied: {how}", plan=plan, revision=rev, parent=parent,
                            warnings=warnings, timings=clock.done(), engine=engine, engines=steps)  # fmt: skip

    async def _set_back(self, parts: list[tuple[Engine, Prepared]], exc: StoreError, plan: Plan, parent: int | None,
                        clock: _Clock, steps: dict[str, Any]) -> ChangeResult:  # fmt: skip
        """A change the engines run but the store cannot record (`_commit_once`): every engine is set back, last
        first, and the change refused, as it would have been with its `pending` record refused first."""
        log.error("a change was refused: its revision cannot be recorded (%s); the engines are set back", exc)
        stuck: list[str] = []
        for engine, prepared in reversed(parts):
            try:
                await engine.undo(prepared)
            except Exception as undo_exc:  # said in the answer; the next start sets it back
                log.exception("%s could not be set back after the record failed", engine.name)
                stuck.append(f"{engine.name} could not be set back ({undo_exc}): the next start sets it back")
        return ChangeResult(Outcome.REFUSED, store_refusal(self.paths.root, exc), plan=plan, parent=parent,
                            warnings=stuck, timings=clock.done(), engines=steps)  # fmt: skip

    async def _dry_run(self, parts: list[tuple[Engine, Prepared]], plan: Plan, parent: int | None, clock: _Clock) -> ChangeResult:
        from ..engines.contract import EngineError

        try:
            for engine, prepared in parts:
                await engine.check(prepared)
        except EngineError as exc:
            return ChangeResult(Outcome.REFUSED, f"dry run: {exc.summary}", plan=plan, parent=parent,
                                messages=exc.messages, timings=clock.done())  # fmt: skip
        finally:
            for engine, prepared in parts:
                engine.discard(prepared)
        clock.lap("render_check")
        names = [e.name for e, _ in parts]
        said = ("HAProxy accepts the new file" if names == ["haproxy"] else
                f"{' and '.join(names)} accept{'s' if len(names) == 1 else ''} the new configuration" if names
                else "no engine has anything to change")  # fmt: skip
        return ChangeResult(Outcome.DRY_RUN, f"dry run: {said}; nothing was changed",
                            plan=plan, parent=parent, warnings=[w for _, p in parts for w in p.warnings],
                            timings=clock.done(), engines={p.engine: p.steps for _, p in parts})  # fmt: skip

    # --- apply -----------------------------------------------------------------------------------

    @store_guarded
    async def apply(
        self,
        *,
        text: str | None = None,
        data: dict[str, Any] | None = None,
        edit: Callable[[dict[str, Any]], Any] | None = None,
        yaml_text: str | None = None,
        base_dir: Path | None = None,
        author: str | None = None,
        origin: Origin | None = None,
        base_revision: int | None = None,
        message: str | None = None,
        kind: str = "apply",
        dry_run: bool = False,
        action: str = "config.apply",
        target: str = "config",
        secrets: Mapping[str, str] | None = None,
        secrets_source: str = "the running configuration",
        consume_data: bool = False,
    ) -> ChangeResult:
        """Apply a whole configuration (YAML `text`, plain `data`, or an `edit` of the running one's data, made
        under the gate) as a new revision. With `base_revision`, refused when another change landed since.
        `consume_data`: the caller hands `data` over, and it is emptied once validated (a whole configuration's
        data is megabytes, and the change then holds the old and the new model too: the controller's peak).

        A secret written as the placeholder keeps the stored one: the running configuration's, or those of
        `secrets` (a rollback: the revision's own); a placeholder with none stored is a problem."""
        origin = origin or Origin(author or default_author())
        if not dry_run and (refusal := self.guard(kind)):
            return await self._record_audit(origin, action, target, ChangeResult(Outcome.REFUSED, refusal))
        clock = _Clock()
        base_dir = Path(base_dir) if base_dir else None
        loaded = None
        if edit is None:
            loaded = await self._load(text, data, base_dir or self.running.base_dir)
            if consume_data and data is not None:
                data.clear()  # the model holds what counts now (the caller gave the data up)
            clock.lap("validate")
            if not loaded.ok or loaded.config is None:
                return await self._record_audit(origin, action, target, _invalid(loaded.problems, clock))
        async with self.gate:
            current = await asyncio.to_thread(self.store.current_id)
            if conflict := _conflict(base_revision, current):
                return await self._record_audit(origin, action, target, conflict)
            base_dir = base_dir or self.running.base_dir
            if edit is not None:
                edited = json.loads(self.running.config.model_dump_json())
                try:
                    edit(edited)
                except EditError as exc:
                    return await self._record_audit(
                        origin, action, target, ChangeResult(exc.outcome, exc.message, extra=exc.extra)
                    )
                loaded = await asyncio.to_thread(validate_data, edited, base_dir, self.reserved, self._validated)
                clock.lap("validate")
                if not loaded.ok or loaded.config is None:
                    return await self._record_audit(origin, action, target, _invalid(loaded.problems, clock))
            assert loaded is not None and loaded.config is not None
            old = self.running.config
            new, unresolved = resolve(loaded.config, stored_form(old) if secrets is None else secrets, secrets_source)
            if unresolved:
                return await self._record_audit(origin, action, target, _invalid(unresolved, clock))
            if reason := restart_needed(old.ha, new.ha):
                result = ChangeResult(Outcome.REFUSED, reason, parent=current, timings=clock.done())
            elif problem := _host_only(origin, old, new):
                result = _invalid([problem], clock)
            else:
                stored = yaml_text if yaml_text is not None else (text if text is not None else config_yaml(new))
                result = await self._transact(old, new, stored, base_dir, origin, message or "", kind, dry_run, clock)
        result.warnings = [str(p) for p in loaded.problems if p.severity == "warning"] + result.warnings
        del loaded
        self._release_later()
        return await self._record_audit(origin, action, target, result)

    async def _load(self, text: str | None, data: dict[str, Any] | None, base_dir: Path):
        if text is not None:
            return await asyncio.to_thread(load_text, text, base_dir, self.reserved, self._validated)
        return await asyncio.to_thread(validate_data, data, base_dir, self.reserved, self._validated)

    def _release_later(self) -> None:
        """release_memory in a thread, after the answer (it takes tens of milliseconds on large models)."""
        try:
            asyncio.get_running_loop().run_in_executor(None, release_memory)
        except RuntimeError:
            release_memory()

    # --- runtime control of real servers -----------------------------------------------------------

    @store_guarded
    async def set_real_server(
        self,
        service: str,
        real_server: str,
        *,
        state: RealServerState | None = None,
        weight: int | None = None,
        every_service: bool = False,
        author: str | None = None,
        origin: Origin | None = None,
        message: str | None = None,
        base_revision: int | None = None,
        action: str | None = None,
    ) -> ChangeResult:
        """drain / halt / online (`state`) or `weight` of one real server (of every service it serves, with
        `every_service`): a revision like any other, carried out by runtime operations and element updates."""
        origin = origin or Origin(author or default_author())
        what = state.value if state is not None else f"weight {weight}"
        action = action or (f"real-server.{state.value}" if state is not None else "real-server.weight")
        target = f"{service}/{real_server}"
        if refusal := self.guard("server"):
            return await self._record_audit(origin, action, target, ChangeResult(Outcome.REFUSED, refusal))
        clock = _Clock()
        async with self.gate:
            current = await asyncio.to_thread(self.store.current_id)
            if conflict := _conflict(base_revision, current):
                return await self._record_audit(origin, action, target, conflict)
            old = self.running.config
            vs = old.service(service)
            if vs is None:
                return await self._record_audit(origin, action, target, ChangeResult(
                    Outcome.NOT_FOUND, f"there is no virtual service {service}"))  # fmt: skip
            found = next((rs for rs in vs.real_servers if rs.name == real_server), None)
            if found is None:
                return await self._record_audit(origin, action, target, ChangeResult(
                    Outcome.NOT_FOUND, f"virtual service {service} has no real server {real_server}"))  # fmt: skip
            targets = [(vs, found)]
            if every_service:
                targets = [(other, rs) for other in old.virtual_services for rs in other.real_servers
                           if rs.address == found.address and rs.port == found.port]  # fmt: skip
            updates: dict[tuple[str, str], dict[str, Any]] = {}
            for owner, rs in targets:
                update: dict[str, Any] = {}
                if state is not None and rs.state is not state:
                    update["state"] = state
                if weight is not None and rs.weight != weight:
                    update["weight"] = weight
                if update:
                    updates[(owner.name, rs.name)] = update
            new = with_real_servers(old, updates)
            if not message:
                message = f"{what} {service}/{real_server}" + (" on every service it serves" if every_service else "")
            # no YAML for a runtime change (it came from no text): its JSON is YAML too, and far quicker to make
            result = await self._transact(old, new, "", self.running.base_dir, origin, message, "server", False, clock,
                                          unchanged_message=f"{service}/{real_server} is already {what}: nothing to do")  # fmt: skip
        # no release_memory here: a runtime change makes little garbage, and a full collection on a large model
        # would hold the GIL while the next change runs (the background write of haproxy.cfg releases memory)
        return await self._record_audit(origin, action, target, result)

    # --- rollback and SIGHUP -----------------------------------------------------------------------

    @store_guarded
    async def rollback(
        self, rev_id: int, *, author: str | None = None, origin: Origin | None = None, message: str | None = None,
        dry_run: bool = False, base_revision: int | None = None,
    ) -> ChangeResult:  # fmt: skip
        origin = origin or Origin(author or default_author())
        rev = await asyncio.to_thread(self.store.get, rev_id)
        if rev is None:  # never was, or pruned (the store says which, and what it keeps)
            return ChangeResult(Outcome.NOT_FOUND, await asyncio.to_thread(self.store.missing, rev_id))
        note = f"rollback to revision {rev_id}" + (f": {message}" if message else "")
        try:
            secrets = await asyncio.to_thread(self.stored_secrets, rev_id)  # the secrets that revision ran with
        except StoreError as exc:
            return ChangeResult(Outcome.REFUSED, f"the secrets of revision {rev_id} cannot be read ({exc}): nothing was changed")
        return await self.apply(
            data=rev.config_data, yaml_text=rev.config_yaml or None, base_dir=Path(rev.base_dir) if rev.base_dir else None,
            origin=origin, message=note, kind="rollback", dry_run=dry_run, base_revision=base_revision,
            action="revision.rollback", target=f"revision {rev_id}", secrets=secrets,
            secrets_source=f"revision {rev_id}'s stored secrets",
        )  # fmt: skip

    async def apply_file(self) -> ChangeResult:
        """SIGHUP: read the configuration file again and apply it as a revision."""
        path = self.running.config_file
        text = await asyncio.to_thread(read_config_text, path)  # regular, bounded (model/files.py)
        if not isinstance(text, str):
            log.error("cannot read %s: %s; nothing was changed", path, text.message)
            return ChangeResult(Outcome.INVALID, f"cannot read {path}: {text.message}")
        result = await self.apply(text=text, base_dir=path.parent, origin=Origin(default_author(), "signal"),
                                  message=f"{path} read again (SIGHUP)", kind="file")  # fmt: skip
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

    # --- certificates ------------------------------------------------------------------------------

    async def swap_certificate(self, path: Path, bundle: bytes, loaded_as: list[str], origin: Origin, action: str,
                               target: str) -> ChangeResult:  # fmt: skip
        """Store a certificate file and hot-swap it in HAProxy wherever HAProxy loaded it (no reload): one
        transaction, so a refusal puts the previous file and certificates back."""
        haproxy = self.certificates
        if haproxy is None:
            return ChangeResult(Outcome.REFUSED, "no engine of this appliance serves certificates")
        async with self.gate:
            prepared = haproxy.plan_certificate(path, bundle, loaded_as)
            record = await runner.run([(haproxy, prepared)], checkpoint=runner.no_checkpoint)
        if not record.applied:
            result = ChangeResult(Outcome.REFUSED, f"{record.summary}; the previous certificate keeps serving",
                                  messages=list(record.messages))  # fmt: skip
        else:
            result = ChangeResult(Outcome.APPLIED, f"certificate {target} stored", engines={"haproxy": prepared.steps})
        return await self._record_audit(origin, action, target, result)


async def _check(parts: list[tuple[Engine, Prepared]]) -> None:
    """Every engine's checker on its artefact (EngineError when one refuses), for a cluster node before it writes the
    change to etcd. The checked files are discarded: the transaction checks again, on files of its own."""
    try:
        for engine, prepared in parts:
            await engine.check(prepared)
    finally:
        for engine, prepared in parts:
            engine.discard(prepared)


def _record_once(parts: list[tuple[Engine, Prepared]], new: Config, stored_text: str) -> bool:
    """Whether a change needs no `pending` revision before the engines: no engine leaves an artefact on disk
    that a start could settle it by (no digest: runtime operations only), no configuration file is written,
    and it has no secrets to store apart first (their store is another file)."""
    return bool(parts) and not stored_text and not any(p.digest for _, p in parts) and not has_secrets(new)


def _conflict(base_revision: int | None, current: int | None) -> ChangeResult | None:
    """The answer to a change based on a revision that is no longer the current one (transaction.stale), or None."""
    if reason := stale(base_revision, current):
        return ChangeResult(Outcome.CONFLICT, reason, parent=current,
                            extra={"current_revision": current, "base_revision": base_revision})  # fmt: skip
    return None


def _host_only(origin: Origin, old: Config, new: Config) -> Problem | None:
    """A change of settings.files through a door other than the host's (HOST_DOORS), or None."""
    if origin.via in HOST_DOORS or new.settings.files == old.settings.files:
        return None
    return Problem(
        "settings.files.allowed_directories",
        f"is changed only on the appliance's host (the configuration file, or pacslb apply), not through the "
        f"management API or the WebUI: it says which files HAProxy and the checks may read and run as root; keep "
        f"allowed_directories: [{', '.join(old.settings.files.allowed_directories)}] as it is",
    )


def _invalid(problems, clock: _Clock) -> ChangeResult:
    errors = [p for p in problems if p.severity == "error"]
    return ChangeResult(
        Outcome.INVALID,
        f"the configuration has {len(errors)} problem{'s' if len(errors) != 1 else ''}: nothing was changed",
        problems=problems,
        timings=clock.done(),
    )
