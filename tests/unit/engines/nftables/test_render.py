"""The nftables renderer: golden files per feature, then the scheduling slots, states and updates on their own."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from pacslb.engines.nftables.render import (
    Layer4Env,
    RenderError,
    nft_duration,
    removal,
    render,
    service_update,
    smooth_wrr,
)
from pacslb.model import Config, dump_yaml, load_file, load_text, validate_data


def case_env(case: Path) -> Layer4Env:
    env_file = case / "env.yaml"
    return Layer4Env.from_dict(yaml.safe_load(env_file.read_text()) if env_file.exists() else {})


# --- golden files -----------------------------------------------------------------------------------


def test_golden(nft_golden_case: Path, update_golden: bool) -> None:
    """The rendering of each case's config.yaml (and env.yaml) is exactly its ruleset.nft (pytest --update-golden rewrites it)."""
    loaded = load_file(nft_golden_case / "config.yaml")
    assert loaded.ok and not loaded.problems, [str(p) for p in loaded.problems]
    text = render(loaded.config, case_env(nft_golden_case))
    expected = nft_golden_case / "ruleset.nft"
    if update_golden:
        if not expected.exists() or expected.read_text() != text:
            expected.write_text(text)
        return
    assert expected.exists(), f"{expected} is missing: run `pytest --update-golden` and review the new file"
    assert text == expected.read_text(), f"{nft_golden_case.name}: rendering differs from ruleset.nft (pytest --update-golden)"


def test_golden_rendering_is_deterministic(nft_golden_case: Path) -> None:
    config = load_file(nft_golden_case / "config.yaml").config
    assert config is not None
    env = case_env(nft_golden_case)
    first = render(config, env)
    assert render(config, env) == first
    again = load_text(dump_yaml(config))
    assert again.config is not None
    assert render(again.config, env) == first


# --- builders -----------------------------------------------------------------------------------------


def service(name: str = "svc", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "mode": "layer4-nat",
        "listen": [{"address": "192.0.2.10", "port": 104}],
        "real_servers": [
            {"name": "rs1", "address": "198.51.100.21"},
            {"name": "rs2", "address": "198.51.100.22"},
        ],
    }
    data.update(fields)
    return data


def config(*services: dict[str, Any]) -> Config:
    loaded = validate_data({"version": 1, "virtual_services": list(services) or [service()]})
    assert loaded.ok and loaded.config is not None, [str(p) for p in loaded.problems]
    return loaded.config


DR_ENV = Layer4Env(
    vip_devices={"192.0.2.10": "eth0"},
    routes={"198.51.100.21": "eth1", "198.51.100.22": "eth1"},
    link_macs={"eth1": "02:00:00:00:00:02"},
    neighbours={"198.51.100.21": "02:00:00:00:01:21", "198.51.100.22": "02:00:00:00:01:22"},
)


