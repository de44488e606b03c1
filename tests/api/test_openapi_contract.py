"""The management API keeps the contract its OpenAPI document states (docs/api.md, "Answers and errors"):
schemathesis with every check that judges one answer (no server error; a declared status; a declared content
type; the answer's schema and headers; invalid data refused; valid data accepted) over every operation, login
included, as admin and as viewer.

In process (ASGI), against the real app over the real change front door with no engine: every configuration is
validated as the appliance does and recorded as a revision, and nothing is sent anywhere (generated addresses
never reach an engine). A fresh state directory per run, so that destructive operations (deleting users,
restoring a backup, replacing the configuration) change nothing outside it.

Logins: the back-off is per user name and address, and per address (throttle.py). The fuzzed logins use a
user of their own (`fuzz-login`, its real password drawn half of the time) and the throttle is reset before
each login example, so the test client is never locked out: every other operation uses an API key, and the
admin still logs in at the end.

"Valid data accepted" allows, beyond schemathesis' defaults, 428 where a base revision is required (it may be
sent as If-Match instead, so the schema cannot require it in the body) and 422 where the body carries what
only the model's validation judges (a configuration, a certificate, a password's rules): both are declared.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pacslb.alerts.service import AlertService
from pacslb.api.app import create_management_app
from pacslb.api.auth import AuthService
from pacslb.api.throttle import LoginThrottle
from pacslb.change.service import Changes, Running
from pacslb.controller.api import create_app as create_controller_app
from pacslb.controller.status import ApplianceStatus, EngineStatus
from pacslb.model import validate_data
from pacslb.paths import StatePaths
from pacslb.store.audit import AuditLog
from pacslb.store.users import UserStore

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]
EXAMPLES = 4  # per operation and generation mode (valid data: as admin or as viewer): about 60 operations x 2
SLOW = {"POST /api/v1/support-bundle": 1}  # runs 9 commands (haproxy -vv, nft list ruleset...): one example
LOGIN_PASSWORD = "fuzz-login-pass-12"
REAL_NAMES = {
    "service": ["web"],
    "real_server": ["rs1", "rs2"],
    "rule": ["images"],
    "name": ["site"],
    "username": ["spare"],  # a user to delete or change: never those whose keys and password run the test
}
# Valid by the schema, judged by the model's validation only (422 declared with the problems)
MODEL_BODIES = [
    "PUT /api/v1/config",
    "POST /api/v1/virtual-services",
    "PUT /api/v1/virtual-services/{service}",
    "POST /api/v1/virtual-services/{service}/real-servers",
    "PUT /api/v1/virtual-services/{service}/real-servers/{real_server}",
    "PUT /api/v1/virtual-services/{service}/real-servers/{real_server}/state",
    "PUT /api/v1/virtual-services/{service}/real-servers/{real_server}/weight",
    "POST /api/v1/virtual-services/{service}/rules",
    "PUT /api/v1/virtual-services/{service}/rules/{rule}",
    "PUT /api/v1/virtual-services/{service}/health-check",
    "PUT /api/v1/virtual-services/{service}/certificate",
    "POST /api/v1/revisions/{rev_id}/rollback",
    "POST /api/v1/waf/exclusions",
    "POST /api/v1/users",
    "PUT /api/v1/users/{username}/password",
    "POST /api/v1/certificates",
    "PUT /api/v1/certificates/{name}",
    "GET /api/v1/certificates/{name}",
    "DELETE /api/v1/certificates/{name}",
    "POST /api/v1/certificates/self-signed",
    "POST /api/v1/certificates/csr",
    "POST /api/v1/backup",
    "POST /api/v1/restore",
    "POST /api/v1/apply",  # the controller API's
]
ACCEPTED = ["2xx", "401", "403", "404", "409", "429"]


def contract_config(document: dict) -> SchemathesisConfig:
    """Schemathesis' configuration: the statuses that "valid data accepted" allows beyond its defaults, per operation
    (each one declared by the operation), and verify's 503 (no HAProxy runs here: its declared answer)."""
    overrides = [
        {"include-name": "POST /api/v1/verify", "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "4xx", "503"]}}}
    ]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            name = f"{method.upper()} {path}"
            declared = operation.get("responses", {})
            extra = ["422"] if name in MODEL_BODIES else []
            extra += ["428"] if "428" in declared else []
            # If-Match and base_revision are both optional in the schema, which cannot say they must agree: 400
            extra += ["400"] if any(p["name"] == "If-Match" for p in operation.get("parameters", [])) else []
            if extra:
                overrides.append(
                    {"include-name": name, "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED + extra}}}
                )
    return SchemathesisConfig.from_dict({"operations": overrides})


class Appliance:
    """What the management API sees of the appliance (pacslb.appliance.Facade), over the real change front door
    with no engine."""

    def __init__(self, root: Path, changes: Changes) -> None:
        self.paths = changes.paths
        self.base_dir = root
        self.changes = changes
        self.alerts = AlertService(node="fuzz")

    @property
    def config(self):
        return self.changes.config

    def status(self) -> ApplianceStatus:
        return ApplianceStatus(controller=None, engine=EngineStatus(running=False), virtual_services=[])

    def healthy(self) -> tuple[bool, str]:
        return True, "serving"

    def gslb_status(self) -> dict:
        return {"names": []}


@pytest.fixture
def contract_app(tmp_path):
    config = validate_data({"version": 1, "virtual_services": [
        {"name": "web", "mode": "layer7-http", "listen": [{"address": "127.0.0.1", "port": 8080}],
         "health_check": {"type": "none"},
         "real_servers": [{"name": "rs1", "address": "127.0.0.1", "port": 8081},
                          {"name": "rs2", "address": "127.0.0.1", "port": 8082}],
         "rules": [{"name": "images", "match": {"path_begins": ["/images"]}, "deny": {}}]}]}).config  # fmt: skip
    changes = Changes(StatePaths(tmp_path), Running(config, tmp_path, tmp_path / "pacslb.yaml"), [], asyncio.Lock())
    first = changes.store.add(config.model_dump_json(), "", author="setup", message="first", kind="file", parent=None)
    changes.store.mark_applied(first.id)
    users = UserStore(tmp_path / "users.sqlite")
    users.add("admin", "admin-password-12", "admin")
    users.add("viewer", "viewer-password-12", "viewer")
    users.add("fuzz-login", LOGIN_PASSWORD, "viewer")
    users.add("spare", "spare-password-12", "operator")
    keys = {role: users.add_api_key(role)[1] for role in ("admin", "viewer")}
    auth = AuthService(users, AuditLog(tmp_path / "audit.sqlite"), state_dir=tmp_path)
    appliance = Appliance(tmp_path, changes)
    app = create_management_app(appliance, auth)
    app.state.appliance = appliance  # for the controller API's run below
    return app, auth, keys


def test_every_operation_keeps_the_contract(contract_app):
    app, auth, keys = contract_app
    document = app.openapi()
    schema = schemathesis.openapi.from_dict(document, config=contract_config(document))
    failures: list[str] = []
    ran: set[str] = set()
    statuses: set[int] = set()
    with asgi.get_client(app) as session:  # one in-process client (schemathesis would make one per call)
        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            ran.add(label)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                # valid data as admin or viewer (a viewer's 403 must be declared too); invalid data as admin
                roles = ("admin", "admin", "viewer") if "security" in operation.definition.raw else ("anyone",)
                if mode is GenerationMode.NEGATIVE:
                    roles = roles[:1]
                run = _examples(operation, mode, roles, auth, keys, session, failures, statuses)
                try:
                    run()
                except Unsatisfiable:  # nothing to make invalid (no parameter, no body): negative data does not exist
                    raw = operation.definition.raw
                    assert mode is GenerationMode.NEGATIVE and not raw.get("parameters") and "requestBody" not in raw, label
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:15])
    assert len(ran) >= 55, sorted(ran)
    assert {200, 400, 401, 403, 404, 409, 422, 428} <= statuses, statuses
    # the client was never locked out, and the admin's key still works
    with TestClient(app, base_url="https://testserver") as client:
        assert client.post("/api/v1/login", json={"username": "fuzz-login", "password": LOGIN_PASSWORD}).status_code == 200
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {keys['admin']}"}).status_code == 200


