"""The spec: address scheme, JSON form, validation."""

import json

import pytest

from pacslb.demo.spec import (
    DemoSpec,
    ReplicaSpec,
    ServiceSpec,
    SpecError,
    TlsSpec,
    demo_spec_for,
    load_spec,
    replica_address,
    spec_from_json,
)


def test_address_scheme():
    assert replica_address(0, 0) == "127.0.10.1"
    assert replica_address(0, 1) == "127.0.10.2"
    assert replica_address(5, 2) == "127.0.15.3"
    assert replica_address(1, 0, first_subnet=100, second_octet=7) == "127.7.101.1"
    with pytest.raises(SpecError):
        replica_address(246, 0)  # 10 + 246 > 255
    with pytest.raises(SpecError):
        replica_address(0, 254)


def test_demo_spec_for_is_deterministic():
    services = [
        ("WFC_RMQAMQP", 8081, "amqp", None),
        ("WFC_inference_443", 443, "http", "/tls/all.pem"),
        ("WFC_inference_80", 80, "http"),
        ("SR_https_vs", 3080, "http", ("/tls/c.pem", "/tls/k.pem")),
    ]
    spec = demo_spec_for(services)
    assert spec == demo_spec_for(services)
    assert [s.name for s in spec.services] == [s[0] for s in services]
    amqp_svc = spec.service("WFC_RMQAMQP")
    assert amqp_svc.kind == "amqp" and amqp_svc.tls is None
    assert [(r.name, r.address) for r in amqp_svc.replicas] == [
        ("r1", "127.0.10.1"),
        ("r2", "127.0.10.2"),
    ]
    inf = spec.service("WFC_inference_443")
    assert inf.tls == TlsSpec("/tls/all.pem", None)
    assert [r.address for r in inf.replicas] == ["127.0.11.1", "127.0.11.2"]
    assert spec.service("WFC_inference_80").tls is None
    assert spec.service("SR_https_vs").tls == TlsSpec("/tls/c.pem", "/tls/k.pem")
    assert spec.addresses()[:3] == ["127.0.10.1", "127.0.10.2", "127.0.11.1"]
    assert len(spec.addresses()) == 8
    three = demo_spec_for([("a", 1, "http")], replicas=3)
    assert [r.name for r in three.services[0].replicas] == ["r1", "r2", "r3"]


def test_true_pacs_sized_spec_fits():
    names = [(f"svc{i}", 443, "http") for i in range(32)]
    spec = demo_spec_for(names)
    assert spec.services[-1].replicas[-1].address == "127.0.41.2"


def test_json_roundtrip(tmp_path):
    spec = demo_spec_for(
        [("web", 8443, "http", TlsSpec("/c.pem", "/k.pem")), ("mq", 8081, "amqp")],
        control_port=9999,
    )
    path = spec.write(tmp_path / "spec.json")
    assert load_spec(path) == spec
    data = json.loads(path.read_text())
    assert data["control"] == {"host": "127.0.0.1", "port": 9999}
    assert data["services"][0]["tls"] == {"cert": "/c.pem", "key": "/k.pem"}


def test_json_forms_of_tls_and_replica_override():
    spec = spec_from_json(
        {
            "services": [
                {
                    "name": "web",
                    "port": 443,
                    "tls": "/all.pem",
                    "replicas": [
                        {"name": "a", "address": "127.0.0.5"},
                        {"name": "b", "address": "127.0.0.6", "tls": {"cert": "/b.pem"}},
                    ],
                }
            ]
        }
    )
    web = spec.services[0]
    assert web.kind == "http"
    assert web.tls_for(web.replicas[0]) == TlsSpec("/all.pem")
    assert web.tls_for(web.replicas[1]) == TlsSpec("/b.pem")


@pytest.mark.parametrize(
    "data, match",
    [
        ({"services": [{"name": "a", "port": 1, "replicas": []}]}, r"services\[0\].replicas"),
        ({"services": [{"name": "a", "port": 1, "kind": "ftp", "replicas": [{"name": "r", "address": "127.0.0.1"}]}]}, "kind"),
        ({"services": [{"name": "a", "port": 70000, "replicas": [{"name": "r", "address": "127.0.0.1"}]}]}, "port"),
        ({"services": [{"name": "a", "port": 1, "replicas": [{"name": "r", "address": "nope"}]}]}, "address"),
        (
            {
                "services": [
                    {
                        "name": "a",
                        "port": 1,
                        "replicas": [{"name": "r", "address": "127.0.0.1"}, {"name": "r", "address": "127.0.0.2"}],
                    }
                ]
            },
            "duplicate replica",
        ),
        (
            {
                "services": [
                    {"name": "a", "port": 1, "replicas": [{"name": "r", "address": "127.0.0.1"}]},
                    {"name": "b", "port": 1, "replicas": [{"name": "r", "address": "127.0.0.1"}]},
                ]
            },
            "already used",
        ),
        (
            {
                "services": [
                    {"name": "a", "port": 1, "replicas": [{"name": "r", "address": "127.0.0.1"}]},
                    {"name": "a", "port": 2, "replicas": [{"name": "r", "address": "127.0.0.1"}]},
                ]
            },
            "duplicate service",
        ),
        ({"services": [{"name": "a/b", "port": 1, "replicas": [{"name": "r", "address": "127.0.0.1"}]}]}, "name"),
        (
            {"services": [{"name": "a", "port": 1, "tls": {"key": "k"}, "replicas": [{"name": "r", "address": "127.0.0.1"}]}]},
            r"tls.cert",
        ),
        ({"services": [{"name": "a", "port": 1, "replicas": [{"name": "r", "address": "127.0.0.1"}], "extra": 1}]}, "unknown"),
        ({"services": "x"}, "services"),
        ({"services": [], "control": {"port": "x"}}, "control.port"),
    ],
)
def test_invalid_specs(data, match):
    with pytest.raises(SpecError, match=match):
        spec_from_json(data)


def test_port_zero_may_repeat_on_one_address():
    spec = DemoSpec(
        services=(
            ServiceSpec("a", 0, replicas=(ReplicaSpec("r1", "127.0.0.1"),)),
            ServiceSpec("b", 0, replicas=(ReplicaSpec("r1", "127.0.0.1"),)),
        )
    )
    assert spec.validate() is spec


def test_the_demo_moves_its_agent_port_when_334_is_taken(monkeypatch) -> None:
    """Another appliance on the machine holds 334: the demo takes the next free privileged port (not a VIP move)."""
    from pacslb.api import state
    from pacslb.cli import demo_command

    taken = {334, 335}
    monkeypatch.setattr(state, "port_is_free", lambda address, port: port not in taken)
    assert demo_command._agent_port() == 336
    taken.clear()
    assert demo_command._agent_port() is None  # free: the template's default stays
