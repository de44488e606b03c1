"""The addresses engine's decisions (engines/addresses/engine.py) over a fake `ip`: what it adds, what it
removes, what it leaves alone, and what its record says. The real `ip` and `arping` are in
tests/netns/test_vip_addresses.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pacslb.engines.addresses import engine as engine_module
from pacslb.engines.addresses.engine import AddressesEngine
from pacslb.engines.contract import EngineError
from pacslb.model import validate_data
from pacslb.paths import StatePaths


class FakeIP:
    """Interfaces and their addresses, as `ip` would show them; every add and delete is logged."""

    def __init__(self, **interfaces: set[str]) -> None:
        self.interfaces = interfaces
        self.log: list[str] = []

    def interface_exists(self, interface: str) -> bool:
        return interface in self.interfaces

    def addresses(self, interface: str) -> set[str]:
        return set(self.interfaces[interface])

    def add(self, interface: str, address: str, announced: bool = True) -> None:
        self.interfaces[interface].add(address)
        self.log.append(f"add {address} {interface}" + ("" if announced else " (not announced)"))

    def delete(self, interface: str, address: str) -> None:
        self.interfaces[interface].discard(address)
        self.log.append(f"del {address} {interface}")


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> FakeIP:
    fake = FakeIP(eth0={"10.0.0.1/24", "10.0.0.20/32"}, eth1={"10.1.0.1/24"}, lo={"127.0.0.1/8"})
    for name in ("interface_exists", "addresses", "add", "delete"):
        monkeypatch.setattr(engine_module.process, name, getattr(fake, name))
    return fake


def config(*vips: str, interface: str | None = "eth0"):
    data = {
        "version": 1,
        "settings": {"network": {"interface": interface}} if interface else {},
        "virtual_services": [{"name": "vs", "mode": "layer7-tcp", "listen": [{"address": v, "port": 104} for v in vips or ("127.0.0.1",)],
                              "real_servers": [{"name": "rs", "address": "10.2.0.1", "port": 104}]}],
    }  # fmt: skip
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config


def change(engine: AddressesEngine, old, new) -> None:
    prepared = engine.plan(old, new, Path("."))
    asyncio.run(engine.check(prepared))
    asyncio.run(engine.commit(prepared))


def test_start_adds_only_what_is_missing_and_stop_removes_only_its_own(ip: FakeIP, tmp_path: Path) -> None:
    engine = AddressesEngine(StatePaths(tmp_path))
    asyncio.run(engine.start(config("10.0.0.10", "10.0.0.20", "127.0.0.1"), Path(".")))
    assert ip.log == ["add 10.0.0.10/32 eth0"]  # 10.0.0.20 was there already: used, not added
    assert engine.record.added == ["10.0.0.10/32"]
    assert engine.applied_digest() == engine.plan(config(), config("10.0.0.10", "10.0.0.20"), Path(".")).digest
    asyncio.run(engine.stop())
    assert ip.log[-1] == "del 10.0.0.10/32 eth0" and "10.0.0.20/32" in ip.interfaces["eth0"]
    assert not (tmp_path / "addresses" / "added.json").exists()


def test_a_change_adds_and_drops_and_undo_puts_back(ip: FakeIP, tmp_path: Path) -> None:
    engine = AddressesEngine(StatePaths(tmp_path))
    one, two = config("10.0.0.10", "10.0.0.11"), config("10.0.0.10", "10.0.0.12")
    asyncio.run(engine.start(one, Path(".")))
    prepared = engine.plan(one, two, Path("."))
    assert prepared.changed and prepared.steps == ["addresses: 10.0.0.12/32 on eth0", "addresses: 10.0.0.11/32 off eth0"]
    asyncio.run(engine.commit(prepared))
    assert {"10.0.0.10/32", "10.0.0.12/32"} <= ip.interfaces["eth0"] and "10.0.0.11/32" not in ip.interfaces["eth0"]
    asyncio.run(engine.undo(prepared))
    assert {"10.0.0.10/32", "10.0.0.11/32"} <= ip.interfaces["eth0"] and "10.0.0.12/32" not in ip.interfaces["eth0"]
    assert sorted(engine.record.added) == ["10.0.0.10/32", "10.0.0.11/32"]
    assert not engine.plan(one, one, Path(".")).changed


def test_moving_to_another_interface_and_dropping_the_setting(ip: FakeIP, tmp_path: Path) -> None:
    engine = AddressesEngine(StatePaths(tmp_path))
    asyncio.run(engine.start(config("10.0.0.10"), Path(".")))
    change(engine, config("10.0.0.10"), config("10.0.0.10", interface="eth1"))
    assert "10.0.0.10/32" not in ip.interfaces["eth0"] and "10.0.0.10/32" in ip.interfaces["eth1"]
    change(engine, config("10.0.0.10", interface="eth1"), config("10.0.0.10", interface=None))
    assert "10.0.0.10/32" not in ip.interfaces["eth1"] and engine.record.added == []


def test_a_missing_interface_is_refused_before_anything_changes(ip: FakeIP, tmp_path: Path) -> None:
    engine = AddressesEngine(StatePaths(tmp_path))
    prepared = engine.plan(config(), config("10.0.0.10", interface="eth9"), Path("."))
    with pytest.raises(EngineError, match="settings.network.interface: there is no interface 'eth9'") as raised:
        asyncio.run(engine.check(prepared))
    assert raised.value.refused and ip.log == []


def test_a_restarted_controller_adopts_its_record(ip: FakeIP, tmp_path: Path) -> None:
    asyncio.run(AddressesEngine(StatePaths(tmp_path)).start(config("10.0.0.10"), Path(".")))
    again = AddressesEngine(StatePaths(tmp_path))  # the next controller, after a hand-over or a crash
    asyncio.run(again.start(config("10.0.0.10"), Path(".")))
    assert ip.log == ["add 10.0.0.10/32 eth0"] and again.record.added == ["10.0.0.10/32"]
    asyncio.run(again.stop())
    assert "10.0.0.10/32" not in ip.interfaces["eth0"]


def test_without_the_setting_nothing_is_written(ip: FakeIP, tmp_path: Path) -> None:
    engine = AddressesEngine(StatePaths(tmp_path))
    assert not engine.wanted(config("10.0.0.10", interface=None))
    asyncio.run(engine.start(config("10.0.0.10", interface=None), Path(".")))
    asyncio.run(engine.stop())
    assert ip.log == [] and not (tmp_path / "addresses").exists()


def test_pacslb_stop_removes_what_a_dead_controller_added(ip: FakeIP, tmp_path: Path) -> None:
    from pacslb.cli.run_commands import _remove_orphan_addresses

    asyncio.run(AddressesEngine(StatePaths(tmp_path)).start(config("10.0.0.10", "10.0.0.20"), Path(".")))
    # the controller died here (SIGKILL): its record is all that is left
    assert _remove_orphan_addresses(StatePaths(tmp_path))
    assert ip.interfaces["eth0"] == {"10.0.0.1/24", "10.0.0.20/32"}  # its own gone, the one it found stays
    assert not _remove_orphan_addresses(StatePaths(tmp_path))  # nothing left: nothing done


def cluster_config(*vips: str, vip_interface: str = "lo"):
    data = {
        "version": 1,
        "virtual_services": [{"name": "vs", "mode": "layer7-tcp", "listen": [{"address": v, "port": 104} for v in vips],
                              "real_servers": [{"name": "rs", "address": "10.2.0.1", "port": 104}]}],
        "cluster": {"name": "c", "node": "lb1", "nodes": [{"name": "lb1", "address": "10.0.1.11"}],
                    "bgp": {"local_as": 65010, "neighbors": [{"address": "10.0.1.1", "remote_as": 65000}],
                            "vip_interface": vip_interface}},
    }  # fmt: skip
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config


def test_a_cluster_node_holds_every_vip_on_its_vip_interface_without_announcing_them(ip: FakeIP, tmp_path: Path) -> None:
    """In a cluster the routers route a VIP to the nodes that announce it over BGP: the address is on `lo` (so the
    node accepts the traffic and HAProxy binds it), never announced by ARP on a link; the same record and undo."""
    engine = AddressesEngine(StatePaths(tmp_path))
    assert engine.wanted(cluster_config("10.0.0.10")) and not engine.wanted(config(interface=None))
    asyncio.run(engine.start(cluster_config("10.0.0.10", "2001:db8::10"), Path(".")))
    assert ip.log == ["add 10.0.0.10/32 lo (not announced)", "add 2001:db8::10/128 lo (not announced)"]
    assert not engine.plan(
        cluster_config("10.0.0.10", "2001:db8::10"), cluster_config("10.0.0.10", "2001:db8::10"), Path(".")
    ).changed
    change(engine, cluster_config("10.0.0.10", "2001:db8::10"), cluster_config("10.0.0.10"))
    assert ip.log[-1] == "del 2001:db8::10/128 lo"
    asyncio.run(engine.stop())
    assert ip.interfaces["lo"] == {"127.0.0.1/8"}


def test_a_missing_vip_interface_is_refused_naming_the_cluster_field(ip: FakeIP, tmp_path: Path) -> None:
    engine = AddressesEngine(StatePaths(tmp_path))
    prepared = engine.plan(config(interface=None), cluster_config("10.0.0.10", vip_interface="dummy9"), Path("."))
    with pytest.raises(EngineError, match=r"^cluster\.bgp\.vip_interface: there is no interface 'dummy9'"):
        asyncio.run(engine.check(prepared))
    assert ip.log == []
