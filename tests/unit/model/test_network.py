"""settings.network (model/network.py): the interface of a single node's VIP addresses, which addresses, and its limits."""

from __future__ import annotations

import pytest

from pacslb.engines.addresses.render import host_prefix, wanted
from pacslb.model import validate_data
from pacslb.model.config import Listener
from pacslb.model.limits import MAX_LISTENERS
from pacslb.model.network import MAX_VIP_ADDRESSES, network_problems, vip_addresses


def data(*addresses: str, interface: str | None = "eth0", **extra) -> dict:
    return {
        "version": 1,
        "settings": {"network": {"interface": interface}} if interface else {},
        "virtual_services": [
            {
                "name": f"vs{i}",
                "mode": "layer7-tcp",
                "listen": [{"address": address, "port": 1000 + i}],
                "real_servers": [{"name": "rs1", "address": "10.1.0.1", "port": 104}],
            }
            for i, address in enumerate(addresses)
        ],
        **extra,
    }


def problems(d: dict) -> list[str]:
    return [str(p) for p in validate_data(d).problems]


def test_the_listeners_addresses_once_each_without_loopback_or_wildcards() -> None:
    loaded = validate_data(data("10.0.0.20", "10.0.0.10", "10.0.0.10", "127.0.0.1", "0.0.0.0", "::", "::1", "fd00::5"))
    assert loaded.ok, loaded.problems
    assert vip_addresses(loaded.config) == ["10.0.0.10", "10.0.0.20", "fd00::5"]
    assert wanted(loaded.config).addresses == ("10.0.0.10/32", "10.0.0.20/32", "fd00::5/128")
    assert wanted(loaded.config).interface == "eth0"


def test_without_an_interface_nothing_is_wanted() -> None:
    loaded = validate_data(data("10.0.0.10", interface=None))
    assert loaded.ok and loaded.config.settings.network.interface is None
    assert wanted(loaded.config).addresses == () and wanted(loaded.config).digest() is None


def test_the_digest_follows_the_addresses_and_the_interface() -> None:
    one = wanted(validate_data(data("10.0.0.10")).config)
    assert one.digest() == wanted(validate_data(data("10.0.0.10")).config).digest()
    assert one.digest() != wanted(validate_data(data("10.0.0.11")).config).digest()
    assert one.digest() != wanted(validate_data(data("10.0.0.10", interface="eth1")).config).digest()


@pytest.mark.parametrize("name", ["", "a-name-of-16-chr", "eth0 up", "eth/0", "..", "eth0\n"])
def test_a_bad_interface_name_is_refused_naming_the_field(name: str) -> None:
    found = problems(data("10.0.0.10", interface=name or None) | {"settings": {"network": {"interface": name}}})
    assert any(p.startswith("settings.network.interface") and "interface name" in p for p in found), found


def test_an_ha_pair_keeps_the_job_of_keepalived() -> None:
    ha = {"role": "primary", "interface": "eth0", "address": "10.0.0.2", "peer_address": "10.0.0.3",
          "floating_ips": [{"address": "10.0.0.10"}]}  # fmt: skip
    found = problems(data("10.0.0.10", ha=ha))
    assert any(p.startswith("settings.network.interface") and "keepalived" in p for p in found), found


def test_the_number_of_addresses_is_bounded() -> None:
    # network_problems itself (pure): validating 4097 listeners whole takes minutes of the clash checks.
    # A service has at most MAX_LISTENERS listeners: the addresses are spread over copies of the service.
    loaded = validate_data(data("10.255.0.1"))
    first = loaded.config.virtual_services[0]
    addresses = [f"10.{i // 250}.{i % 250}.1" for i in range(MAX_VIP_ADDRESSES + 1)]
    per = MAX_LISTENERS

    def spread(count: int) -> list:
        chunks = [addresses[i : i + per] for i in range(0, count, per)]
        return [
            first.model_copy(update={"name": f"vs{n}", "listen": [Listener(address=a, port=104) for a in chunk]})
            for n, chunk in enumerate(chunks)
        ]

    loaded.config.virtual_services = spread(MAX_VIP_ADDRESSES + 1)
    found = [str(p) for p in network_problems(loaded.config)]
    assert len(found) == 1 and found[0].startswith("settings.network.interface") and str(MAX_VIP_ADDRESSES) in found[0]
    loaded.config.virtual_services = spread(MAX_VIP_ADDRESSES)
    assert network_problems(loaded.config) == []


def test_host_prefix() -> None:
    assert host_prefix("192.0.2.1") == "192.0.2.1/32" and host_prefix("2001:db8::1") == "2001:db8::1/128"
