"""engines/rendered_daemon.py: the commit and undo decisions of an engine that runs a daemon on rendered files,
with a fake daemon (PIDs in memory, its files in a temp dir): what runs, which files and which applied digest
are in place after each step, and what it asked of its daemon."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from pacslb.engines.contract import EngineError, Prepared
from pacslb.engines.rendered_daemon import DaemonWork, RenderedDaemonEngine
from pacslb.model.config import Config


class FakeDaemonError(Exception):
    pass


def fake_files(folder: Path) -> SimpleNamespace:
    """What the transaction needs of an engine's files (DaemonFiles), and the one file of the fake engine."""
    return SimpleNamespace(dir=folder, config=folder / "fake.conf", applied=folder / "applied.sha256")


@dataclass
class FakeWork(DaemonWork):
    text: str | None = None


class FakeProcess:
    """The engine's process module (what the base's daemon hooks call): the daemon is a set of live PIDs and a log
    of what was asked of it."""

    def __init__(self) -> None:
        self.live: set[int] = set()
        self.next_pid = 100
        self.calls: list[str] = []
        self.fail: set[str] = set()  # "reload", "start": the daemon refuses
        self.running_here: int | None = None  # what adopt finds

    def start(self, files: SimpleNamespace, binary: str) -> int:
        assert binary == BINARY and files.config.exists(), "started on the files in place"
        if "start" in self.fail:
            raise FakeDaemonError("the daemon did not start")
        self.next_pid += 1
        self.live.add(self.next_pid)
        self.calls.append(f"start {self.next_pid}")
        return self.next_pid

    def stop(self, pid: int) -> None:
        self.calls.append(f"stop {pid}" if pid in self.live else f"forget {pid}")
        self.live.discard(pid)

    def alive(self, pid: int) -> bool:
        return pid in self.live

    def adopt(self, files: SimpleNamespace) -> int | None:
        return self.running_here


BINARY = "/usr/sbin/fakedaemon"


class FakeEngine(RenderedDaemonEngine):
    """One file, fake.conf, and a fake daemon (FakeProcess); the transaction and the daemon hooks are the base's."""

    name = "fake"
    label = "fakedaemon"
    reload_action = "reload"
    failures = (FakeDaemonError,)
    log = logging.getLogger("test.rendered_daemon")

    def __init__(self, folder: Path, undo_reloads_only_after_reload: bool = False) -> None:
        super().__init__(asyncio.Lock())
        self.files = fake_files(folder)
        self.undo_reloads_only_after_reload = undo_reloads_only_after_reload  # type: ignore[misc]
        self.binary = BINARY
        self.process = FakeProcess()  # type: ignore[misc]  # one per engine: its own daemon
        self.live, self.calls, self.fail = self.process.live, self.process.calls, self.process.fail

    @property
    def running_here(self) -> int | None:
        return self.process.running_here

    @running_here.setter
    def running_here(self, pid: int | None) -> None:
        self.process.running_here = pid

    def wanted(self, config: Config) -> bool:
        return bool(config.services)

    def _read_files(self) -> str | None:
        return self.files.config.read_text() if self.files.config.exists() else None

    def _restorable(self, previous: str | None) -> bool:
        return previous is not None

    def _write_new(self, work: DaemonWork) -> None:
        assert isinstance(work, FakeWork) and work.text is not None
        self._write_back(work.text)

    def _write_back(self, previous: str) -> None:
        self.files.dir.mkdir(parents=True, exist_ok=True)
        self.files.config.write_text(previous)

    def _reload(self) -> None:
        self.calls.append(f"reload {self.pid}")
        if "reload" in self.fail:
            raise FakeDaemonError("the daemon refused the reload")

    def _start(self, config: Config) -> None:
        self._write_back("started\n")
        self._serve(self.running_here, True, "d0")

    # what a test does to it

    def run_on(self, text: str, digest: str) -> None:
        """The daemon runs `text` (as a start left it)."""
        self._write_back(text)
        self.files.applied.write_text(digest + "\n")
        self.pid = self._start_daemon()
        self.calls.clear()


def prepared(action: str, text: str | None = None, digest: str | None = None, checked: bool = True) -> Prepared:
    wants = SimpleNamespace(services=[] if action == "stop" else ["one"])  # the configuration the change makes run
    return Prepared("fake", True, digest, [], data=FakeWork(action, digest, checked=checked, config=wants, text=text))


@pytest.fixture
def minimal_config() -> Config:
    return SimpleNamespace(services=["one"])  # type: ignore[return-value]  # the fake engine reads nothing else


def state(engine: FakeEngine) -> tuple[str | None, str | None, bool]:
    """The file in place, the applied digest, and whether the daemon runs."""
    return engine._read_files(), engine.applied_digest(), engine.is_running()


async def test_a_reload_commit_reloads_in_place_and_its_undo_puts_the_files_and_digest_back(tmp_path):
    engine = FakeEngine(tmp_path)
    engine.run_on("old\n", "d1")
    pid = engine.pid
    change = prepared("reload", "new\n", "d2")
    await engine.commit(change)
    assert state(engine) == ("new\n", "d2", True) and engine.pid == pid and engine.reloads == 1
    await engine.undo(change)
    assert state(engine) == ("old\n", "d1", True) and engine.pid == pid
    assert engine.calls == [f"reload {pid}", f"reload {pid}"] and engine.reloads == 1  # an undo is not counted


