"""The TPROXY engine's decisions (engines/tproxy/engine.py) over a fake kernel: the order it adds and removes in,
what it leaves alone, what its record says after a failure half-way, and how a refused table is reported. The real
`ip` and `nft` are in tests/netns/test_tproxy_engine.py and tests/netns/test_tproxy.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pacslb.engines.contract import EngineError
from pacslb.engines.tproxy import engine as engine_module
from pacslb.engines.tproxy.engine import TproxyEngine
from pacslb.engines.tproxy.process import KernelError
from pacslb.model import validate_data
from pacslb.paths import StatePaths


class FakeKernel:
    """Rules (family, mark, table), local default routes (family, table) and the nftables table's mark; every
    change is logged, and `fail` names a change that fails."""

    def __init__(self) -> None:
        self.rules: set[tuple[int, int, int]] = set()
        self.routes: set[tuple[int, int]] = set()
        self.nft_mark: int | None = None
        self.log: list[str] = []
        self.fail: str | None = None
        self.refuse = False

    def _do(self, what: str) -> None:
        if what == self.fail:
            raise KernelError(f"{what}: RTNETLINK answers: Operation not permitted")
        self.log.append(what)

    def rule_present(self, family: int, mark: int, table: int) -> bool:
        return (family, mark, table) in self.rules

    def rule_add(self, family: int, mark: int, table: int) -> None:
        self._do(f"rule add {family} {mark:#x} {table}")
        self.rules.add((family, mark, table))

    def rule_del(self, family: int, mark: int, table: int) -> None:
        self._do(f"rule del {family} {mark:#x} {table}")
        self.rules.discard((family, mark, table))

    def route_present(self, family: int, table: int) -> bool:
        return (family, table) in self.routes

    def route_add(self, family: int, table: int) -> None:
        self._do(f"route add {family} {table}")
        self.routes.add((family, table))

    def route_del(self, family: int, table: int) -> None:
        self._do(f"route del {family} {table}")
        self.routes.discard((family, table))

    def nft_check(self, ruleset: str) -> None:
        if self.refuse:
            raise KernelError("nft -c -f -: Error: Could not process rule: No such file or directory")

    def nft_apply(self, ruleset: str) -> None:
        mark = int(ruleset.split("mark set ")[1].split()[0], 16)
        self._do(f"nft {mark:#x}")
        self.nft_mark = mark

    def nft_present(self) -> bool:
        return self.nft_mark is not None

    def nft_delete(self) -> None:
        self._do("nft delete")
        self.nft_mark = None


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    fake = FakeKernel()
    for name in ("rule_present", "rule_add", "rule_del", "route_present", "route_add", "route_del",
                 "nft_check", "nft_apply", "nft_present", "nft_delete"):  # fmt: skip
        monkeypatch.setattr(engine_module.process, name, getattr(fake, name))
    return fake


def config(*servers: str, transparent: bool = True, **settings):
    loaded = validate_data({
        "version": 1,
        "settings": {"transparent": settings} if settings else {},
        "virtual_services": [{"name": "dicom", "mode": "layer7-tcp", "transparent": transparent,
                              "listen": [{"address": "192.0.2.10", "port": 104}],
                              "real_servers": [{"name": f"rs{i}", "address": a, "port": 104} for i, a in enumerate(servers)]}],
    })  # fmt: skip
    assert loaded.ok, loaded.problems
    return loaded.config


def change(engine: TproxyEngine, old, new, tmp_path: Path):
    prepared = engine.plan(old, new, tmp_path)
    asyncio.run(engine.check(prepared))
    asyncio.run(engine.commit(prepared))
    return prepared


def test_the_route_comes_before_the_rule_and_the_mark_last_and_leave_in_reverse(kernel: FakeKernel, tmp_path: Path) -> None:
    engine = TproxyEngine(StatePaths(tmp_path))
    none, a = config("10.1.0.1", transparent=False), config("10.1.0.1")
    assert not engine.wanted(none) and engine.wanted(a)
    change(engine, none, a, tmp_path)
    assert kernel.log == ["route add 4 20556", "rule add 4 0x504c 20556", "nft 0x504c"]
    assert engine.wanted(none)  # until what it added is gone
    kernel.log.clear()
    change(engine, a, none, tmp_path)
    assert kernel.log == ["nft delete", "rule del 4 0x504c 20556", "route del 4 20556"]
    assert not engine.wanted(none)
    assert (kernel.rules, kernel.routes, kernel.nft_mark) == (set(), set(), None)


def test_a_new_mark_replaces_the_table_in_one_step_and_moves_rule_and_route(kernel: FakeKernel, tmp_path: Path) -> None:
    engine = TproxyEngine(StatePaths(tmp_path))
    a = config("10.1.0.1")
    change(engine, config("10.1.0.1", transparent=False), a, tmp_path)
    kernel.log.clear()
    change(engine, a, config("10.1.0.1", mark=7, table=70), tmp_path)
    # never without the nftables table in between: it is replaced, not deleted and added
    assert kernel.log == ["rule del 4 0x504c 20556", "route del 4 20556", "route add 4 70", "rule add 4 0x7 70", "nft 0x7"]


def test_what_was_there_before_is_used_and_never_removed(kernel: FakeKernel, tmp_path: Path) -> None:
    kernel.routes.add((4, 20556))  # made by hand
    engine = TproxyEngine(StatePaths(tmp_path))
    a = config("10.1.0.1")
    change(engine, config("10.1.0.1", transparent=False), a, tmp_path)
    assert "route add 4 20556" not in kernel.log
    asyncio.run(engine.stop())
    assert kernel.routes == {(4, 20556)} and kernel.rules == set() and kernel.nft_mark is None
    assert not (tmp_path / "tproxy" / "installed.json").exists()


def test_a_failure_half_way_is_reported_and_recorded_as_it_is_and_undo_clears_it(kernel: FakeKernel, tmp_path: Path) -> None:
    engine = TproxyEngine(StatePaths(tmp_path))
    kernel.fail = "rule add 4 0x504c 20556"
    none, a = config("10.1.0.1", transparent=False), config("10.1.0.1")
    prepared = engine.plan(none, a, tmp_path)
    with pytest.raises(EngineError) as caught:
        asyncio.run(engine.commit(prepared))
    assert caught.value.summary == "TPROXY: rule4 (mark 0x504c, table 20556) cannot be added"
    assert "Operation not permitted" in caught.value.messages[0]
    assert TproxyEngine(StatePaths(tmp_path)).record.added == ["route4"]  # the record says what is really there
    kernel.fail = None
    asyncio.run(engine.undo(prepared))
    assert (kernel.rules, kernel.routes, kernel.nft_mark) == (set(), set(), None)
    assert engine.applied_digest() is None


def test_a_refused_table_is_refused_before_anything_changes(kernel: FakeKernel, tmp_path: Path) -> None:
    engine = TproxyEngine(StatePaths(tmp_path))
    kernel.refuse = True
    prepared = engine.plan(config("10.1.0.1", transparent=False), config("10.1.0.1"), tmp_path)
    with pytest.raises(EngineError, match="nftables refused the table that marks transparent replies"):
        asyncio.run(engine.check(prepared))
    assert kernel.log == []


def test_an_unreadable_record_leaves_the_kernel_alone(kernel: FakeKernel, tmp_path: Path) -> None:
    (tmp_path / "tproxy").mkdir()
    (tmp_path / "tproxy" / "installed.json").write_text("{not json")
    engine = TproxyEngine(StatePaths(tmp_path))
    assert engine.record.added == [] and not engine.wanted(config("10.1.0.1", transparent=False))
    asyncio.run(engine.stop())
    assert kernel.log == []