def _examples(operation, mode, roles, auth, keys, session, failures: list[str], statuses: set[int], examples=EXAMPLES):
    """The hypothesis test of one operation in one generation mode: each example called and checked."""
    label = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=SLOW.get(label, examples), deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate])  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case, data) -> None:
        role = data.draw(st.sampled_from(roles))
        for name in list(case.path_parameters or {}):
            if name in REAL_NAMES and data.draw(st.booleans()):
                case.path_parameters[name] = data.draw(st.sampled_from(REAL_NAMES[name]))
        if case.path.endswith("/login") and auth is not None:
            auth.throttle = LoginThrottle(auth.clock)  # a fresh back-off: the client is never locked out
            if isinstance(case.body, dict) and data.draw(st.booleans()):
                case.body = {"username": "fuzz-login", "password": LOGIN_PASSWORD}
        headers = {"Authorization": f"Bearer {keys[role]}"} if role in keys else {}
        response = case.call(headers=headers, session=session)
        statuses.add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (FailureGroup, AssertionError) as exc:
            failures.append(f"{role} {mode.value} {label}: {str(exc)[:1500]}")

    return run


# --- the controller API (the CLI's Unix socket) --------------------------------------------------------------


def test_the_controller_api_keeps_its_contract(contract_app):
    """The same checks over the controller API (`pacslb apply`, `rollback`, `drain`...): no credentials there (its
    socket's mode guards it), its 422 either FastAPI's or the body limits' ErrorBody."""
    appliance = contract_app[0].state.appliance
    appliance.request_stop = lambda reason: None  # POST /api/v1/stop: the stand-in has nothing to stop
    app = create_controller_app(appliance, appliance.changes)
    document = app.openapi()
    schema = schemathesis.openapi.from_dict(document, config=contract_config(document))
    failures: list[str] = []
    statuses: set[int] = set()
    with asgi.get_client(app) as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run = _examples(operation, mode, ("anyone",), None, {}, session, failures, statuses, examples=3)
                try:
                    run()
                except Unsatisfiable:
                    raw = operation.definition.raw
                    assert mode is GenerationMode.NEGATIVE and not raw.get("parameters") and "requestBody" not in raw
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:15])
    assert {200, 404, 422} <= statuses, statuses


