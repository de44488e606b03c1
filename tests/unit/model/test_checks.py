"""Cross-object validation: each problem names its field and says what to do."""

import pytest
import yaml

from pacslb.model import validate_data


def base(**front):
    vs = {
        "name": "front",
        "mode": "layer7-http",
        "listen": [{"address": "127.0.0.1", "port": 8443}],
        "rules": [{"name": "to_api", "match": {"path_begins": ["/api"]}, "use_service": "api"}],
        "default_service": "api",
    }
    vs.update(front)
    api = {"name": "api", "mode": "backend-only", "real_servers": [{"name": "rs1", "address": "192.0.2.1", "port": 80}]}
    return {"version": 1, "virtual_services": [vs, api]}


def problems(data):
    loaded = validate_data(data)
    return [str(p) for p in loaded.problems]


def test_base_is_valid():
    assert problems(base()) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda d: d["virtual_services"].append(dict(d["virtual_services"][1])),
            "virtual_services[api]: the name 'api' is used by more than one virtual service; names must be unique",
        ),
        (
            lambda d: d["virtual_services"][0]["rules"][0].update(use_service="nope"),
            "virtual_services[front].rules[to_api].use_service: no virtual service is called 'nope': "
            "add it as a backend-only service, or fix the name",
        ),
        (
            lambda d: d["virtual_services"][0].update(mode="layer7-tcp"),
            "virtual_services[front].rules[to_api].match: path_begins need HTTP: a layer7-tcp service can match on sni and source only",
        ),
        (
            lambda d: d["virtual_services"][0].update(persistence={"type": "http-cookie"}, mode="layer7-tcp", rules=[]),
            "virtual_services[front].persistence.type: 'http-cookie' persistence needs HTTP: use layer7-http, or source-ip",
        ),
        (
            lambda d: d["virtual_services"].append(
                {
                    "name": "other",
                    "mode": "layer7-http",
                    "listen": [{"address": "0.0.0.0", "port": "8000-9000"}],
                    "default_service": "api",
                }
            ),
            "virtual_services[other].listen[0]: 0.0.0.0 port 8443 is already taken by virtual_services[front].listen[0]: "
            "choose another address or port",
        ),
        (
            lambda d: d["virtual_services"][1].update(persistence={"type": "ssl-session-id"}),
            "virtual_services[api].persistence.type: is reached from a layer7-http service, where TLS is already decrypted: "
            "use source-ip or http-cookie",
        ),
        (
            lambda d: d["virtual_services"].append(
                {"name": "unused", "mode": "backend-only", "real_servers": [{"name": "a", "address": "192.0.2.9", "port": 1}]}
            ),
            "virtual_services[unused]: nothing reaches this backend-only service: name it in a rule's use_service "
            "or a default_service, or remove it",
        ),
        (
            lambda d: d["virtual_services"][1].update(
                mode="layer4-dr",
                listen=[{"address": "127.0.0.2", "port": 80}],
                real_servers=[{"name": "a", "address": "192.0.2.9", "port": 81}],
            ),
            "virtual_services[front].rules[to_api].use_service: 'api' is a layer4-dr service; rules can send traffic only to backend-only services",
        ),
    ],
)
def test_problem_is_reported(change, expected):
    data = base()
    change(data)
    assert expected in problems(data)


def test_headers_on_a_backend_reached_from_tcp_are_refused():
    data = base(mode="layer7-tcp", rules=[])
    data["virtual_services"][1]["headers"] = {"request": [{"action": "set", "name": "X-A", "value": "1"}]}
    assert (
        "virtual_services[api].headers: is reached from a layer7-tcp service, which does not see HTTP headers: remove headers"
        in problems(data)
    )


def test_redirect_port_is_one_listener_per_address():
    data = base(
        listen=[{"address": "127.0.0.1", "port": 8443}, {"address": "127.0.0.1", "port": 9443}],
        tls={"certificates": ["x.pem"], "http_redirect_port": 8080},
    )
    assert problems(data) == []  # files are not checked without base_dir


def test_dr_cannot_translate_ports():
    data = {
        "version": 1,
        "virtual_services": [
            {
                "name": "dr",
                "mode": "layer4-dr",
                "listen": [{"address": "127.0.0.1", "port": 104}],
                "real_servers": [{"name": "a", "address": "192.0.2.9", "port": 11112}],
            }
        ],
    }
    assert problems(data) == [
        "virtual_services[dr].real_servers[a].port: direct routing cannot translate ports: remove port, or make it equal to the VIP port"
    ]


def test_all_problems_not_only_the_first():
    text = """
version: 1
virtual_services:
  - {name: a, mode: layer7-http, listen: [{address: 127.0.0.1, port: 80}]}
  - {name: b, mode: backend-only, real_servers: [{name: x, address: 192.0.2.1, port: 80}]}
  - {name: c, mode: layer4-nat, listen: [{address: 127.0.0.1, port: 80}], real_servers: [{name: y, address: 192.0.2.2}], tls: {certificates: [a.pem]}}
"""
    found = problems(yaml.safe_load(text))
    assert len(found) >= 4, found
