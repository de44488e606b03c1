"""Fixtures of the management API tests: one real appliance (`pacslb up`, real HAProxy) per module.

appliance_access     module scope: the appliance (api_support.start_management_appliance) with users
                     `operator` and `viewer` added; stopped, and its processes killed by PID, at teardown
api                  the same, closing the clients a test made after it
"""

from __future__ import annotations

import pytest
from api_support import ROLE_PASSWORDS, ApiAccess, start_management_appliance

from support.net import loopback_host
from support.realservers import TinyHTTPServer


@pytest.fixture(scope="module")
def appliance_access(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    servers = [TinyHTTPServer(f"rs{i}", loopback_host(230 + i)).start() for i in (1, 2)]
    appliance = None
    try:
        appliance, info = start_management_appliance(tmp, servers)
        access = ApiAccess(appliance, info["url"], info["password"], info["vip"], info["port"], info["tls_port"], servers,
                           info["cert"], one_time_password=info["one_time_password"])  # fmt: skip
        admin = access.login("admin")
        for role in ("operator", "viewer"):
            response = admin.post("/api/v1/users", json={"username": role, "password": ROLE_PASSWORDS[role], "role": role,
                                                       "must_change_password": False})  # fmt: skip
            assert response.status_code == 200, response.text
        access.close()
        yield access
        access.close()
    finally:
        if appliance is not None:
            appliance.shut_down()
        for server in servers:
            server.stop()


@pytest.fixture
def api(appliance_access):
    """The module's appliance; the clients a test makes are closed after it."""
    yield appliance_access
    appliance_access.close()
