"""The WebUI in-process: the management app (pacslb.api.app) with the WebUI mounted, over a real
Appliance (its facade) whose HAProxy does not run (so applies that reach the engine are refused, and every state is
what the stand-in's `show stat` rows say), real users, sessions and revision store in tmp_path.

  web(role="admin") -> WebClient      a TestClient logged in with that role (https://testserver: the
                                      session cookie is Secure); .csrf is the session's CSRF token
  web_app                             the app, its controller and auth (web_app.controller, web_app.auth)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from pacslb.api.app import create_management_app
from pacslb.api.auth import AuthService
from pacslb.appliance import Appliance, Facade
from pacslb.controller.status import ControllerStatus, EngineStatus, build_status
from pacslb.engines.haproxy.runtime import parse_stat
from pacslb.model import load_text
from pacslb.paths import StatePaths
from pacslb.store.audit import AuditLog
from pacslb.store.users import UserStore
from pacslb.web import mount_web
from support.configs import SHOW_STAT, show_stat_config

PASSWORD = "correct horse battery"

CONFIG = show_stat_config(health_check="{type: http, path: /health}")


class StandInAppliance(Appliance):
    """A real Appliance (changes, revisions, paths) whose live state comes from a recorded `show stat`."""

    def status(self):
        rows = parse_stat(SHOW_STAT.read_text())
        engine = EngineStatus(running=True, master_pid=10, workers=[11])
        return build_status(self.config, rows, engine, ControllerStatus(pid=9, state_dir=str(self.paths.root)))


@dataclass
class WebApp:
    app: object
    controller: Facade
    auth: AuthService


@pytest.fixture
def web_app(tmp_path):
    loaded = load_text(CONFIG)
    assert loaded.ok, loaded.problems
    config_file = tmp_path / "pacslb.yaml"
    config_file.write_text(CONFIG)
    state = tmp_path / "state"
    (state / "haproxy").mkdir(parents=True)
    controller = StandInAppliance(StatePaths(state), config_file, loaded.config).facade
    store = controller.changes.store
    first = store.add(loaded.config.model_dump_json(), CONFIG, author="setup", message="first", kind="file", parent=None)
    store.mark_applied(first.id)
    auth = AuthService(UserStore(state / "users.sqlite"), AuditLog(state / "audit.sqlite"))
    for role in ("admin", "operator", "viewer"):
        auth.users.add(role, PASSWORD, role)
    app = create_management_app(controller, auth)
    mount_web(app)
    return WebApp(app, controller, auth)


class WebClient(TestClient):
    csrf: str = ""

    def form_post(self, url: str, data: dict | None = None, **kwargs):
        """POST a form with the session's CSRF token, without following the redirect."""
        return self.post(url, data={"csrf_token": self.csrf, **(data or {})}, follow_redirects=False, **kwargs)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found[1]


@pytest.fixture
def password() -> str:
    """The password of the users admin, operator and viewer."""
    return PASSWORD


@pytest.fixture
def web(web_app):
    clients: list[WebClient] = []

    def make(role: str | None = "admin") -> WebClient:
        client = WebClient(web_app.app, base_url="https://testserver")
        clients.append(client)
        if role is not None:
            answer = client.post("/login", data={"username": role, "password": PASSWORD}, follow_redirects=False)
            assert answer.status_code == 303, answer.text
            client.csrf = csrf_of(client.get("/").text)
        return client

    yield make
    for client in clients:
        client.close()
