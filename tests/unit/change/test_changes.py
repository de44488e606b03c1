"""The change front door over in-memory fake engines: the whole transaction, one test per failure path.

The fakes keep what they "run" in memory and fail where a test tells them to; the real engines are
exercised by tests/e2e (HAProxy, nftables) and tests/netns (keepalived).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from pacslb.change.result import Outcome
from pacslb.change.service import Changes, Origin, Running
from pacslb.engines.contract import EngineError, EngineState, Prepared
from pacslb.model import Config, load_text
from pacslb.model.config import RealServerState
from pacslb.paths import StatePaths

TEXT = """version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8080}]
    real_servers:
      - {name: rs1, address: 127.0.0.2, port: 80}
      - {name: rs2, address: 127.0.0.3, port: 80}
"""


def artefact(engine: str, config: Config) -> str:
    return f"{engine}:{hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]}"


class FakeEngine:
    """An engine of the contract that runs a string. `fail` names the steps that raise EngineError."""

    def __init__(self, name: str, config: Config, calls: list, fail: set[str] | None = None) -> None:
        self.name = name
        self.runs = artefact(name, config)
        self.calls = calls
        self.fail = fail or set()
        self.unchanged = False  # plan: nothing to do for this engine

    def wanted(self, config: Config) -> bool:
        return True

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        text = artefact(self.name, new)
        changed = not self.unchanged and text != self.runs
        return Prepared(self.name, changed, hashlib.sha256(text.encode()).hexdigest(), [f"{self.name}: {text}"],
                        data={"new": text, "old": self.runs})  # fmt: skip

    async def _step(self, step: str) -> None:
        self.calls.append((step, self.name))
        if step in self.fail:
            raise EngineError(f"{self.name} {step} failed", [f"{self.name} says no"])

    async def check(self, prepared: Prepared) -> None:
        await self._step("check")

    async def commit(self, prepared: Prepared) -> None:
        self.runs = prepared.data["new"]  # half done before it fails: undo must set it back
        await self._step("commit")

    async def undo(self, prepared: Prepared) -> None:
        await self._step("undo")
        self.runs = prepared.data["old"]

    def discard(self, prepared: Prepared) -> None:
        self.calls.append(("discard", self.name))

    def applied_digest(self) -> str | None:
        return hashlib.sha256(self.runs.encode()).hexdigest()

    def observe(self) -> EngineState:
        return EngineState(self.name, True)


@pytest.fixture
def rig(tmp_path):
    config = load_text(TEXT).config
    calls: list = []
    engines = [FakeEngine(n, config, calls) for n in ("nftables", "haproxy", "keepalived")]
    notified: list[Config] = []
    audited: list[tuple] = []
    stages: list[str] = []

    async def notify(c: Config) -> None:
        notified.append(c)

    async def checkpoint(stage: str) -> None:
        stages.append(stage)

    changes = Changes(StatePaths(tmp_path / "state"), Running(config, tmp_path, tmp_path / "pacslb.yaml"), engines,
                      asyncio.Lock(), notify=notify, audit=lambda *a: audited.append(a), checkpoint=checkpoint)  # fmt: skip
    first = changes.store.add(config.model_dump_json(), TEXT, author="setup", message="first", kind="file", parent=None)
    changes.store.mark_applied(first.id)
    return changes, engines, calls, notified, audited, stages, config


def steps(calls: list) -> list:
    return [c for c in calls if c[0] != "discard"]


async def test_an_apply_checks_everything_then_commits_in_order_then_records(rig):
    changes, engines, calls, notified, audited, stages, old = rig
    result = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"), origin=Origin("ann", "api"))
    assert result.outcome is Outcome.APPLIED, result.message
    assert steps(calls) == [("check", "nftables"), ("check", "haproxy"), ("check", "keepalived"),
                            ("commit", "nftables"), ("commit", "haproxy"), ("commit", "keepalived")]  # fmt: skip
    assert stages == ["before-engine", "engine-confirmed"]
    new = changes.config
    assert all(e.runs == artefact(e.name, new) for e in engines)
    rev = changes.store.current()
    assert rev.id == result.revision.id == 2 and rev.author == "ann"
    assert json.loads(rev.engine_digest) == {e.name: e.applied_digest() for e in engines}
    assert notified == [new]
    ((origin, action, target, answered),) = audited
    assert origin.via == "api" and action == "config.apply" and answered is result


async def test_a_check_that_fails_changes_nothing_and_records_the_failure(rig):
    changes, engines, calls, notified, audited, stages, old = rig
    engines[1].fail.add("check")
    result = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"))
    assert result.outcome is Outcome.REFUSED
    assert "haproxy check failed; the previous configuration keeps serving" == result.message
    assert "haproxy says no" in result.messages
    assert not [c for c in calls if c[0] in ("commit", "undo")]
    assert stages == [] and notified == []
    assert all(e.runs == artefact(e.name, old) for e in engines)
    assert changes.config is old and changes.store.current_id() == 1
    assert changes.store.get(2).status.value == "failed"
    assert {("discard", e.name) for e in engines} <= set(calls)  # temporary artefacts are dropped


async def test_keepalived_failing_leaves_the_previous_revision_applied_everywhere(rig):
    changes, engines, calls, notified, audited, stages, old = rig
    engines[2].fail.add("commit")
    result = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"))
    assert result.outcome is Outcome.REFUSED and result.message.startswith("keepalived commit failed")
    assert steps(calls)[-3:] == [("undo", "keepalived"), ("undo", "haproxy"), ("undo", "nftables")]
    assert all(e.runs == artefact(e.name, old) for e in engines)  # every engine runs the previous configuration
    assert changes.config is old and changes.store.current_id() == 1
    failed = changes.store.get(2)
    assert failed.status.value == "failed" and "keepalived says no" in failed.error
    assert notified == [] and stages == ["before-engine"]


async def test_engine_2_failing_undoes_engine_1_and_never_touches_engine_3(rig):
    changes, engines, calls, *_, old = rig
    engines[1].fail.add("commit")
    result = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"))
    assert result.outcome is Outcome.REFUSED
    assert ("commit", "keepalived") not in calls and ("undo", "keepalived") not in calls
    assert steps(calls)[-2:] == [("undo", "haproxy"), ("undo", "nftables")]
    assert all(e.runs == artefact(e.name, old) for e in engines)


async def test_an_undo_that_fails_is_said_and_the_revision_stays_failed(rig):
    changes, engines, calls, *_, old = rig
    engines[2].fail.add("commit")
    engines[0].fail.add("undo")
    result = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"))
    assert result.outcome is Outcome.REFUSED
    assert "nftables could not be set back and may run the new configuration" in result.message
    assert engines[0].runs != artefact("nftables", old)  # what the failed undo left
    assert engines[1].runs == artefact("haproxy", old) and engines[2].runs == artefact("keepalived", old)
    assert changes.store.current_id() == 1


async def test_a_stale_base_revision_is_refused_before_anything(rig):
    changes, engines, calls, notified, audited, stages, old = rig
    result = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"), base_revision=7)
    assert result.outcome is Outcome.CONFLICT and result.http_status == 409
    assert result.as_dict()["current_revision"] == 1 and result.as_dict()["base_revision"] == 7
    assert calls == [] and changes.store.current_id() == 1 and len(changes.store.list()) == 1
    assert audited[0][3].outcome is Outcome.CONFLICT  # refusals are audited too


class FakePrecondition:
    """What the health service is to a change: something taken before any engine commits (its agent port)."""

    def __init__(self, calls: list, refusal: str | None = None) -> None:
        self.calls = calls
        self.refusal = refusal

    async def prepare(self, old: Config, new: Config) -> str | None:
        self.calls.append(("prepare", "agent port"))
        return self.refusal

    async def release(self, running: Config) -> None:
        self.calls.append(("release", running))


async def test_a_refused_precondition_is_refused_before_any_engine_and_records_nothing(rig):
    changes, engines, calls, notified, audited, stages, old = rig
    why = "settings.health.agent_port: cannot listen on 127.0.0.1:4334 (Address already in use): nothing was changed"
    changes.preconditions = [FakePrecondition(calls, why)]
    result = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"), origin=Origin("ann", "api"))
    assert result.outcome is Outcome.REFUSED and result.message == why and result.http_status == 409
    assert steps(calls) == [("prepare", "agent port"), ("release", old)]  # no engine checked, none committed
    assert changes.config is old and changes.store.current_id() == 1 and len(changes.store.list()) == 1
    assert notified == [] and stages == [] and all(e.runs == artefact(e.name, old) for e in engines)
    assert audited[-1][3].outcome is Outcome.REFUSED


async def test_a_precondition_is_taken_before_the_engines_and_released_whatever_the_engines_said(rig):
    changes, engines, calls, notified, *_, old = rig
    changes.preconditions = [FakePrecondition(calls)]
    engines[1].fail.add("commit")
    refused = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"))
    assert refused.outcome is Outcome.REFUSED
    assert steps(calls)[0] == ("prepare", "agent port") and steps(calls)[-1] == ("release", old)
    engines[1].fail.clear()
    calls.clear()
    applied = await changes.apply(text=TEXT.replace("port: 8080", "port: 8082"))
    assert applied.outcome is Outcome.APPLIED
    assert steps(calls)[0] == ("prepare", "agent port") and steps(calls)[1] == ("check", "nftables")
    assert steps(calls)[-1] == ("release", changes.config) and notified == [changes.config]


async def test_an_engine_with_nothing_to_do_stays_out(rig):
    changes, engines, calls, *_ = rig
    engines[2].unchanged = True
    result = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"))
    assert result.outcome is Outcome.APPLIED
    assert not [c for c in calls if c[1] == "keepalived" and c[0] != "discard"]
    assert set(json.loads(changes.store.current().engine_digest)) == {"nftables", "haproxy"}


async def test_a_real_server_drain_is_a_transaction_too(rig):
    changes, engines, calls, *_ = rig
    result = await changes.set_real_server("web", "rs1", state=RealServerState.DRAIN, origin=Origin("op", "web"))
    assert result.outcome is Outcome.APPLIED and result.message.endswith("runtime operations, no reload")
    assert changes.config.service("web").real_servers[0].state is RealServerState.DRAIN
    assert ("commit", "haproxy") in calls
    again = await changes.set_real_server("web", "rs1", state=RealServerState.DRAIN)
    assert again.outcome is Outcome.UNCHANGED


async def test_killed_between_commit_and_record_is_settled_at_the_next_start(rig, tmp_path):
    """The controller dies at `engine-confirmed`: every engine runs the revision, the store says pending."""
    changes, engines, calls, notified, audited, stages, old = rig

    async def killed(stage: str) -> None:
        if stage == "engine-confirmed":
            raise asyncio.CancelledError  # what the task sees when the process goes away

    changes.checkpoint = killed
    with pytest.raises(asyncio.CancelledError):
        await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"))
    pending = changes.store.get(2)
    assert pending.status.value == "pending"
    restarted = Changes(changes.paths, Running(old, tmp_path, tmp_path / "pacslb.yaml"), engines, asyncio.Lock())
    restarted.startup(TEXT, engines_running=True)
    assert restarted.store.get(2).status.value == "applied"


async def test_killed_before_the_commits_is_failed_at_the_next_start(rig, tmp_path):
    changes, engines, calls, notified, audited, stages, old = rig

    async def killed(stage: str) -> None:
        if stage == "before-engine":
            raise asyncio.CancelledError

    changes.checkpoint = killed
    with pytest.raises(asyncio.CancelledError):
        await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"))
    restarted = Changes(changes.paths, Running(old, tmp_path, tmp_path / "pacslb.yaml"), engines, asyncio.Lock())
    restarted.startup(TEXT, engines_running=True)
    settled = restarted.store.get(2)
    assert settled.status.value == "failed" and "interrupted" in settled.error


async def test_an_invalid_configuration_reaches_no_engine(rig):
    changes, engines, calls, notified, audited, *_ = rig
    result = await changes.apply(text=TEXT.replace("port: 8080", "port: 80800"))
    assert result.outcome is Outcome.INVALID and result.problems
    assert calls == [] and len(changes.store.list()) == 1


@pytest.mark.parametrize("door", ["apply", "drain", "rollback"])
async def test_a_state_directory_that_cannot_be_written_refuses_the_change_and_touches_no_engine(rig, monkeypatch, door):
    """Disk full or read-only (bench/faults.py): SQLite raises, the change is refused with what to do, not a 500."""
    changes, engines, calls, notified, audited, stages, old = rig
    from pacslb.store import StoreError

    def broken(*args, **kwargs):
        raise StoreError(f"{changes.paths.revisions_db}: disk I/O error")

    monkeypatch.setattr(type(changes.store), "current_id", broken)
    monkeypatch.setattr(type(changes.store), "get", broken)
    if door == "apply":
        result = await changes.apply(text=TEXT.replace("port: 8080", "port: 8081"))
    elif door == "drain":
        result = await changes.set_real_server("web", "rs1", state=RealServerState.DRAIN)
    else:
        result = await changes.rollback(1)
    assert result.outcome is Outcome.REFUSED and result.http_status == 409
    assert "cannot be read or written" in result.message and "disk I/O error" in result.message
    assert "nothing was changed" in result.message and "free space on it or make it writable" in result.message
    assert steps(calls) == [] and notified == []
    assert all(e.runs == artefact(e.name, old) for e in engines) and changes.config is old
