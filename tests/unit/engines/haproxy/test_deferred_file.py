"""A runtime change's haproxy.cfg: the server lines rewritten (patch.py) and written in the background (deferred.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pacslb.change.service import with_real_servers
from pacslb.engines.haproxy.deferred import DeferredFile
from pacslb.engines.haproxy.patch import patch_servers
from pacslb.engines.haproxy.render import render
from pacslb.model import load_file, load_text
from pacslb.model.config import RealServerState
from pacslb.templates.true_pacs import render_true_pacs

from .conftest import golden_cases

# --- patch_servers: the same bytes as a whole render ------------------------------------------------------


def _changes(config) -> list[dict]:
    """A drain of the first real server, a halt with a new weight of the last, an online of both, per carried service."""
    carried = [vs for vs in config.virtual_services if not vs.mode.is_layer4 and vs.real_servers]
    first, last = carried[0], carried[-1]
    return [
        {(first.name, first.real_servers[0].name): {"state": RealServerState.DRAIN}},
        {(last.name, last.real_servers[-1].name): {"state": RealServerState.HALT, "weight": 7}},
        {(vs.name, rs.name): {"weight": 3} for vs in carried for rs in vs.real_servers[:2]},
    ]


@pytest.mark.parametrize("case", golden_cases(), ids=[c.name for c in golden_cases()])
def test_patch_is_the_render_on_every_golden_case(case: Path, golden_env) -> None:
    loaded = load_file(case / "config.yaml")
    old = loaded.config
    if not any(not vs.mode.is_layer4 and vs.real_servers for vs in old.virtual_services):
        pytest.skip("no real server carried by HAProxy in this case")  # nothing to patch: not a silent pass
    text = render(old, golden_env)
    patched = 0
    for updates in _changes(old):
        new = with_real_servers(old, updates)
        got = patch_servers(text, old, new, golden_env)
        if got is not None:
            assert got == render(new, golden_env)
            patched += 1
    assert patched, "the patch declined every change: the caller would always render the whole file"


def test_patch_on_the_true_pacs_template_chained(golden_env) -> None:
    """Several changes in a row, each patched from the last patched text, stay the whole render."""
    config = load_text(render_true_pacs()).config
    text = render(config, golden_env)
    for updates in _changes(config) * 2:
        new = with_real_servers(config, updates)
        text = patch_servers(text, config, new, golden_env)
        assert text == render(new, golden_env)
        config = new


@pytest.mark.parametrize(
    "what",
    ["address", "settings", "service added", "text not rendered from old"],
)
def test_patch_declines_what_is_not_states_and_weights(what: str, golden_env) -> None:
    config = load_text(render_true_pacs()).config
    text = render(config, golden_env)
    vs = next(v for v in config.virtual_services if not v.mode.is_layer4 and v.real_servers)
    rs = vs.real_servers[0]
    if what == "address":
        new = with_real_servers(config, {(vs.name, rs.name): {"address": "192.0.2.77"}})
    elif what == "settings":
        new = config.model_copy(update={"settings": config.settings.model_copy(update={"retries": 9})})
    elif what == "service added":
        new = config.model_copy(update={"virtual_services": [*config.virtual_services, vs.model_copy(update={"name": "copy"})]})
    else:
        new = with_real_servers(config, {(vs.name, rs.name): {"state": RealServerState.HALT}})
        text = text.replace(f"    server {rs.name} ", f"    server {rs.name}-renamed ")
    assert patch_servers(text, config, new, golden_env) is None


# --- DeferredFile: coalesced, superseded, flushed -------------------------------------------------------


class Writer:
    """A fake render + check: records what was rendered and installed; can be held or made to fail."""

    def __init__(self) -> None:
        self.rendered: list[object] = []
        self.installed: list[object] = []
        self.discarded: list[object] = []
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()
        self.fail = False

    def __call__(self, config, base_dir):
        self.started.set()
        assert self.hold.wait(10)
        if self.fail:
            raise RuntimeError("haproxy -c refused it")
        self.rendered.append(config)
        return (lambda: self.installed.append(config)), (lambda: self.discarded.append(config))


def wait_for(condition, what: str) -> None:
    from support.wait import wait_until

    wait_until(condition, 10, what=what)


def test_a_burst_of_changes_is_one_write() -> None:
    writer = Writer()
    deferred = DeferredFile(writer, quiet=0.2, longest=5.0)
    try:
        for n in range(20):
            deferred.due(n, Path("/etc/pacslb"))  # type: ignore[arg-type]
        wait_for(lambda: writer.installed, "the file written")
        assert writer.installed == [19] and writer.rendered == [19] and not deferred.pending
    finally:
        deferred.stop()


def test_a_swap_in_meanwhile_makes_the_background_render_stale() -> None:
    writer = Writer()
    writer.hold.clear()
    deferred = DeferredFile(writer, quiet=0.0, longest=0.0)
    try:
        deferred.due("runtime change", Path("/etc/pacslb"))  # type: ignore[arg-type]
        assert writer.started.wait(10)
        swapped = []
        deferred.swap_in(lambda: swapped.append("whole-file apply"))  # a newer model's file, while the render runs
        writer.hold.set()
        wait_for(lambda: writer.discarded, "the stale render discarded")
        assert swapped == ["whole-file apply"] and writer.installed == [] and not deferred.pending
    finally:
        deferred.stop()


def test_flush_writes_now_and_a_failure_stays_due() -> None:
    writer = Writer()
    deferred = DeferredFile(writer, quiet=60.0, longest=60.0)  # the thread would wait a minute: flush must not
    try:
        deferred.flush()  # nothing due: nothing written
        assert writer.rendered == []
        deferred.due("model", Path("/etc/pacslb"))  # type: ignore[arg-type]
        writer.fail = True
        with pytest.raises(RuntimeError, match="refused"):
            deferred.flush()
        assert deferred.pending
        writer.fail = False
        deferred.flush()
        assert writer.installed == ["model"] and not deferred.pending
    finally:
        deferred.stop()
