"""`pacslb verify` against the True PACS template run in front of its simulated services.

Every one of the 29 rules of VIP 2, 3 and 4 (and each VIP's default route, and VIP 1, 5 and 6) is sent a
request through the real HAProxy, and the report names the backend-only service and real server that
answered; a rule added behind an earlier one that takes all its requests is flagged as shadowed, and
verify exits 1 until the configuration without it is applied.
"""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from pacslb.templates.true_pacs import SERVICES
from support.appliance import Appliance
from support.first_admin import own_admin_password
from support.net import free_port
from support.true_pacs import true_pacs_appliance
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VIP = "127.0.0.1"
SERVICES_LIFETIME = 600.0  # seconds: the simulated services end by themselves after this, whatever happens
SHADOWED = {"name": "inference_beta", "match": {"path_begins": ["/inference/beta"]}, "use_service": "WFC_xe_443"}


def own_ports(text: str, agent_port: int) -> str:
    """The configuration with an agent port of its own (other sessions' appliances may hold the default),
    and the management API on a free port of 127.0.0.1."""
    data = yaml.safe_load(text)
    settings = data.setdefault("settings", {})
    settings.setdefault("health", {})["agent_port"] = agent_port
    settings["management"] = {**settings.get("management", {}), "address": "127.0.0.1", "port": 0}
    return yaml.safe_dump(data, sort_keys=False)


def with_shadowed_rule(text: str) -> str:
    """The True PACS configuration with a rule on VIP 2 that its earlier `inference` rule shadows."""
    data = yaml.safe_load(text)
    vip2 = next(vs for vs in data["virtual_services"] if vs["name"] == "WFC_443")
    vip2["rules"].append(SHADOWED)
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    def prepare(plan) -> str:
        clean = own_ports(plan.config_file.read_text(), free_port())
        plan.config_file.write_text(with_shadowed_rule(clean))
        return clean

    with true_pacs_appliance(tmp_path_factory.mktemp("verify"), "pacslb-vf-", VIP, SERVICES_LIFETIME, prepare) as running:
        yield running.appliance, running.plan, running.prepared


def verify(appliance: Appliance, *args: str) -> tuple[int, dict]:
    done = appliance.cli("verify", "--json", *args, timeout=180)
    assert done.stdout.startswith("{"), (done.returncode, done.stdout, done.stderr)
    return done.returncode, json.loads(done.stdout)


def test_every_route_reaches_its_service_and_a_shadowed_rule_fails_verify(pacs):
    appliance, plan, clean = pacs
    # every health check has passed (HTTP/1.1 with a Host, VIP 1's connect): the answers below come from servers
    # that HAProxy's own checks hold up, not from servers not yet checked
    wait_until(lambda: every_check_passed(appliance), 60, what="every real server's check to pass")
    code, report = verify(appliance)
    routes = {(r["virtual_service"], r["rule"]): r for r in report["routes"]}

    # the shadowed rule is flagged, without a request, naming the rule that takes its requests
    shadowed = routes[("WFC_443", "inference_beta")]
    assert shadowed["verdict"] == "shadowed" and "inference" in shadowed["problem"], shadowed
    assert report["shadowed_rules"] == {"WFC_443": {"inference_beta": "inference"}}
    assert code == 1 and report["ok"] is False

    # each of the 29 backend-only services is reached by its rule, and a real server of it answered
    backend_only = [s for s in SERVICES if s.mode == "backend-only"]
    assert len(backend_only) == 29
    servers = {s.name: {rs.name for rs in s.real_servers} for s in plan_config(plan).virtual_services}
    for spec in backend_only:
        (route,) = [r for (vip, rule), r in routes.items() if vip == spec.parent and rule == spec.word.lower()]
        assert route["verdict"] == "ok", route
        assert route["service"] == spec.name and route["real_server"] in servers[spec.name], route
        assert route["status"] == "200" and route["time_ms"] > 0, route

    # the default routes and the TCP VIPs
    for vip in ("WFC_443", "WFC_http", "WFC_10443", "WFC_RMQAMQP", "WFM_karaf_Group", "SR_https_vs"):
        assert routes[(vip, "(default)")]["verdict"] == "ok", routes[(vip, "(default)")]
    assert routes[("WFC_RMQAMQP", "(default)")]["status"] == "AMQP Connection.Start"
    assert routes[("WFC_443", "(default)")]["service"] == "WFC_xe_443"
    assert report["counts"] == {"ok": 29 + 6, "shadowed": 1}

    # the same for a person
    text = appliance.cli("verify")
    assert text.returncode == 1 and "SHADOWED   inference_beta" in text.stdout and "VERIFY FAILED" in text.stdout, text.stdout

    # without the shadowed rule, verify passes
    plan.config_file.write_text(clean)
    applied = appliance.cli("apply", "-c", str(plan.config_file), timeout=120)
    assert applied.returncode == 0, applied.stderr
    code, report = verify(appliance)
    assert code == 0 and report["ok"] is True and report["counts"] == {"ok": 35}, [
        (r["virtual_service"], r["rule"], r["status"], r.get("problem")) for r in report["routes"] if r["verdict"] != "ok"
    ]

    # a route whose real servers are all halted fails verify, naming what answered instead
    for rs in servers["WFC_inference_80"]:
        halted = appliance.cli("server", "halt", "WFC_inference_80", rs)
        assert halted.returncode == 0, halted.stderr
    code, report = verify(appliance)
    failed = [r for r in report["routes"] if r["verdict"] != "ok"]
    assert code == 1 and [(r["virtual_service"], r["rule"], r["status"]) for r in failed] == [("WFC_http", "inference", "503")]
    assert failed[0]["real_server"] is None and "no real server of WFC_inference_80" in failed[0]["problem"], failed
    for rs in servers["WFC_inference_80"]:
        assert appliance.cli("server", "online", "WFC_inference_80", rs).returncode == 0
    wait_until(
        lambda: all(appliance.server(appliance.status(), "WFC_inference_80", rs)["state"] == "UP" for rs in servers["WFC_inference_80"]),
        60, what="WFC_inference_80's servers UP again",
    )  # fmt: skip

    # the same through the management API and the WebUI page
    state = appliance.state_dir
    wait_until((state / "management-url").exists, 30, what="the management API to listen")
    url = (state / "management-url").read_text().strip().rstrip("/")
    with httpx.Client(base_url=url, verify=False, timeout=120) as admin:
        login = admin.post("/api/v1/login", json={"username": "admin", "password": own_admin_password(url, state)})
        assert login.status_code == 200, login.text
        admin.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        answer = admin.post("/api/v1/verify")
        assert answer.status_code == 200 and answer.json()["counts"] == {"ok": 35}, answer.text
        page = admin.post("/verify")
        assert page.status_code == 200 and "Every route answered as expected" in page.text and "WFC_xeui_10443" in page.text


def every_check_passed(appliance: Appliance) -> bool:
    outcomes = [rs["check"]["outcome"] for vs in appliance.status()["virtual_services"] for rs in vs["real_servers"]]
    return bool(outcomes) and all(o in ("passed", "none") for o in outcomes)


def plan_config(plan):
    from pacslb.model import load_text

    return load_text(plan.config_file.read_text()).config
