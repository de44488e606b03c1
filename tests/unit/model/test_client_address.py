"""The client's address on every VIP (model/client_address.py): source_address, and one RIP:PORT behind Layer 7 and SNAT."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pacslb.cli import app
from pacslb.model import validate_data
from pacslb.model.client_address import MAX_SHARED_WARNINGS, shared_real_servers


def service(name: str, mode: str, servers: list[tuple[str, int | None]], port: int = 8080, **fields) -> dict:
    vs = {"name": name, "mode": mode, "real_servers": [{"name": f"rs{i}", "address": a, "port": p} for i, (a, p) in
                                                       enumerate(servers, 1)], **fields}  # fmt: skip
    if mode != "backend-only":
        vs["listen"] = [{"address": "192.0.2.10", "port": port}]
    for rs in vs["real_servers"]:
        if rs["port"] is None:
            del rs["port"]
    return vs


def data(*services: dict) -> dict:
    return {"version": 1, "virtual_services": list(services)}


def problems(d: dict) -> list[str]:
    return [str(p) for p in validate_data(d).problems]


# --- source_address ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["192.0.2.10", "2001:db8::10"])
def test_a_source_address_is_kept_in_its_canonical_form(address: str) -> None:
    server = "192.0.2.81" if ":" not in address else "2001:db8::81"
    loaded = validate_data(data(service("web", "layer7-http", [(server, 80)], source_address=address.upper())))
    assert loaded.ok, loaded.problems
    assert loaded.config.virtual_services[0].source_address == address


def test_a_source_address_must_be_an_address() -> None:
    found = problems(data(service("web", "layer7-http", [("192.0.2.81", 80)], source_address="vip.example")))
    assert found == ["virtual_services[web].source_address: 'vip.example' is not an IPv4 or IPv6 address"], found


def test_source_address_with_transparent_is_refused_saying_which_to_keep() -> None:
    found = problems(data(service("dicom", "layer7-tcp", [("192.0.2.81", 104)], transparent=True, source_address="192.0.2.10")))
    found = [p for p in found if not p.startswith("warning: ")]  # the transparent service's hint for its real servers
    assert found == [
        "virtual_services[dicom].source_address: source_address and transparent both choose the address connections "
        "to real servers leave from (transparent: the client's own; source_address: this one): keep one of them"
    ], found


@pytest.mark.parametrize("mode", ["layer4-nat", "layer4-snat", "layer4-dr"])
def test_layer4_services_have_no_source_address(mode: str) -> None:
    found = problems(data(service("l4", mode, [("192.0.2.81", None)], source_address="192.0.2.10")))
    assert found == [
        f"virtual_services[l4].source_address: {mode} forwards packets (the real servers see the client, or the "
        "appliance with layer4-snat): remove source_address, or use a Layer 7 mode"
    ], found


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.5"])
def test_a_wildcard_or_multicast_source_is_refused(address: str) -> None:
    server = "192.0.2.81" if "." in address else "2001:db8::81"
    found = problems(data(service("web", "layer7-http", [(server, 80)], source_address=address)))
    assert found == [f"virtual_services[web].source_address: {address} is not an address a connection can leave from: "
                     "name one of the appliance's addresses"], found  # fmt: skip


def test_a_source_of_another_family_than_a_real_server_is_refused() -> None:
    found = problems(
        data(service("web", "layer7-http", [("192.0.2.81", 80), ("pacs.example", 80)], source_address="2001:db8::1"))
    )
    # a DNS name is skipped here (its family is not known); that it needs resolvers is model/resolvers.py's to say
    found = [p for p in found if ".source_address" in p]
    assert found == [
        "virtual_services[web].source_address: real server rs1 (192.0.2.81) is IPv4 and source_address IPv6: a "
        "connection leaves from an address of its own family; choose an IPv4 source_address"
    ], found


# --- one RIP:PORT behind a Layer 7 and a Layer 4 SNAT service ----------------------------------------------------


def warnings_of(*services: dict) -> list[str]:
    loaded = validate_data(data(*services))
    assert loaded.config is not None, loaded.problems
    return [str(p) for p in shared_real_servers(loaded.config)]


def test_one_rip_port_behind_layer7_and_snat_is_a_warning_shown_by_validation() -> None:
    d = data(service("web", "layer7-http", [("10.1.0.5", 8080)]), service("l4", "layer4-snat", [("10.1.0.5", 8080)], port=9000))
    loaded = validate_data(d)
    assert loaded.ok  # a warning, not an error
    assert [str(p) for p in loaded.problems] == [
        "warning: virtual_services[l4].real_servers[rs1]: 10.1.0.5:8080 is also a real server of the Layer 7 service "
        "web (rs1): the guide warns that one RIP:PORT behind both a Layer 7 and a Layer 4 SNAT service conflicts "
        "(their firewall rules meet); give one of them another port on the real server, or use one mode for both"
    ]


def test_another_port_or_address_or_layer4_mode_is_no_conflict() -> None:
    web = service("web", "layer7-http", [("10.1.0.5", 8080)])
    assert warnings_of(web, service("l4", "layer4-snat", [("10.1.0.5", 8081)], port=9000)) == []
    assert warnings_of(web, service("l4", "layer4-snat", [("10.1.0.6", 8080)], port=9000)) == []
    assert warnings_of(web, service("l4", "layer4-nat", [("10.1.0.5", 8080)], port=9000)) == []


def test_a_portless_server_is_reached_on_the_listeners_port() -> None:
    # the SNAT service's server takes the VIP's port 8080 (none of its own); the Layer 7 one is on 8080
    found = warnings_of(service("web", "layer7-tcp", [("10.1.0.5", 8080)], port=104),
                        service("l4", "layer4-snat", [("10.1.0.5", None)], port=8080))  # fmt: skip
    assert len(found) == 1 and "10.1.0.5:8080" in found[0], found
    # a port range on the listener: any port of it counts
    ranged = service("l4", "layer4-snat", [("10.1.0.5", None)], port=8000)
    ranged["listen"] = [{"address": "192.0.2.11", "port": "8000-8100"}]
    found = warnings_of(service("web", "layer7-tcp", [("10.1.0.5", 8080)], port=104), ranged)
    assert len(found) == 1 and "10.1.0.5:8080" in found[0], found


def test_a_backend_only_service_counts_with_the_ports_of_the_services_that_reach_it() -> None:
    parent = service("front", "layer7-tcp", [], port=2762, default_service="pacs")
    parent["real_servers"] = []
    child = service("pacs", "backend-only", [("10.1.0.5", None)], health_check={"type": "connect", "port": 2762})
    found = warnings_of(parent, child, service("l4", "layer4-snat", [("10.1.0.5", 2762)], port=9000))
    assert len(found) == 1 and "Layer 7 service pacs (rs1)" in found[0], found
    assert warnings_of(parent, child, service("l4", "layer4-snat", [("10.1.0.5", 2763)], port=9000)) == []


def test_ipv6_compares_in_its_canonical_form() -> None:
    snat = service("l4", "layer4-snat", [("2001:db8:0::5", 443)], port=9000)
    snat["listen"] = [{"address": "2001:db8::10", "port": 9000}]
    found = warnings_of(service("web", "layer7-http", [("2001:DB8::5", 443)]), snat)
    assert len(found) == 1 and "[2001:db8::5]:443" in found[0], found


def test_pacslb_validate_shows_the_warning_and_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "pacslb.yaml"
    web = service("web", "layer7-http", [("10.1.0.5", 8080)])
    config.write_text(yaml.safe_dump(data(web, service("l4", "layer4-snat", [("10.1.0.5", 8080)], port=9000))))
    result = CliRunner().invoke(app, ["validate", "-c", str(config), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    assert f"{config}: valid" in result.stdout
    assert "warning: virtual_services[l4].real_servers[rs1]: 10.1.0.5:8080 is also a real server of the Layer 7" in result.stderr


def test_a_large_site_is_checked_fast_and_the_warnings_are_bounded() -> None:
    services, per_service = 10, 1000  # 10,000 real servers on each side (the model's limit is 1,000 per service)

    def site(snat_port: int) -> dict:
        web = [service(f"web{j}", "layer7-http", [(f"10.{j}.{i // 250}.{i % 250}", 8080) for i in range(per_service)],
                       port=8000 + j) for j in range(services)]  # fmt: skip
        snat = [service(f"l4_{j}", "layer4-snat", [(f"10.{j}.{i // 250}.{i % 250}", snat_port) for i in range(per_service)],
                        port=9000 + j) for j in range(services)]  # fmt: skip
        loaded = validate_data(data(*web, *snat))
        assert loaded.config is not None, loaded.problems[:3]
        return loaded.config

    config = site(8081)
    started = time.monotonic()
    assert shared_real_servers(config) == []  # 10,000 x 10,000 pairs, none shared
    assert time.monotonic() - started < 2.0
    found = shared_real_servers(site(8080))  # now every one is shared
    assert len(found) == MAX_SHARED_WARNINGS + 1
    assert str(found[-1]) == (
        f"warning: virtual_services: {services * per_service - MAX_SHARED_WARNINGS} more layer4-snat real servers "
        f"share a RIP:PORT with a Layer 7 service (the first {MAX_SHARED_WARNINGS} are named above)"
    )
