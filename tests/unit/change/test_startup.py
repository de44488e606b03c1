"""The change front door's startup: what runs, and how revisions left pending by a killed controller are settled.

A stand-in engine that only reports HAProxy's applied digest: the engine steps are covered by
tests/unit/change/ (fake engines) and tests/e2e/test_revisions.py (the real ones).
"""

from __future__ import annotations

import asyncio

import pytest

from pacslb import files
from pacslb.change.service import Changes, Running, config_yaml, with_real_servers
from pacslb.model import load_text
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


class DigestEngine:
    """Only what startup asks of an engine: the digest of what it runs."""

    name = "haproxy"

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths

    def applied_digest(self) -> str | None:
        return (files.read_text(self.paths.haproxy_applied) or "").strip() or None


@pytest.fixture
def setup(tmp_path):
    running: list[int] = []
    config_file = tmp_path / "pacslb.yaml"
    config_file.write_text(TEXT)

    def start(text: str | None = None):
        if text is not None:
            config_file.write_text(text)
        paths = StatePaths(tmp_path / "state")
        config = load_text(config_file.read_text()).config
        changes = Changes(paths, Running(config, config_file.parent, config_file), [DigestEngine(paths)], asyncio.Lock())
        copy = changes.startup(config_file.read_text(), engines_running=bool(running))
        return changes, changes, copy

    return start, running


def test_first_start_records_the_file_then_reruns_the_current_revision(setup):
    start, _ = setup
    controller, manager, _ = start()
    (rev,) = manager.store.list()
    assert rev.kind == "file" and rev.status.value == "pending" and "first start" in rev.message
    manager.started(None)
    assert manager.store.current().id == rev.id

    # a change made at runtime (here: recorded directly), then a restart with the same file
    changed = with_real_servers(controller.config, {("web", "rs1"): {"state": RealServerState.DRAIN}})
    later = manager.store.add(changed.model_dump(mode="json"), "x", author="a", message="drain", kind="server", parent=rev.id)
    manager.store.mark_applied(later.id)
    controller, manager, copy = start()
    assert controller.config.service("web").real_servers[0].state is RealServerState.DRAIN
    assert copy == "x" and len(manager.store.list()) == 2


def test_an_edited_file_wins_as_a_new_revision(setup):
    start, _ = setup
    _, manager, _ = start()
    manager.started(None)
    controller, manager, _ = start(TEXT.replace("port: 8080", "port: 8081"))
    latest = manager.store.list()[0]
    assert latest.id == 2 and "changed since revision 1" in latest.message
    assert str(controller.config.virtual_services[0].listen[0].port) == "8081"
    manager.started(None)
    assert manager.store.current().id == 2


def test_the_same_model_in_a_new_file_adds_no_revision(setup):
    start, _ = setup
    _, manager, _ = start()
    manager.started(None)
    _, manager, _ = start(TEXT + "# a comment\n")
    manager.started(None)
    assert len(manager.store.list()) == 1


def test_pending_revisions_are_settled_by_what_haproxy_runs(setup):
    start, running = setup
    controller, manager, _ = start()
    manager.started(None)
    store = manager.store
    confirmed = store.add({"version": 1}, "", author="a", message="m", kind="apply", parent=1, engine_digest="abc")
    controller.paths.haproxy_dir.mkdir(parents=True, exist_ok=True)
    controller.paths.haproxy_applied.write_text("abc\n")
    running.append(4242)
    start()
    assert store.get(confirmed.id).applied

    interrupted = store.add({"version": 1}, "", author="a", message="m", kind="apply", parent=2, engine_digest="def")
    start()
    settled = store.get(interrupted.id)
    assert settled.status.value == "failed" and "interrupted" in settled.error

    running.clear()  # HAProxy does not run: nothing pending can be running
    orphan = store.add({"version": 1}, "", author="a", message="m", kind="apply", parent=2, engine_digest="abc")
    start()
    assert store.get(orphan.id).status.value == "failed"


def test_startup_failure_marks_the_revision_failed(setup):
    start, _ = setup
    _, manager, _ = start()
    manager.startup_failed("HAProxy refuses it")
    (rev,) = manager.store.list()
    assert rev.status.value == "failed" and rev.error == "HAProxy refuses it"
    assert manager.store.current() is None


def test_with_real_servers_shares_what_it_does_not_change():
    config = load_text(TEXT).config
    changed = with_real_servers(config, {("web", "rs2"): {"weight": 7}})
    assert changed.service("web").real_servers[1].weight == 7
    assert config.service("web").real_servers[1].weight == 100
    assert changed.service("web").real_servers[0] is config.service("web").real_servers[0]


def test_config_yaml_is_dump_yaml_faster():
    from pacslb.model import dump_yaml
    from pacslb.templates import TruePacsParams, render_true_pacs

    config = load_text(render_true_pacs(TruePacsParams())).config
    assert config_yaml(config) == dump_yaml(config)
    assert config_yaml(load_text(TEXT).config) == dump_yaml(load_text(TEXT).config)
