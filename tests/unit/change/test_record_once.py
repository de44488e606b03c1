"""A change that leaves nothing on disk (runtime operations only: no engine digest) is recorded once, applied,
after the engines confirmed it, as a delta of the revision written before it; one that leaves a file keeps
the `pending` record first. Fake engines (tests/unit/change/test_changes.py has the whole transaction)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from pacslb.change.result import Outcome
from pacslb.change.service import Changes, Origin, Running
from pacslb.engines.contract import EngineError, EngineState, Prepared
from pacslb.model import Config, validate_data
from pacslb.model.config import RealServerState
from pacslb.paths import StatePaths
from pacslb.store import RevisionStatus


class RuntimeEngine:
    """Runs a model in memory; a change of states and weights only has no digest (runtime operations)."""

    name = "haproxy"

    def __init__(self, config: Config) -> None:
        self.runs = config
        self.fail_commit = False
        self.statuses: list[str] = []  # the current revision's status as each commit saw it

    def wanted(self, config: Config) -> bool:
        return True

    def plan(self, old: Config, new: Config, base_dir: Path) -> Prepared:
        def shape(c: Config) -> str:
            return c.model_copy(update={"virtual_services": [
                v.model_copy(update={"real_servers": [r.model_copy(update={"state": RealServerState.ONLINE, "weight": 1})
                                                      for r in v.real_servers]}) for v in c.virtual_services]}).model_dump_json()  # fmt: skip

        runtime_only = shape(old) == shape(new)
        return Prepared(self.name, old != new, "" if runtime_only else "file-digest", ["step"], data=new)

    async def check(self, prepared: Prepared) -> None:
        return None

    async def commit(self, prepared: Prepared) -> None:
        if self.fail_commit:
            raise EngineError("the runtime API refused it")
        self.runs = prepared.data

    async def undo(self, prepared: Prepared) -> None:
        return None

    def discard(self, prepared: Prepared) -> None:
        return None

    def applied_digest(self) -> str | None:
        return None

    def observe(self) -> EngineState:
        return EngineState(self.name, True)


@pytest.fixture
def rig(tmp_path):
    data = {"version": 1, "virtual_services": [
        {"name": f"svc{i}", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 30000 + i}],
         "real_servers": [{"name": f"rs{j}", "address": "127.0.0.2", "port": 10000 + j} for j in range(3)]}
        for i in range(12)]}  # fmt: skip
    config = validate_data(data).config
    engine = RuntimeEngine(config)
    changes = Changes(StatePaths(tmp_path / "state"), Running(config, tmp_path, tmp_path / "pacslb.yaml"), [engine],
                      asyncio.Lock())  # fmt: skip
    first = changes.store.add(config.model_dump_json(), "", author="setup", message="first", kind="file", parent=None)
    changes.store.mark_applied(first.id)
    return changes, engine


def stored(changes: Changes) -> dict[int, tuple[str, int | None]]:
    with sqlite3.connect(changes.store.path) as db:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, status, delta_base FROM revisions")}


async def test_a_runtime_change_is_recorded_once_applied_as_a_delta(rig):
    changes, engine = rig
    for n, state in enumerate([RealServerState.DRAIN, RealServerState.ONLINE, RealServerState.HALT]):
        result = await changes.set_real_server("svc3", "rs1", state=state, origin=Origin("op", "api"))
        assert result.outcome is Outcome.APPLIED and result.revision.id == n + 2, result.message
        assert changes.store.current().config_json == changes.config.model_dump_json() == engine.runs.model_dump_json()
    # the first after the start is whole (nothing dumped yet), the next ones deltas of the one before
    assert stored(changes) == {1: ("applied", None), 2: ("applied", None), 3: ("applied", 2), 4: ("applied", 3)}


async def test_a_refused_runtime_change_is_recorded_failed_and_the_next_one_still_reads_back(rig):
    changes, engine = rig
    await changes.set_real_server("svc0", "rs0", weight=5)
    engine.fail_commit = True
    result = await changes.set_real_server("svc0", "rs0", weight=6)
    assert result.outcome is Outcome.REFUSED and result.revision.status is RevisionStatus.FAILED
    engine.fail_commit = False
    result = await changes.set_real_server("svc0", "rs0", weight=7)
    assert result.outcome is Outcome.APPLIED
    assert stored(changes)[4] == ("applied", 3)  # a delta of the failed one: the last written
    assert changes.store.get(3).config_data["virtual_services"][0]["real_servers"][0]["weight"] == 6
    assert changes.store.current().config_json == changes.config.model_dump_json()


async def test_a_change_that_writes_a_file_is_still_recorded_pending_first(rig):
    changes, engine = rig
    seen: list[str] = []

    async def checkpoint(stage: str) -> None:
        if stage == "before-engine":
            seen.append(changes.store.get(2).status.value)

    changes.checkpoint = checkpoint
    new = changes.config.model_dump(mode="json")
    new["virtual_services"][0]["listen"][0]["port"] = 31999
    result = await changes.apply(data=new)
    assert result.outcome is Outcome.APPLIED and seen == ["pending"]


async def test_a_runtime_change_the_store_cannot_record_is_set_back_and_refused(rig, monkeypatch):
    """The state directory full at the commit: the engines run the change, then go back; nothing is changed."""
    from pacslb.store.db import StoreError

    changes, engine = rig
    undone: list[object] = []

    async def undo(prepared: Prepared) -> None:
        undone.append(prepared.data)
        engine.runs = before

    before = engine.runs
    engine.undo = undo  # type: ignore[method-assign]

    def full(*args, **kwargs):
        raise StoreError(f"{changes.store.path}: database or disk is full")

    monkeypatch.setattr(changes.store, "add_applied", full)
    result = await changes.set_real_server("svc1", "rs2", state=RealServerState.DRAIN, origin=Origin("op", "api"))
    assert result.outcome is Outcome.REFUSED, result.message
    assert "cannot be read or written" in result.message and "database or disk is full" in result.message
    assert "nothing was changed; free space on it or make it writable" in result.message
    assert len(undone) == 1 and engine.runs is before and changes.config is before  # set back, the model too
    assert stored(changes) == {1: ("applied", None)}  # no revision written
