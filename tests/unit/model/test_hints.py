"""'Did you mean' hints come only from the fields valid where the unknown key was written."""

import pytest

from pacslb.model import load_text
from pacslb.model.config import Config, HTTPCheck, RealServer, Settings, VirtualService
from pacslb.model.ha import HA
from pacslb.model.problems import fields_at

BASE = """
version: 1
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{address: 127.0.0.1, port: 8080}]
    real_servers:
      - {name: rs1, address: 192.0.2.1, port: 80}
"""


def _lines(text: str) -> list[str]:
    loaded = load_text(text)
    assert not loaded.ok
    return [str(p) for p in loaded.problems]


@pytest.mark.parametrize(
    "text, expected",
    [
        # a field of `ha` (floating_ips) is no hint under a virtual service; source_address is one of its own
        (BASE + "    floating_ipx: 10.0.0.1\n", "virtual_services[web].floating_ipx: unknown field 'floating_ipx'; remove it"),
        (
            BASE + "    source_adress: 10.0.0.1\n",
            "virtual_services[web].source_adress: unknown field 'source_adress'; did you mean 'source_address'?",
        ),
        (
            BASE + "    schedular: roundrobin\n",
            "virtual_services[web].schedular: unknown field 'schedular'; did you mean 'scheduler'?",
        ),
        (
            BASE.replace("port: 80}", "port: 80, wieght: 3}"),
            "virtual_services[web].real_servers[rs1].wieght: unknown field 'wieght'; did you mean 'weight'?",
        ),
        (
            BASE.replace("port: 80}", "port: 80, adress: 192.0.2.9}"),
            "virtual_services[web].real_servers[rs1].adress: unknown field 'adress'; did you mean 'address'?",
        ),
        (BASE + "settings: {retrys: 2}\n", "settings.retrys: unknown field 'retrys'; did you mean 'retries'?"),
        (BASE + "settings: {managment: {}}\n", "settings.managment: unknown field 'managment'; did you mean 'management'?"),
        (
            BASE + "ha: {role: primary, address: 10.0.0.1, peer_adress: 10.0.0.2, interface: eth0}\n",
            "ha.peer_adress: unknown field 'peer_adress'; did you mean 'peer_address'?",
        ),
        # inside a tagged union (health_check.type decides the model)
        (
            BASE + "    health_check: {type: http, intervall: 2s}\n",
            "virtual_services[web].health_check.intervall: unknown field 'intervall'; did you mean 'interval'?",
        ),
    ],
)
def test_hint_names_a_field_of_that_place(text, expected):
    assert expected in _lines(text)


def test_fields_at_walks_lists_unions_and_optionals():
    assert fields_at(("virtual_services", 0), Config) == set(VirtualService.model_fields)
    assert fields_at(("virtual_services", 0, "real_servers", 2), Config) == set(RealServer.model_fields)
    assert fields_at(("virtual_services", 0, "health_check", "http"), Config) == set(HTTPCheck.model_fields)
    assert fields_at(("settings",), Config) == set(Settings.model_fields)
    assert fields_at(("ha",), Config) == set(HA.model_fields)
    assert fields_at((), Config) == set(Config.model_fields)


def test_fields_at_gives_up_rather_than_guessing():
    assert fields_at(("virtual_services", 0, "no_such_field"), Config) is None
    assert fields_at(("virtual_services", 0, "health_check", "no-such-type"), Config) is None


def test_a_virtual_service_is_not_offered_a_real_server_field():
    (line,) = _lines(BASE + "    adress: 10.0.0.1\n")
    assert line.startswith("virtual_services[web].adress: unknown field 'adress'")
    assert "'address'" not in line  # `address` is a field of real servers and of ha, not of a virtual service