@pytest.mark.parametrize("only_after_reload, expected", [(False, "reload"), (True, "restart")])
async def test_undo_of_a_restart_reloads_or_restarts_as_the_engine_says(tmp_path, only_after_reload, expected):
    engine = FakeEngine(tmp_path, undo_reloads_only_after_reload=only_after_reload)
    engine.run_on("old\n", "d1")
    first = engine.pid
    change = prepared("restart", "new\n", "d2")
    await engine.commit(change)
    second = engine.pid
    assert second != first and engine.calls == [f"stop {first}", f"start {second}"] and state(engine) == ("new\n", "d2", True)
    engine.calls.clear()
    await engine.undo(change)
    assert state(engine) == ("old\n", "d1", True)
    if expected == "reload":
        assert engine.calls == [f"reload {second}"] and engine.pid == second
    else:
        assert engine.calls == [f"stop {second}", f"start {engine.pid}"] and engine.pid != second


async def test_a_start_commit_is_undone_by_a_stop_and_no_applied_digest(tmp_path):
    engine = FakeEngine(tmp_path)
    change = prepared("start", "new\n", "d2")
    await engine.commit(change)
    assert state(engine) == ("new\n", "d2", True) and engine.should_run()
    await engine.undo(change)
    _, digest, running = state(engine)
    assert digest is None and not running and engine.pid is None and not engine.should_run()


async def test_a_stop_commit_stops_and_forgets_the_digest_and_its_undo_starts_on_the_previous_files(tmp_path):
    engine = FakeEngine(tmp_path)
    engine.run_on("old\n", "d1")
    first = engine.pid
    change = prepared("stop", checked=False)  # nothing to check: no new files
    await engine.commit(change)
    assert state(engine) == ("old\n", None, False) and engine.pid is None and engine.calls == [f"stop {first}"]
    await engine.undo(change)
    assert state(engine) == ("old\n", "d1", True) and engine.pid != first


async def test_a_commit_the_daemon_refuses_is_an_engine_error_that_keeps_the_old_digest_and_undo_restores(tmp_path):
    engine = FakeEngine(tmp_path)
    engine.run_on("old\n", "d1")
    engine.fail.add("reload")
    change = prepared("reload", "new\n", "d2")
    with pytest.raises(EngineError, match="fakedaemon could not reload") as caught:
        await engine.commit(change)
    assert caught.value.messages == ["the daemon refused the reload"]
    assert state(engine) == ("new\n", "d1", True)  # the files went in, the digest did not move
    engine.fail.clear()
    await engine.undo(change)
    assert state(engine) == ("old\n", "d1", True)


async def test_an_undo_the_daemon_refuses_is_an_engine_error(tmp_path):
    engine = FakeEngine(tmp_path)
    engine.run_on("old\n", "d1")
    change = prepared("restart", "new\n", "d2")
    await engine.commit(change)
    engine.live.clear()  # the new daemon died
    engine.fail.add("start")
    with pytest.raises(EngineError, match="fakedaemon could not be put back on its previous files"):
        await engine.undo(change)
    assert engine._read_files() == "old\n" and engine.applied_digest() == "d1"


async def test_undo_with_a_dead_daemon_starts_one_on_the_previous_files(tmp_path):
    engine = FakeEngine(tmp_path)
    engine.run_on("old\n", "d1")
    change = prepared("reload", "new\n", "d2")
    await engine.commit(change)
    dead = engine.pid
    engine.live.clear()
    await engine.undo(change)
    assert engine.calls[-2:] == [f"forget {dead}", f"start {engine.pid}"] and state(engine) == ("old\n", "d1", True)


async def test_nothing_to_put_back_when_no_file_was_there_even_if_a_daemon_ran(tmp_path):
    engine = FakeEngine(tmp_path)
    engine.run_on("old\n", "d1")
    engine.files.config.unlink()  # it runs, but its file is gone
    change = prepared("reload", "new\n", "d2")
    await engine.commit(change)
    await engine.undo(change)
    assert engine.pid is None and engine.applied_digest() is None and not engine.live


async def test_commit_before_check_is_refused_and_an_undo_of_nothing_swapped_does_nothing(tmp_path):
    engine = FakeEngine(tmp_path)
    engine.run_on("old\n", "d1")
    change = prepared("reload", "new\n", "d2", checked=False)
    with pytest.raises(AssertionError, match="check before commit"):
        await engine.commit(change)
    untouched = prepared("reload", "new\n", "d2")
    await engine.undo(untouched)
    assert engine.calls == [] and state(engine)[1] == "d1"


async def test_start_adopts_what_runs_or_starts_and_records_the_digest(tmp_path, minimal_config):
    engine = FakeEngine(tmp_path)
    engine.live.add(7)
    engine.running_here = 7
    await engine.start(minimal_config, tmp_path)
    assert engine.pid == 7 and engine.calls == ["reload 7"] and engine.applied_digest() == "d0"
    assert engine.orphans() == []
    other = FakeEngine(tmp_path / "other")
    other.running_here = None
    await other.start(minimal_config, tmp_path)
    assert other.calls == [f"start {other.pid}"] and other.applied_digest() == "d0"
    other.running_here = 55
    assert other.orphans() == ["fakedaemon PID 55"]


async def test_start_of_a_configuration_that_does_not_want_it_does_nothing(tmp_path, minimal_config):
    engine = FakeEngine(tmp_path)
    empty = SimpleNamespace(services=[])
    await engine.start(empty, tmp_path)
    assert engine.calls == [] and engine.pid is None and not engine.should_run() and engine.config is empty


async def test_a_start_the_daemon_refuses_is_an_engine_error(tmp_path, minimal_config):
    engine = FakeEngine(tmp_path)
    engine.fail.add("start")
    with pytest.raises(EngineError, match="fakedaemon could not be started"):
        await engine.start(minimal_config, tmp_path)