def test_the_controller_api_refuses_a_revision_id_sqlite_cannot_hold(contract_app):
    """POST /api/v1/revisions/{2**107}/rollback and GET /api/v1/diff?from=2**70 reached SQLite, whose OverflowError was
    a 500: now 422 naming the parameter."""
    appliance = contract_app[0].state.appliance
    with TestClient(create_controller_app(appliance, appliance.changes)) as client:
        rollback = client.post(f"/api/v1/revisions/{2**107}/rollback", json={"dry_run": True})
        read = client.get(f"/api/v1/revisions/{2**64}")
        diff = client.get(f"/api/v1/diff?from={2**70}")
    assert rollback.status_code == 422 and "rev_id" in rollback.text, rollback.text
    assert read.status_code == 422, read.text
    assert diff.status_code == 422 and "from" in diff.text, diff.text


# --- 405 and its Allow ----------------------------------------------------------------------------------------


def test_405_names_every_method_of_the_path(contract_app):
    """Starlette names the methods of the first route that matches a path only (GET /api/v1/config, not its PUT):
    every path of the document, with a method it lacks, answers 405 with exactly the methods the document gives it."""
    app, _, keys = contract_app
    document = app.openapi()
    checked = 0
    with TestClient(app, base_url="https://testserver") as client:
        for path in document["paths"]:
            concrete = path.replace("{rev_id}", "1").replace("{", "").replace("}", "")
            # every path of the document that this one is an instance of (certificates/self-signed: certificates/{name})
            declared = {m.upper() for template, other in document["paths"].items() for m in other
                        if re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)), concrete)}  # fmt: skip
            missing = next(m for m in ("PATCH", "DELETE", "PUT", "POST", "GET") if m not in declared)
            answer = client.request(missing, concrete, headers={"Authorization": f"Bearer {keys['admin']}"})
            assert answer.status_code == 405, (missing, path, answer.text)
            assert set(answer.headers["allow"].split(", ")) == declared, (path, answer.headers["allow"])
            assert answer.json()["outcome"] == "method-not-allowed" and missing in answer.json()["message"]
            checked += 1
    assert checked >= 40


# --- the bugs the run found, one each -------------------------------------------------------------------------


def test_if_match_with_a_unicode_digit_is_a_400_not_a_500(contract_app):
    """'²' is a digit to str.isdigit and int() refuses it: If-Match: ² was a 500."""
    app, _, keys = contract_app
    with TestClient(app, base_url="https://testserver") as client:
        answer = client.put("/api/v1/virtual-services/web/real-servers/rs1/weight", json={"weight": 3},
                            headers={"Authorization": f"Bearer {keys['admin']}", "If-Match": "²".encode("latin-1")})  # fmt: skip
    assert answer.status_code == 400 and "If-Match" in answer.json()["message"], answer.text


