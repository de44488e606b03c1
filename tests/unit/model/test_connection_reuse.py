"""connection_reuse: HTTP services choose HAProxy's http-reuse; where no HTTP is seen, anything but the default is refused."""

from pathlib import Path

import pytest

from pacslb.engines.haproxy.backend import transform_backend
from pacslb.engines.haproxy.env import HAProxyEnv
from pacslb.model import validate_data


def service(mode="layer7-http", **extra):
    vs = {"name": "web", "mode": mode, "listen": [{"address": "127.0.0.1", "port": 8080}],
          "real_servers": [{"name": "rs1", "address": "192.0.2.1", "port": 80}], **extra}  # fmt: skip
    return {"version": 1, "virtual_services": [vs]}


def problems(data):
    return [str(p) for p in validate_data(data).problems]


def test_the_default_keeps_safe_reuse():
    loaded = validate_data(service())
    assert loaded.problems == [] or all(p.severity != "error" for p in loaded.problems)
    assert loaded.config.virtual_services[0].connection_reuse == "safe"


@pytest.mark.parametrize("value", ["never", "safe", "aggressive", "always"])
def test_each_value_becomes_the_backends_http_reuse(value):
    loaded = validate_data(service(connection_reuse=value))
    vs = loaded.config.virtual_services[0]
    backend = transform_backend(
        vs, loaded.config, HAProxyEnv(state_dir=Path("/var/lib/pacslb"), base_dir=Path("/etc/pacslb")), []
    )
    assert backend.http_reuse == value


def test_an_unknown_value_names_the_field_and_the_choices():
    found = problems(service(connection_reuse="sometimes"))
    assert any("connection_reuse" in p and "aggressive" in p for p in found), found


@pytest.mark.parametrize("mode", ["layer7-tcp", "layer4-nat"])
def test_modes_without_http_refuse_anything_but_the_default(mode):
    assert not any("connection_reuse" in p for p in problems(service(mode, connection_reuse="safe")))
    found = [p for p in problems(service(mode, connection_reuse="always")) if "connection_reuse" in p]
    assert found and found[0].startswith("virtual_services[web].connection_reuse: "), found


def test_a_backend_only_service_reached_from_tcp_refuses_it():
    data = service("layer7-tcp", real_servers=[], default_service="pool")
    data["virtual_services"].append({"name": "pool", "mode": "backend-only", "connection_reuse": "aggressive",
                                     "real_servers": [{"name": "rs1", "address": "192.0.2.1", "port": 80}]})  # fmt: skip
    assert any(p.startswith("virtual_services[pool].connection_reuse: is reached from a layer7-tcp") for p in problems(data))
