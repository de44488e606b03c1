"""The True PACS template: valid, and faithful to the guide's VIP table row by row."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from pacslb.model import Config, Mode, load_text
from pacslb.templates import TEMPLATES, TemplateOptions
from pacslb.templates.true_pacs import DEFAULT_SERVICES, SERVICES, TruePacsParams, render_true_pacs

GUIDE_TABLE = Path(__file__).resolve().parents[2] / "data" / "true-pacs-vips.csv"  # see tests/data/README.md


def _rows() -> list[dict[str, str]]:
    with GUIDE_TABLE.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _config(params: TruePacsParams | None = None) -> Config:
    loaded = load_text(render_true_pacs(params))
    assert loaded.ok, [str(p) for p in loaded.problems]
    assert loaded.problems == []  # no file checks here (no base_dir): nothing to warn about either
    return loaded.config


def _reachers(config: Config, name: str) -> set[str]:
    """The virtual services whose rules or default_service send traffic to `name`."""
    return {
        vs.name for vs in config.virtual_services if vs.default_service == name or any(r.use_service == name for r in vs.rules)
    }


MODES = {"Layer 7 Reverse Proxy": {Mode.LAYER7_HTTP, Mode.LAYER7_TCP}, "Backend only": {Mode.BACKEND_ONLY}}
PERSISTENCE = {"None": "none", "Source IP": "source-ip"}


@pytest.mark.parametrize("offset", [0, 10000])
def test_every_row_of_the_guide_table(offset: int):
    rows = _rows()
    config = _config(TruePacsParams(port_offset=offset))
    assert [vs.name for vs in config.virtual_services] == [r["name"] for r in rows]
    assert len(rows) == 35 and sum(r["mode"] == "Backend only" for r in rows) == 29
    for row in rows:
        vs = config.service(row["name"])
        where = f"{row['ref']} {row['name']}"
        assert vs is not None, where
        assert vs.description and vs.description.startswith(row["ref"] + ":"), where
        assert vs.mode in MODES[row["mode"]], where
        if row["port"]:
            assert [(lis.port.first, lis.port.last) for lis in vs.listen] == [(int(row["port"]) + offset,) * 2], where
        else:
            assert vs.listen == [], where
        assert vs.persistence.type == PERSISTENCE[row["persistence"]], where
        check = vs.health_check
        if row["health_check"] == "Connect to Port":
            assert check.type == "connect", where
        elif row["health_check"] == "No checks, Always on":
            assert check.type == "none", where
        else:
            assert row["health_check"] == "HTTPS (GET)", where
            assert (check.type, check.method) == ("https", "GET"), where
        if row["parent"]:
            assert _reachers(config, row["name"]) == {row["parent"]}, where
            parent = config.service(row["parent"])
            [rule] = [r for r in parent.rules if r.use_service == row["name"]]
            word = row["name"].split("_", 1)[1].rsplit("_", 1)[0]
            assert rule.match.path_begins == ["/" + word.lower()], where
        else:
            assert _reachers(config, row["name"]) == set(), where


def test_ports_follow_the_guide():
    config = _config()
    servers = {vs.name: {rs.port for rs in vs.real_servers} for vs in config.virtual_services}
    encrypted = {vs.name: {rs.encrypted for rs in vs.real_servers} for vs in config.virtual_services}
    for vs in config.virtual_services:
        if vs.name.endswith("_443") and vs.mode is Mode.BACKEND_ONLY:
            assert servers[vs.name] == {443} and encrypted[vs.name] == {True}, vs.name
        elif vs.name.endswith("_80"):
            assert servers[vs.name] == {80} and encrypted[vs.name] == {False}, vs.name
        elif vs.name.endswith("_10443") and vs.mode is Mode.BACKEND_ONLY:
            assert servers[vs.name] == {10443} and encrypted[vs.name] == {True}, vs.name
    assert servers["WFC_RMQAMQP"] == {8081}
    assert servers["WFM_karaf_Group"] == {9094}
    assert servers["SR_https_vs"] == {3080}
    for name in ("WFC_443", "WFC_http", "WFC_10443"):
        assert servers[name] == set() and config.service(name).default_service == DEFAULT_SERVICES[name]
    assert config.service("WFC_443").tls is not None
    assert config.service("WFC_443").mode is Mode.LAYER7_HTTP
    assert config.service("WFC_RMQAMQP").mode is Mode.LAYER7_TCP


def test_two_placeholder_servers_per_service_in_documentation_ranges():
    import ipaddress

    docs = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
    config = _config()
    vips = {lis.address for vs in config.virtual_services for lis in vs.listen}
    assert vips == {"192.0.2.10"}
    for vs in config.virtual_services:
        if vs.mode is Mode.BACKEND_ONLY or not vs.rules:
            assert len(vs.real_servers) == 2, vs.name
        for rs in vs.real_servers:
            assert any(ipaddress.ip_address(rs.address) in n for n in docs), (vs.name, rs.address)


def test_long_timeouts():
    timeouts = _config().settings.timeouts
    assert {str(timeouts.client), str(timeouts.server), str(timeouts.tunnel)} == {"12h"}


def test_rule_prefixes_do_not_shadow_each_other():
    """First match wins: no prefix of a service may begin another one of the same VIP."""
    for vs in _config().virtual_services:
        prefixes = [p for r in vs.rules for p in r.match.path_begins]
        for a in prefixes:
            for b in prefixes:
                assert a == b or not b.startswith(a), (vs.name, a, b)


def test_tls_to_servers_is_always_stated():
    """Wherever the load balancer speaks TLS to real servers (traffic or checks), verify is written out."""
    text = render_true_pacs()
    data = yaml.safe_load(text)
    for raw in data["virtual_services"]:
        tls = any(rs.get("encrypted") for rs in raw.get("real_servers", [])) or raw["health_check"]["type"] == "https"
        assert ("server_tls" in raw) == tls, raw["name"]
        if tls:
            assert raw["server_tls"] == {"verify": "none"}
    with_ca = yaml.safe_load(render_true_pacs(TruePacsParams(server_ca_file="certs/demo-ca.pem")))
    for raw in with_ca["virtual_services"]:
        if "server_tls" in raw:
            assert raw["server_tls"] == {"verify": "required", "ca_file": "certs/demo-ca.pem"}


def test_vip3_checks_https_on_443_by_default_or_plain_http():
    config = _config()
    for vs in config.virtual_services:
        if vs.name.endswith("_80"):
            assert (vs.health_check.type, vs.health_check.port) == ("https", 443)
    config = _config(TruePacsParams(wfc_http_check_port=None))
    for vs in config.virtual_services:
        if vs.name.endswith("_80"):
            assert (vs.health_check.type, vs.health_check.port) == ("http", None)
            assert vs.server_tls.ca_file is None


def test_comments_mark_what_the_site_fills_in():
    text = render_true_pacs()
    lines = text.splitlines()
    assert "SITE-SPECIFIC" in text and "PLACEHOLDER" in text and "TLS TO SERVERS" in text
    assert all("SITE-SPECIFIC" in lis for lis in lines if lis.strip().startswith(("rules:", "default_service:")))
    assert all("PLACEHOLDER" in lis for lis in lines if "address:" in lis)
    assert all("PLACEHOLDER" in lis for lis in lines if "certificates:" in lis and not lis.lstrip().startswith("#"))
    assert "amqp" in text  # the planned AMQP check is announced on VIP 1


def test_demo_parameters_replace_placeholders():
    """What the demo does: simulated servers on loopback, a CA, ports above 1024."""
    servers = {
        s.name: [(f"127.0.{i}.1", 20000 + i), (f"127.0.{i}.2", None)]
        for i, s in enumerate(SERVICES, start=1)
        if s.server_port is not None
    }
    params = TruePacsParams(
        vip_address="127.0.0.1",
        port_offset=10000,
        real_servers=servers,
        certificate="certs/vip.pem",
        server_ca_file="certs/ca.pem",
        check_path="/health",
        wfc_http_check_port=18443,
    )
    text = render_true_pacs(params)
    assert "PLACEHOLDER" not in text and "TLS TO SERVERS" not in text
    config = _config(params)
    for name, given in servers.items():
        vs = config.service(name)
        default_port = next(s.server_port for s in SERVICES if s.name == name)
        assert [(rs.address, rs.port) for rs in vs.real_servers] == [(given[0][0], given[0][1]), (given[1][0], default_port)]
    assert config.service("WFC_443").listen[0].port.first == 18443
    assert config.service("WFC_443").tls.certificates == ["certs/vip.pem"]
    assert config.service("WFC_inference_80").health_check.port == 18443
    assert config.service("WFC_inference_443").health_check.path == "/health"


def test_the_agent_port_is_written_only_when_given():
    """The demo moves the health-check agent port when another appliance holds 334 (cli/demo_command.py)."""
    assert "agent_port" not in render_true_pacs(TruePacsParams())
    assert _config(TruePacsParams()).settings.health.agent_port == 334
    assert _config(TruePacsParams(agent_port=335)).settings.health.agent_port == 335


def test_awkward_values_are_quoted():
    params = TruePacsParams(vip_address="::1", server_ca_file="certs/ca #1.pem", certificate="certs/a, b.pem")
    config = _config(params)
    assert config.service("WFC_443").listen[0].address == "::1"
    assert config.service("WFC_443").tls.certificates == ["certs/a, b.pem"]
    assert config.service("WFC_inference_443").server_tls.ca_file == "certs/ca #1.pem"


@pytest.mark.parametrize(
    "params, message",
    [
        (TruePacsParams(port_offset=60000), "ports are 1 to 65535"),
        (TruePacsParams(port_offset=-80), "ports are 1 to 65535"),
        (TruePacsParams(vip_address="pacs"), "not an IP address"),
        (TruePacsParams(real_servers={"WFC_443": [("127.0.0.1", 1)]}), "not a True PACS service with real servers"),
        (TruePacsParams(real_servers={"WFC_xe_80": []}), "at least one"),
        (TruePacsParams(real_servers={"WFC_xe_80": [("127.0.0.1", 70000)]}), "out of range"),
        (TruePacsParams(check_path="health"), "must begin with '/'"),
        (TruePacsParams(agent_port=0), "agent_port 0 is out of range"),
    ],
)
def test_unusable_parameters_are_refused(params: TruePacsParams, message: str):
    with pytest.raises(ValueError, match=message):
        render_true_pacs(params)


def test_rendering_is_deterministic_and_registered():
    assert render_true_pacs() == render_true_pacs()
    template = TEMPLATES["true-pacs"]
    assert template.render(TemplateOptions(vip_address="192.0.2.10")) == render_true_pacs()
    assert template.placeholder_certificates == ("certs/true-pacs-placeholder.pem",)
