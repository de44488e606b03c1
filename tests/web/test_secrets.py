"""Secrets are not shown to the viewer role (nor to anyone): the management API's configuration, service,
revision and diff endpoints and the WebUI's pages answer the placeholder; a GET-edit-PUT round trip and the
WebUI's health-check form keep the stored secret. In-process, over a real Appliance's change front door
whose engines are left out (writes apply without HAProxy), with real users, sessions and stores."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from pacslb.api.app import create_management_app
from pacslb.api.auth import AuthService
from pacslb.appliance import Appliance
from pacslb.controller.status import ControllerStatus, EngineStatus, build_status
from pacslb.model import load_text
from pacslb.model.types import SECRET_PLACEHOLDER
from pacslb.paths import StatePaths
from pacslb.store.audit import AuditLog
from pacslb.store.users import UserStore
from pacslb.web import mount_web

SECRET = "amqp-Pa55word-Do-Not-Show"
NEW_SECRET = "amqp-Rotated-Pa55word"
LOGIN = "correct horse battery"

CONFIG = f"""version: 1
virtual_services:
  - name: RMQ
    mode: layer7-tcp
    listen: [{{address: 127.0.0.1, port: 18672}}]
    health_check: {{type: amqp, username: pacs, password: "{SECRET}"}}
    real_servers:
      - {{name: mq1, address: 127.0.0.2, port: 5672}}
"""


class QuietAppliance(Appliance):
    """A real Appliance (changes, revisions, paths) with nothing running behind it."""

    def status(self):
        engine = EngineStatus(running=True, master_pid=10, workers=[11])
        return build_status(self.config, [], engine, ControllerStatus(pid=9, state_dir=str(self.paths.root)))


@pytest.fixture
def site(tmp_path):
    config_file = tmp_path / "pacslb.yaml"
    config_file.write_text(CONFIG)
    state = tmp_path / "state"
    (state / "haproxy").mkdir(parents=True)
    appliance = QuietAppliance(StatePaths(state), config_file, load_text(CONFIG).config)
    changes = appliance.changes
    changes.engines, changes.notify = [], None  # writes apply without engines
    changes.started(changes.startup(CONFIG, engines_running=False))
    auth = AuthService(UserStore(state / "users.sqlite"), AuditLog(state / "audit.sqlite"))
    for role in ("admin", "viewer"):
        auth.users.add(role, LOGIN, role)
    app = create_management_app(appliance.facade, auth)
    mount_web(app)
    clients = []

    def client(role: str) -> TestClient:
        c = TestClient(app, base_url="https://testserver")
        clients.append(c)
        login = c.post("/api/v1/login", json={"username": role, "password": LOGIN})  # one session: API and WebUI
        assert login.status_code == 200, login.text
        c.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        return c

    yield appliance, client
    for c in clients:
        c.close()


def running_secret(appliance: Appliance) -> str:
    return appliance.changes.config.service("RMQ").health_check.password.reveal()


def test_the_viewer_sees_no_secret_in_the_api_or_the_webui(site):
    appliance, client = site
    admin = client("admin")
    # a second revision that changes the secret, so that the diff endpoints have something to say
    config = admin.get("/api/v1/config").json()
    config["config"]["virtual_services"][0]["health_check"]["password"] = NEW_SECRET
    answer = admin.put("/api/v1/config", json={"config": config["config"], "base_revision": config["revision"]})
    assert answer.status_code == 200, answer.text
    assert SECRET not in answer.text and NEW_SECRET not in answer.text
    assert running_secret(appliance) == NEW_SECRET

    viewer = client("viewer")
    pages = ["/api/v1/config", "/api/v1/virtual-services", "/api/v1/virtual-services/RMQ",
             "/api/v1/virtual-services/RMQ/health-check", "/api/v1/revisions", "/api/v1/revisions/1",
             "/api/v1/revisions/2", "/api/v1/revisions/2/diff", "/api/v1/diff?from=1&to=2", "/api/v1/status",
             "/api/openapi.json",
             "/services", "/services/RMQ", "/revisions", "/revisions/1", "/revisions/2"]  # fmt: skip
    for page in pages:
        answer = viewer.get(page)
        assert answer.status_code == 200, (page, answer.status_code, answer.text[:300])
        assert SECRET not in answer.text and NEW_SECRET not in answer.text, page
    shown = viewer.get("/api/v1/virtual-services/RMQ/health-check").json()["health_check"]
    assert shown["password"] == SECRET_PLACEHOLDER and shown["username"] == "pacs"
    changes = viewer.get("/api/v1/revisions/2/diff").json()["changes"]
    assert [(c["path"], c["secret"]) for c in changes] == [("virtual_services[RMQ].health_check.password", True)]
    assert "changed (a secret: its value is not shown)" in viewer.get("/revisions/2").text


def test_a_round_trip_through_the_api_keeps_the_secret(site):
    appliance, client = site
    admin = client("admin")
    got = admin.get("/api/v1/virtual-services/RMQ").json()
    service = got["virtual_service"]
    assert service["health_check"]["password"] == SECRET_PLACEHOLDER
    service["real_servers"][0]["weight"] = 50
    answer = admin.put("/api/v1/virtual-services/RMQ", json={"virtual_service": service, "base_revision": got["revision"]})
    assert answer.status_code == 200, answer.text
    assert appliance.changes.config.service("RMQ").real_servers[0].weight == 50
    assert running_secret(appliance) == SECRET


def test_the_health_check_form_shows_a_password_field_and_keeps_the_secret(site):
    appliance, client = site
    admin = client("admin")
    page = admin.get("/services/RMQ").text
    assert SECRET not in page
    field = page[page.index('data-field="password"') :]
    field = field[: field.index("</div>")]
    assert 'type="password"' in field and f'value="{SECRET_PLACEHOLDER}"' in field
    base = re.search(r'name="base_revision" value="(\d+)"', page)[1]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    form = {"csrf_token": csrf, "base_revision": base, "type": "amqp", "interval": "2s", "timeout": "1s",
            "username": "pacs", "password": SECRET_PLACEHOLDER}  # fmt: skip
    answer = admin.post("/services/RMQ/health-check", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    check = appliance.changes.config.service("RMQ").health_check
    assert str(check.interval) == "2s" and check.password.reveal() == SECRET
