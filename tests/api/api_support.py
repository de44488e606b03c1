"""Helpers of the management API tests (imported by name: `from api_support import ...`).

  ApiAccess                          the URL, the admin password, and clients logged in with a role
  start_management_appliance(tmp, servers) -> (Appliance, info)
                                     `pacslb up` with a layer7-http service in front of two TinyHTTPServers and a
                                     TLS service whose certificate lives in the state directory (for the hot swap)
  (teardown: Appliance.shut_down() of support/appliance.py: `pacslb stop`, then SIGKILL by PID for anything
  left; removes the state dir)

Logins for the tests come from 127.0.0.1; a test that makes logins fail on purpose sends them from an
address of its own (ApiAccess.client(source=...)), so the per-address throttle never blocks the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pacslb import pki
from support import configs
from support.appliance import Appliance, new_state_dir
from support.configs import real_server, service
from support.first_admin import own_admin_password
from support.net import free_port, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

ROLE_PASSWORDS = {"admin": None, "operator": "operator-pass-1", "viewer": "viewer-pass-12"}


@dataclass
class ApiAccess:
    appliance: Appliance
    url: str
    admin_password: str
    vip: str
    vip_port: int
    tls_port: int
    servers: list[TinyHTTPServer]
    cert_file: Path
    clients: list[httpx.Client] = field(default_factory=list)
    one_time_password: str = ""  # the first admin's, changed to admin_password at start (support/first_admin.py)

    def client(self, source: str | None = None) -> httpx.Client:
        """An anonymous client (closed at teardown); `source` binds it to that local address."""
        transport = httpx.HTTPTransport(verify=False, local_address=source) if source else httpx.HTTPTransport(verify=False)
        client = httpx.Client(base_url=self.url, transport=transport, timeout=60.0)
        self.clients.append(client)
        return client

    def login(self, username: str, password: str | None = None, source: str | None = None) -> httpx.Client:
        """A client with a session cookie and its CSRF token in every request's X-CSRF-Token header."""
        client = self.client(source)
        password = password or (self.admin_password if username == "admin" else ROLE_PASSWORDS[username])
        response = client.post("/api/v1/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        return client

    def as_role(self, role: str) -> httpx.Client:
        return self.login(role)

    def revision(self) -> int:
        return self.login("admin").get("/api/v1/config").json()["revision"]

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()


def config_text(vip: str, port: int, tls_port: int, servers: list[TinyHTTPServer], cert: Path, extra_settings: str = "") -> str:
    """`web` (HTTP check) and `secure` (TLS with `cert`, no check) in front of the same servers; the management
    API on a free port of 127.0.0.1 (`extra_settings` continue its settings: ", metrics: ...")."""
    rs = [real_server(s) for s in servers]
    return configs.config_text(
        service("web", "layer7-http", vip, port, rs,
                health_check="{type: http, path: /, interval: 500ms, timeout: 500ms, rise: 1, fall: 2}"),
        service("secure", "layer7-http", vip, tls_port, rs, health_check="{type: none}", tls=f"{{certificates: [{cert}]}}"),
        # each appliance its own agent port: the agent port is held from start to stop, and a module's
        # appliance may run while a test starts a second one
        settings=f"{{max_connections: 2000, health: {{agent_port: {free_port('127.0.0.1')}}}, "
        f"management: {{address: 127.0.0.1, port: 0{extra_settings}}}}}",
    )  # fmt: skip


def start_management_appliance(tmp: Path, servers: list[TinyHTTPServer], extra_settings: str = "") -> tuple[Appliance, dict]:
    vip = loopback_host(240 + (hash(str(tmp)) % 10))
    port, tls_port = free_port(vip), free_port(vip)
    state_dir = new_state_dir("pacslb-api-")
    cert = state_dir / "certs" / "site.pem"
    pki.write_pem(cert, pki.self_signed("first site certificate", [vip, "localhost"]).bundle())
    config = tmp / "pacslb.yaml"
    config.write_text(config_text(vip, port, tls_port, servers, cert, extra_settings))
    appliance = Appliance(state_dir=state_dir, config=config, log=tmp / "pacslb-up.log")
    appliance.up(wait=True)
    url_file = state_dir / "management-url"
    wait_until(url_file.exists, 30, what="the management API to listen")
    one_time = (state_dir / "initial-admin-password").read_text().strip()
    url = url_file.read_text().strip().rstrip("/")
    password = own_admin_password(url, state_dir)  # a one-time password: changed before anything else
    return appliance, {
        "one_time_password": one_time,
        "url": url,
        "password": password,
        "vip": vip,
        "port": port,
        "tls_port": tls_port,
        "cert": cert,
    }
