"""A property-based run of the OpenAPI document against the running management API (schemathesis 4 and
hypothesis): no request, however odd, gets a 5xx, and every answer has a status, content type and schema the
document declares (every check, negative data included, runs in process: test_openapi_contract.py). Against a real appliance (HAProxy running), as admin
(an API key), so that writes really go through: drain / halt / online and weights, rules, health checks,
rollbacks, certificates, users.

Path parameters are drawn from the real names (the service `web`, its real servers, existing revisions)
as often as from random text, so that requests reach the handlers and not only their 404s.

Left out on purpose: the support bundle (slow: commands; see SLOW), and the operations whose bodies carry addresses (the whole configuration, virtual
services, real servers): a generated address outside loopback would make HAProxy send health checks
(or DNS queries) off this machine, which the tests must never do. They get their own run, in process,
against a stand-in that validates every configuration as the appliance does but starts no engine
(test_configuration_writes_never_answer_5xx_in_process), and the other API tests apply them for real.

Bounded: EXAMPLES per operation, which keeps the run within about two minutes on a loaded 2-core machine.
"""

from __future__ import annotations

import warnings

import httpx
import pytest
import schemathesis
from api_support import start_management_appliance
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from support.net import loopback_host
from support.realservers import TinyHTTPServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES = 12
# the checks of the OpenAPI contract that judge an answer alone (the rest run in process: test_openapi_contract.py)
CONTRACT = [status_code_conformance, content_type_conformance, response_schema_conformance]
EXCLUDED = {
    ("PUT", "/api/v1/config"),
    ("POST", "/api/v1/virtual-services"),
    ("PUT", "/api/v1/virtual-services/{service}"),
    ("POST", "/api/v1/virtual-services/{service}/real-servers"),
    ("PUT", "/api/v1/virtual-services/{service}/real-servers/{real_server}"),
}
# Left out of both runs: runs 9 commands (haproxy -vv, nft list ruleset, ip ...), about 5 s a call here; its one
# parameter (hours) is bounded by the schema and tested in tests/e2e/test_backup_restore.py and tests/unit/backup
SLOW = {("POST", "/api/v1/support-bundle")}
REAL_NAMES = {
    "service": ["web", "secure"],
    "real_server": ["rs1", "rs2"],
    "rule": ["images"],
    "name": ["site"],
    "username": ["admin", "viewer"],
}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    servers = [TinyHTTPServer(f"rs{i}", loopback_host(220 + i)).start() for i in (1, 2)]
    appliance = None
    try:
        appliance, info = start_management_appliance(tmp, servers)
        with httpx.Client(base_url=info["url"], verify=False, timeout=60) as client:
            login = client.post("/api/v1/login", json={"username": "admin", "password": info["password"]})
            assert login.status_code == 200
            client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            assert client.post("/api/v1/users", json={"username": "viewer", "password": "viewer-pass-12",
                                                       "role": "viewer"}).status_code == 200  # fmt: skip
            # the key's owner is an admin of its own, out of REAL_NAMES: the fuzzer may make another admin and then
            # delete "admin" (a CI run did, and the rest of the run met 401), but never guesses this name
            assert client.post("/api/v1/users", json={"username": "fuzz-key-owner", "password": "fuzz-owner-pass-12",
                                                       "role": "admin", "must_change_password": False}).status_code == 200  # fmt: skip
            token = client.post("/api/v1/users/fuzz-key-owner/api-keys", json={"name": "fuzz"}).json()["token"]
            document = client.get("/api/openapi.json").json()
        yield info["url"], token, document, appliance
    finally:
        if appliance is not None:
            appliance.shut_down()
        for server in servers:
            server.stop()


