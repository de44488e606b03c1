"""Clearing a persistence table on the real appliance (issue 15; src/pacslb/persistence.py): a sticky client
lands on one real server, the API, the CLI and the WebUI clear the table (HAProxy's `show table` is empty
after), no revision is made, each clear and each refusal is in the audit log; a viewer is refused (403), an
unknown service is 404 naming it, a service without a table is 409 saying why."""

from __future__ import annotations

import re
from contextlib import closing

import httpx
import pytest
from api_support import ROLE_PASSWORDS

from pacslb.engines.haproxy.runtime import RuntimeAPI
from pacslb.engines.haproxy.stick_tables import show_table
from pacslb.store.audit import AuditLog
from support.appliance import Appliance, new_state_dir
from support.configs import config_text, http_check, real_server, service
from support.first_admin import own_admin_password
from support.net import free_port, http_get, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = pytest.mark.e2e

CLIENT = loopback_host(61)  # the sticky client's own source address


@pytest.fixture(scope="module")
def sticky(tmp_path_factory):
    """An appliance with `sticky` (source-ip persistence) and `plain` (none) in front of two real servers, and the
    users operator and viewer; yields (appliance, management URL, VIP address, port)."""
    tmp = tmp_path_factory.mktemp("persistence")
    servers = [TinyHTTPServer(f"rs{i}", loopback_host(70 + i)).start() for i in (1, 2)]
    vip = loopback_host(60)
    port, plain_port = free_port(vip), free_port(vip)
    rs = [real_server(s) for s in servers]
    text = config_text(
        service("sticky", "layer7-http", vip, port, rs, health_check=http_check(300), persistence="{type: source-ip}"),
        service("plain", "layer7-http", vip, plain_port, rs, health_check=http_check(300)),
        settings=f"{{max_connections: 2000, health: {{agent_port: {free_port()}}}, management: {{address: 127.0.0.1, port: 0}}}}",
    )
    config = tmp / "pacslb.yaml"
    config.write_text(text)
    appliance = Appliance(state_dir=new_state_dir("pacslb-persist-"), config=config, log=tmp / "pacslb-up.log")
    try:
        appliance.up(wait=True)
        url_file = appliance.state_dir / "management-url"
        wait_until(url_file.exists, 30, what="the management API to listen")
        url = url_file.read_text().strip().rstrip("/")
        admin = _login(url, "admin", own_admin_password(url, appliance.state_dir))  # the one-time password changed first
        for role in ("operator", "viewer"):
            answer = admin.post("/api/v1/users", json={"username": role, "password": ROLE_PASSWORDS[role], "role": role,
                                                       "must_change_password": False})  # fmt: skip
            assert answer.status_code == 200, answer.text
        admin.close()
        wait_until(lambda: _answers(vip, port) in ("rs1", "rs2"), 15, what="the sticky VIP to answer")
        yield appliance, url, vip, port
    finally:
        appliance.shut_down()
        for server in servers:
            server.stop()


def _login(url: str, username: str, password: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=url, verify=False, timeout=30.0)
    answer = client.post("/api/v1/login", json={"username": username, "password": password or ROLE_PASSWORDS[username]})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


def _answers(vip: str, port: int) -> str:
    try:
        return http_get(vip, port, "/", source=CLIENT)[1].strip()
    except OSError:
        return ""


def _table(appliance: Appliance):
    return show_table(RuntimeAPI(appliance.paths.haproxy_admin_socket), "sticky")


def _stick(appliance: Appliance, vip: str, port: int) -> str:
    """Requests from CLIENT all land on one real server, which the table now holds for it."""
    landed = {_answers(vip, port) for _ in range(6)}
    assert len(landed) == 1, f"a sticky client reached {landed}"
    table = _table(appliance)
    assert table.used == 1 and table.keys == (CLIENT,), table
    return landed.pop()


def _revision(url: str) -> int:
    with closing(_login(url, "operator")) as client:
        return client.get("/api/v1/config").json()["revision"]


def _audit(appliance: Appliance):
    return AuditLog(appliance.state_dir / "audit.sqlite").list(action="persistence.clear", limit=20)


def test_api_clears_the_table_and_refuses_what_it_must(sticky):
    appliance, url, vip, port = sticky
    _stick(appliance, vip, port)
    revision = _revision(url)

    with closing(_login(url, "viewer")) as viewer:
        refused = viewer.delete("/api/v1/virtual-services/sticky/persistence")
    assert refused.status_code == 403, refused.text
    assert _table(appliance).used == 1  # nothing changed

    with closing(_login(url, "operator")) as operator:
        unknown = operator.delete("/api/v1/virtual-services/nosuch/persistence")
        assert unknown.status_code == 404 and "'nosuch'" in unknown.json()["message"], unknown.text
        none = operator.delete("/api/v1/virtual-services/plain/persistence")
        assert none.status_code == 409 and "has no persistence" in none.json()["message"], none.text
        assert _table(appliance).used == 1

        cleared = operator.delete("/api/v1/virtual-services/sticky/persistence")
    assert cleared.status_code == 200, cleared.text
    assert cleared.json() | {"message": ""} == {"outcome": "cleared", "service": "sticky", "table": "sticky", "cleared": 1,
                                                "remaining": 0, "message": ""}  # fmt: skip
    assert _table(appliance).used == 0 and _table(appliance).keys == ()
    assert _revision(url) == revision  # state, not configuration: no revision

    events = {(e.target, e.outcome): e for e in _audit(appliance)}
    ok = events[("sticky", "ok")]
    assert (ok.username, ok.via, ok.detail["cleared"]) == ("operator", "session", 1)
    assert ("nosuch", "not-found") in events and ("plain", "refused") in events
    assert _answers(vip, port) in ("rs1", "rs2") and _table(appliance).used == 1  # the client is scheduled again


def test_cli_and_webui_clear_the_table(sticky):
    appliance, url, vip, port = sticky
    _stick(appliance, vip, port)
    done = appliance.cli("persistence", "clear", "sticky")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 entry removed" in done.stdout
    assert _table(appliance).used == 0
    refused = appliance.cli("persistence", "clear", "nosuch")
    assert refused.returncode == 1 and "no virtual service is called 'nosuch'" in refused.stderr
    assert [e.via for e in _audit(appliance)[:2]] == ["cli", "cli"]

    _stick(appliance, vip, port)
    pages = {}
    for role in ("viewer", "operator"):
        client = httpx.Client(base_url=url, verify=False, timeout=30.0)
        answer = client.post("/login", data={"username": role, "password": ROLE_PASSWORDS[role]}, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        pages[role] = (client, client.get("/services/sticky").text)
    viewer, viewer_page = pages["viewer"]
    operator, operator_page = pages["operator"]
    assert "Clear persistence table" not in viewer_page
    assert "Clear persistence table" in operator_page and 'data-confirm="Clear the persistence table of sticky?' in operator_page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', operator_page)[1]
    viewer_csrf = re.search(r'name="csrf_token" value="([^"]+)"', viewer_page)[1]
    assert viewer.post("/services/sticky/persistence/clear", data={"csrf_token": viewer_csrf}).status_code == 403
    assert operator.post("/services/sticky/persistence/clear", data={}).status_code == 403  # no CSRF token
    assert _table(appliance).used == 1
    answer = operator.post("/services/sticky/persistence/clear", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/services/sticky"
    assert "1 entry removed" in operator.get("/services/sticky").text  # the flash message
    assert _table(appliance).used == 0
    assert (_audit(appliance)[0].via, _audit(appliance)[0].username) == ("session", "operator")
    viewer.close()
    operator.close()
