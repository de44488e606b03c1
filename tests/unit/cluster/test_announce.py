"""Which VIPs a cluster node announces (cluster/announce.py), one rule at a time, and the routing subsystem around it
(cluster/routing.py) with a stand-in for BIRD: drain kept in the state directory, HAProxy's death, stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

from pacslb.cluster.announce import Facts, decide, services_by_vip, serving
from pacslb.cluster.routing import Routing
from pacslb.model import validate_data


def cluster_config(extra_services: list[dict] | None = None):
    data = {
        "version": 1,
        "virtual_services": [
            {"name": "WFC_443", "mode": "layer7-tcp", "listen": [{"address": "192.0.2.10", "port": 443}],
             "real_servers": [{"name": "rs1", "address": "198.51.100.50", "port": 443},
                              {"name": "rs2", "address": "198.51.100.51", "port": 443}]},
            {"name": "WFC_80", "mode": "layer7-http", "listen": [{"address": "192.0.2.10", "port": 80}],
             "real_servers": [{"name": "rs1", "address": "198.51.100.50", "port": 80}]},
            {"name": "DICOM_104", "mode": "layer4-nat", "listen": [{"address": "192.0.2.11", "port": 104}],
             "real_servers": [{"name": "rs1", "address": "198.51.100.52", "port": 104}]},
            {"name": "local", "mode": "layer7-tcp", "listen": [{"address": "127.0.0.1", "port": 9000}],
             "real_servers": [{"name": "rs1", "address": "198.51.100.53", "port": 9000}]},
            *(extra_services or []),
        ],
        "cluster": {"name": "c", "node": "lb1", "nodes": [{"name": "lb1", "address": "10.0.1.11"}],
                    "bgp": {"local_as": 65010, "neighbors": [{"address": "10.0.1.1", "remote_as": 65000}]}},
    }  # fmt: skip
    loaded = validate_data(data)
    assert loaded.ok, loaded.problems
    return loaded.config


EVERY = {"WFC_443": True, "WFC_80": True, "DICOM_104": True, "local": True}


def test_every_vip_is_announced_when_every_service_can_serve_and_loopback_is_no_vip() -> None:
    config = cluster_config()
    assert list(services_by_vip(config)) == ["192.0.2.10", "192.0.2.11"]
    decision = decide(config, Facts(serving=EVERY))
    assert decision.announced == ("192.0.2.10", "192.0.2.11") and decision.withheld == {}


def test_a_vip_shared_by_two_services_stays_while_one_of_them_can_serve() -> None:
    config = cluster_config()
    one_down = decide(config, Facts(serving={**EVERY, "WFC_443": False}))
    assert "192.0.2.10" in one_down.announced
    both_down = decide(config, Facts(serving={**EVERY, "WFC_443": False, "WFC_80": False}))
    assert both_down.announced == ("192.0.2.11",)
    assert both_down.withheld == {"192.0.2.10": "WFC_443: every real server is down; WFC_80: every real server is down"}


def test_haproxy_down_withdraws_the_layer7_vips_only() -> None:
    decision = decide(cluster_config(), Facts(haproxy_running=False, haproxy_reason="master PID 7 exited", serving=EVERY))
    assert decision.announced == ("192.0.2.11",)  # Layer 4 is the kernel's: nftables serves without HAProxy
    assert decision.withheld["192.0.2.10"].startswith("WFC_443: HAProxy is not running (master PID 7 exited)")


def test_drained_and_unhealthy_controller_withdraw_everything_with_their_reason_first() -> None:
    config = cluster_config()
    drained = decide(config, Facts(serving=EVERY, drained=True, controller_healthy=False))
    assert drained.announced == () and set(drained.withheld.values()) == {"drained: this node is drained for maintenance"}
    unhealthy = decide(config, Facts(serving=EVERY, controller_healthy=False, controller_reason="stopping (SIGTERM)"))
    assert unhealthy.announced == () and unhealthy.withheld["192.0.2.11"] == "controller unhealthy: stopping (SIGTERM)"


def _status(**states: list[str]):
    return SimpleNamespace(virtual_services=[
        SimpleNamespace(name=name, real_servers=[SimpleNamespace(state=SimpleNamespace(value=s)) for s in servers])
        for name, servers in states.items()
    ])  # fmt: skip


def test_serving_counts_up_and_unchecked_real_servers_not_drained_or_halted_ones() -> None:
    rules = [{"name": "router", "mode": "layer7-http", "listen": [{"address": "192.0.2.12", "port": 8080}],
              "rules": [{"name": "api", "match": {"path_begins": ["/api"]}, "use_service": "API_backend"}]},
             {"name": "API_backend", "mode": "backend-only",
              "real_servers": [{"name": "rs1", "address": "198.51.100.60", "port": 80}]}]  # fmt: skip
    config = cluster_config(rules)
    status = _status(WFC_443=["DOWN", "UP"], WFC_80=["DRAIN"], DICOM_104=["no-check"], local=["MAINT"], router=[],
                     API_backend=["DOWN"])  # fmt: skip
    assert serving(config, status) == {"WFC_443": True, "WFC_80": False, "DICOM_104": True, "local": False,
                                       "router": False, "API_backend": False}  # fmt: skip
    status = _status(WFC_443=[], WFC_80=[], DICOM_104=[], local=[], router=[], API_backend=["UP"])
    assert serving(config, status)["router"] is True  # a rules-only service serves through its backend-only services
    assert serving(config, _status())["WFC_443"] is False  # not reported at all: it cannot be shown to serve


class FakeBird:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    async def announce(self, vips: list[str], withheld: dict[str, str]) -> bool:
        self.calls.append((list(vips), dict(withheld)))
        return True

    def sessions(self) -> dict:
        return {}


def _routing(tmp_path: Path, facts: dict, bird: FakeBird, keep: bool = False) -> Routing:
    return Routing(tmp_path / "cluster" / "drained", lambda config, drained: Facts(serving=facts, drained=drained),
                   bird.announce, bird.sessions, keep_on_stop=lambda: keep, interval=30)  # fmt: skip


def test_drain_is_kept_in_the_state_directory_and_a_new_controller_starts_drained(tmp_path: Path) -> None:
    bird = FakeBird()

    async def scenario() -> None:
        routing = _routing(tmp_path, EVERY, bird)
        await routing.start(cluster_config())
        assert bird.calls[-1][0] == ["192.0.2.10", "192.0.2.11"]
        answer = await routing.set_drained(True)
        assert answer["drained"] and answer["announced"] == [] and bird.calls[-1][0] == []
        await routing.stop()
        again = _routing(tmp_path, EVERY, bird)  # a restarted controller
        await again.start(cluster_config())
        assert again.drained and bird.calls[-1][0] == []
        assert (await again.set_drained(False))["announced"] == ["192.0.2.10", "192.0.2.11"]
        await again.stop()

    asyncio.run(scenario())
    assert not (tmp_path / "cluster" / "drained").exists()
    assert bird.calls[-1] == ([], {"192.0.2.10": "controller stopping", "192.0.2.11": "controller stopping"})


def test_haproxy_death_withdraws_before_the_restart_and_its_return_announces_again(tmp_path: Path) -> None:
    bird = FakeBird()

    async def scenario() -> None:
        routing = _routing(tmp_path, EVERY, bird, keep=True)
        await routing.start(cluster_config())
        await routing.haproxy_event("died", "master PID 7: killed by SIGKILL")
        assert bird.calls[-1][0] == ["192.0.2.11"]
        assert "HAProxy died (master PID 7: killed by SIGKILL)" in bird.calls[-1][1]["192.0.2.10"]
        await routing.haproxy_event("running", "8")
        assert bird.calls[-1][0] == ["192.0.2.10", "192.0.2.11"]
        count = len(bird.calls)
        await routing.stop()  # a hand-over: BIRD keeps announcing for the next controller
        assert len(bird.calls) == count

    asyncio.run(scenario())


def test_without_a_cluster_section_nothing_is_announced_or_touched(tmp_path: Path) -> None:
    bird = FakeBird()
    plain = validate_data({"version": 1}).config

    async def scenario() -> None:
        routing = _routing(tmp_path, EVERY, bird)
        await routing.start(plain)
        assert await routing.evaluate() is None
        await routing.stop()

    asyncio.run(scenario())
    assert bird.calls == []


def test_a_costly_look_spaces_the_next_ones_out(tmp_path: Path) -> None:
    """The safety net's period: `interval`, or ten times the last look's cost (never more than a tenth of a core)."""
    bird = FakeBird()
    slow = {"seconds": 0.0}

    def look(config, drained):
        time.sleep(slow["seconds"])
        return Facts(serving=EVERY, drained=drained)

    async def scenario() -> tuple[float, float]:
        routing = Routing(tmp_path / "cluster" / "drained", look, bird.announce, bird.sessions, interval=0.5)
        routing.config = cluster_config()
        await routing.evaluate()
        quick = routing.pause()
        slow["seconds"] = 0.2
        await routing.evaluate()
        return quick, routing.pause()

    quick, costly = asyncio.run(scenario())
    assert quick == 0.5 and costly >= 2.0