def test_no_request_gets_a_5xx(target):
    url, token, document, appliance = target
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    ran: list[str] = []
    writes_applied: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in EXCLUDED or key in SLOW:
            continue
        ran.append(f"{key[0]} {key[1]}")

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])  # fmt: skip
        @given(case=operation.as_strategy(), data=st.data())
        def run(case, data) -> None:
            for name in list(case.path_parameters or {}):
                if name in REAL_NAMES and data.draw(st.booleans()):
                    case.path_parameters[name] = data.draw(st.sampled_from(REAL_NAMES[name]))
                elif name == "rev_id" and data.draw(st.booleans()):
                    case.path_parameters[name] = data.draw(st.integers(1, 6))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # verify=False: the appliance's self-signed certificate
                response = case.call(base_url=url, headers=headers, verify=False, timeout=60)
            # a test alert is sent, not written: it does not count as a write that applied
            if case.method != "GET" and response.status_code == 200 and case.path != "/api/v1/alerts/test":
                writes_applied.add(f"{case.method} {operation.path}")  # noqa: B023 - run() runs in this iteration
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r:.300} -> {response.status_code} "
                                f"{response.text[:300]}")  # fmt: skip
            try:  # the real appliance keeps the document too: a declared status, content type and schema
                case.validate_response(response, checks=CONTRACT, headers=headers)
            except FailureGroup as exc:
                failures.append(f"{case.method} {operation.path}: {str(exc)[:1200]}")  # noqa: B023

        run()
    assert len(ran) >= 35, ran
    assert not failures, "\n".join(failures[:20])
    # writes really went through the apply path, not only their refusals. The bodies are random (derandomize is
    # off) and most are refused as they should be: 3 or more kinds of write answered 200 in every run (4 to 7 seen)
    assert len(writes_applied) >= 3, writes_applied
    print(f"{len(ran)} operations, {EXAMPLES} examples each; writes applied: {sorted(writes_applied)}")
    # the appliance still serves after all of it
    with httpx.Client(base_url=url, verify=False, timeout=30) as client:
        assert client.get("/api/v1/health").status_code == 200
        assert client.get("/api/v1/revisions", headers=headers).status_code in (200, 403)
    assert appliance.process is not None and appliance.process.poll() is None


# --- the configuration writes, in process --------------------------------------------------------------


def test_configuration_writes_never_answer_5xx_in_process(tmp_path):
    """The operations left out above (their bodies carry addresses), run in process against the real change
    front door with no engine: it validates every configuration exactly as the appliance does, records
    revisions, and sends no traffic anywhere."""
    import asyncio
    from pathlib import Path as _Path

    from fastapi.testclient import TestClient

    from pacslb.api.app import create_management_app
    from pacslb.api.auth import AuthService
    from pacslb.change.service import Changes, Running
    from pacslb.model import validate_data
    from pacslb.paths import StatePaths
    from pacslb.store.audit import AuditLog
    from pacslb.store.users import UserStore

    config = validate_data({"version": 1, "virtual_services": [
        {"name": "web", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 8080}],
         "health_check": {"type": "none"}, "real_servers": [{"name": "rs1", "address": "127.0.0.1", "port": 8081}]}]}).config  # fmt: skip
    changes = Changes(StatePaths(tmp_path), Running(config, _Path(tmp_path), _Path(tmp_path) / "pacslb.yaml"), [],
                      asyncio.Lock())  # fmt: skip
    first = changes.store.add(config.model_dump_json(), "", author="setup", message="first", kind="file", parent=None)
    changes.store.mark_applied(first.id)

    class Facade:  # what the management API sees of the appliance (pacslb.appliance.Facade)
        paths = changes.paths
        base_dir = _Path(tmp_path)
        status = None

        @property
        def config(self):
            return changes.config

    Facade.changes = changes
    controller = Facade()
    users = UserStore(tmp_path / "users.sqlite")
    users.add("admin", "admin-password", "admin")
    _, token = users.add_api_key("admin")
    app = create_management_app(controller, AuthService(users, AuditLog(tmp_path / "audit.sqlite")))
    schema = schemathesis.openapi.from_dict(app.openapi())
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    seen: set[int] = set()
    with TestClient(app, base_url="https://testserver") as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) not in EXCLUDED:
                continue

            @settings(max_examples=EXAMPLES * 3, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.generate])  # fmt: skip
            @given(case=operation.as_strategy(), data=st.data())
            def run(case, data) -> None:
                for name in list(case.path_parameters or {}):
                    if name in REAL_NAMES and data.draw(st.booleans()):
                        case.path_parameters[name] = data.draw(st.sampled_from(REAL_NAMES[name]))
                body = case.body if isinstance(case.body, dict) else None
                if body is not None and data.draw(st.booleans()):
                    body = {**body, "base_revision": controller.changes.store.current_id()}
                response = client.request(case.method, case.formatted_path, params=case.query or None, json=body,
                                          headers=headers)  # fmt: skip
                seen.add(response.status_code)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} {body!r:.300} -> {response.status_code}")

            run()
    assert not failures, "\n".join(failures[:20])
    assert {404, 422, 428} <= seen, f"the handlers, the model's validation and the revision check were reached: {seen}"
