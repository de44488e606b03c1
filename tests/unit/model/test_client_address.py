"""The client's address on every VIP (model/client_address.py): source_address, and one RIP:PORT behind Layer 7 and SNAT."""

from __future__ import annotations

import pytest

from pacslb.model import validate_data


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
    assert found == [
        "virtual_services[web].source_address: real server rs1 (192.0.2.81) is IPv4 and source_address IPv6: a "
        "connection leaves from an address of its own family; choose an IPv4 source_address"
    ], found