# --- scheduling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [[(1, 100), (2, 100)], [(1, 3), (2, 1)], [(1, 150), (2, 100)], [(1, 5), (2, 1), (3, 1)], [(1, 256), (2, 1)], [(7, 1)]],
)
def test_smooth_wrr_gives_each_its_share(weights: list[tuple[int, int]]) -> None:
    slots = smooth_wrr(weights)
    from functools import reduce
    from math import gcd

    divisor = reduce(gcd, (w for _, w in weights))
    assert Counter(slots) == {sid: w // divisor for sid, w in weights}


def test_smooth_wrr_interleaves() -> None:
    """3:2 is a b a b a, not a a a b b: consecutive connections spread."""
    assert smooth_wrr([(1, 3), (2, 2)]) == [1, 2, 1, 2, 1]
    assert smooth_wrr([]) == []


def test_durations_in_nft_words() -> None:
    assert nft_duration(30 * 60_000) == "30m"
    assert nft_duration(12 * 3_600_000) == "12h"
    assert nft_duration(90_000) == "1m30s"
    assert nft_duration(1500) == "1s500ms"
    assert nft_duration(86_400_000 + 3_600_000) == "1d1h"


def test_layer7_only_renders_removal() -> None:
    cfg = config(
        {
            "name": "web",
            "mode": "layer7-http",
            "listen": [{"address": "192.0.2.9", "port": 80}],
            "real_servers": [{"name": "rs1", "address": "198.51.100.21", "port": 8080}],
        }
    )
    assert render(cfg, Layer4Env()) == removal()
    assert "delete table inet pacslb" in removal() and "delete table netdev pacslb" in removal()


def test_down_server_leaves_the_schedule_but_keeps_its_chain() -> None:
    cfg = config(service())
    text = render(cfg, Layer4Env(down=frozenset({("svc", "rs2")})))
    assert (
        "0 : jump rs1_svc_rs1" in text and "jump rs2_svc_rs2" not in text.split("chain rs2_svc_rs2")[0].split("map avail_svc")[1]
    )
    assert "chain rs2_svc_rs2" in text
    assert "numgen inc mod 1 vmap" in text


def test_every_server_down_leaves_pick_empty_and_drops() -> None:
    cfg = config(service())
    text = render(cfg, Layer4Env(down=frozenset({("svc", "rs1"), ("svc", "rs2")})))
    pick = text.split("chain pick_svc {")[1].split("}")[0]
    assert pick.strip() == ""
    assert "jump pick_svc\n\t\tdrop" in text


def test_dr_needs_layer2_facts() -> None:
    cfg = config(service(mode="layer4-dr"))
    with pytest.raises(RenderError, match="no route to 198.51.100.21"):
        render(cfg, Layer4Env())
    env = Layer4Env(routes=DR_ENV.routes, link_macs=DR_ENV.link_macs, neighbours={"198.51.100.21": "02:00:00:00:01:21"})
    with pytest.raises(RenderError, match="MAC address of 198.51.100.22 is unknown"):
        render(cfg, env)
    env = Layer4Env(routes=DR_ENV.routes, link_macs=DR_ENV.link_macs, neighbours=DR_ENV.neighbours)
    with pytest.raises(RenderError, match="no device holds the VIP"):
        render(cfg, env)
    text = render(cfg, DR_ENV)
    assert 'hook ingress device "eth0"' in text and 'fwd to "eth1"' in text
    assert "ether daddr set 02:00:00:00:01:22" in text


@pytest.mark.parametrize("bad", ['eth0"; flush ruleset', "a" * 16, "eth 0"])
def test_device_names_cannot_inject(bad: str) -> None:
    cfg = config(service(mode="layer4-dr"))
    env = Layer4Env(
        vip_devices={"192.0.2.10": bad}, routes=DR_ENV.routes, link_macs=DR_ENV.link_macs, neighbours=DR_ENV.neighbours
    )
    with pytest.raises(RenderError, match="not a network device name"):
        render(cfg, env)


def test_bad_mac_is_refused() -> None:
    cfg = config(service(mode="layer4-dr"))
    env = Layer4Env(
        vip_devices=DR_ENV.vip_devices,
        routes=DR_ENV.routes,
        link_macs=DR_ENV.link_macs,
        neighbours={**DR_ENV.neighbours, "198.51.100.22": "02:00:00:00:01:22 } flush ruleset"},
    )
    with pytest.raises(RenderError, match="not a MAC address"):
        render(cfg, env)


# --- updates ------------------------------------------------------------------------------------------


def test_service_update_touches_only_its_service() -> None:
    cfg = config(service("a"), service("b", listen=[{"address": "192.0.2.11", "port": 104}]))
    text = service_update(cfg, Layer4Env(down=frozenset({("b", "rs1")})), "b")
    assert "sched_a" not in text and "avail_a" not in text
    assert text.splitlines() == [
        "flush map inet pacslb sched_b",
        "add element inet pacslb sched_b { 0 : jump rs4_b_rs2 }",
        "flush map inet pacslb avail_b",
        "add element inet pacslb avail_b { 4 : jump rs4_b_rs2 }",
        "flush chain inet pacslb pick_b",
        "add rule inet pacslb pick_b numgen inc mod 1 vmap @sched_b",
        "add element inet pacslb halted { 3, 4 }",
        "delete element inet pacslb halted { 3, 4 }",
    ]


def test_service_update_of_a_halted_server() -> None:
    data = service()
    data["real_servers"][1]["state"] = "halt"
    text = service_update(config(data), Layer4Env(), "svc")
    assert text.splitlines()[-1] == "add element inet pacslb halted { 2 }"


def test_service_update_unknown_service() -> None:
    with pytest.raises(RenderError):
        service_update(config(), Layer4Env(), "nope")


# --- validation of what Layer 4 cannot do ----------------------------------------------------------------


def _problems(*services: dict[str, Any]) -> list[str]:
    loaded = validate_data({"version": 1, "virtual_services": list(services)})
    return [str(p) for p in loaded.problems]


def test_layer4_refuses_dns_names_and_mixed_families() -> None:
    dns = service(real_servers=[{"name": "rs1", "address": "pacs.example.org"}])
    assert any("real_servers[rs1].address" in p and "DNS name" in p for p in _problems(dns))
    mixed = service(real_servers=[{"name": "rs1", "address": "2001:db8::1"}])
    assert any("cannot translate address families" in p for p in _problems(mixed))
    two = service(listen=[{"address": "192.0.2.10", "port": 1}, {"address": "2001:db8::10", "port": 1}])
    assert any("one address family" in p for p in _problems(two))