def test_waf_exclusion_with_a_bad_if_match_is_a_400_not_a_500(contract_app):
    """POST /api/v1/waf/exclusions let the ApiError of a malformed If-Match escape: a 500."""
    app, _, keys = contract_app
    body = {"policy": "web", "exclusion": {"rule_ids": [942100]}}
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        answer = client.post("/api/v1/waf/exclusions", json=body,
                             headers={"Authorization": f"Bearer {keys['admin']}", "If-Match": "twelve"})  # fmt: skip
    assert answer.status_code == 400 and answer.json()["outcome"] == "bad-request", answer.text


def test_a_role_outside_the_three_is_refused_by_the_schema_naming_the_field(contract_app):
    """The schema said any string of 16 characters: valid data that the API refused (422) without naming the field."""
    app, _, keys = contract_app
    with TestClient(app, base_url="https://testserver") as client:
        answer = client.put(
            "/api/v1/users/spare/role", json={"role": "PATCH"}, headers={"Authorization": f"Bearer {keys['admin']}"}
        )
    assert answer.status_code == 422 and answer.json()["problems"][0]["path"] == "role", answer.text


def test_framework_errors_carry_the_error_body(contract_app):
    """401 of the authentication, 404 of an unknown path, 400 of a body that is not JSON: the one ErrorBody."""
    app, _, keys = contract_app
    with TestClient(app, base_url="https://testserver") as client:
        unauthenticated = client.get("/api/v1/config")
        unknown = client.get("/api/v1/nothing", headers={"Authorization": f"Bearer {keys['admin']}"})
        not_json = client.put("/api/v1/users/spare/role", content=b"\x16\xff", headers={
            "Authorization": f"Bearer {keys['admin']}", "Content-Type": "application/json"})  # fmt: skip
    assert unauthenticated.status_code == 401 and unauthenticated.json()["outcome"] == "unauthenticated"
    assert unknown.status_code == 404 and unknown.json()["outcome"] == "not-found"
    assert not_json.status_code == 400 and not_json.json()["outcome"] == "bad-request", not_json.text


# --- the document itself --------------------------------------------------------------------------------------


def test_every_operation_of_the_document_is_described(contract_app):
    """Every operation has a summary and a schema for its 2xx answer; an authenticated one declares 401 and its
    security, an unsafe one 403 (the CSRF token of a session) and every error the ErrorBody; a write that reads a
    body declares 413 and 422; where a base revision is required, 428 and If-Match."""
    app, _, _ = contract_app
    document = app.openapi()
    public = {("post", "/api/v1/login"), ("get", "/api/v1/health")}
    operations = [(m, p, op) for p, item in document["paths"].items() for m, op in item.items()]
    assert len(operations) >= 55
    for method, path, op in operations:
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert ok, where
        for status in ok:
            content = op["responses"][status].get("content", {})
            assert content and all(media.get("schema") for media in content.values()), (where, status)
        for status, response in op["responses"].items():
            if status[0] in "45" and (method, path) != ("get", "/api/v1/health"):  # health's 503 is its own answer
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, (
                    where,
                    status,
                )
        if (method, path) not in public:
            assert "401" in op["responses"] and op.get("security"), where
            if method != "get":
                assert "403" in op["responses"], where
        if "requestBody" in op:
            assert {"400", "413", "422"} <= set(op["responses"]), where
        if "428" in op["responses"]:
            assert any(p["name"] == "If-Match" for p in op.get("parameters", [])), where
            assert "base_revision" in op["description"], where
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_the_controller_document_is_described(contract_app):
    """The controller API's operations, the HA pair's included: a summary and a schema for the 2xx answer each."""
    appliance = contract_app[0].state.appliance

    class Pair:  # the HA pair's surface that the router calls (ha/pair.py); not called here
        pass

    document = create_controller_app(appliance, appliance.changes, Pair()).openapi()
    operations = [(f"{m.upper()} {p}", op) for p, item in document["paths"].items() for m, op in item.items()]
    assert {"GET /api/v1/ha", "POST /api/v1/ha/promote", "POST /api/v1/apply"} <= {name for name, _ in operations}
    for name, op in operations:
        assert op.get("summary"), name
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert ok and all(op["responses"][s].get("content") for s in ok), name
