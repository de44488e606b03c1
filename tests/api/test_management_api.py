"""The management REST API against a real appliance: every resource, every role, CSRF, sessions, throttling,
optimistic concurrency, the audit log, certificates swapped without a reload, metrics."""

from __future__ import annotations

import re
import socket
import ssl
import time

import httpx
import pytest
from cryptography import x509

from pacslb import pki
from support.net import free_port, http_get, loopback_host
from support.wait import wait_until

pytestmark = pytest.mark.e2e

PUBLIC = {("post", "/api/v1/login"), ("get", "/api/v1/health")}


def server_state(client: httpx.Client, service: str, real_server: str) -> str:
    status = client.get("/api/v1/status").json()
    vs = next(v for v in status["virtual_services"] if v["name"] == service)
    return next(r for r in vs["real_servers"] if r["name"] == real_server)["state"]


def audit_events(api, **filters) -> list[dict]:
    response = api.login("admin").get("/api/v1/audit", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    return response.json()["events"]


# --- authentication ---------------------------------------------------------------------------------


def test_only_login_and_health_answer_without_credentials(api):
    """Changed on purpose (issue 22, item 8): the OpenAPI document and /api/docs need credentials too."""
    anonymous = api.client()
    assert anonymous.get("/api/openapi.json").status_code == 401
    assert anonymous.get("/api/docs").status_code == 401
    document = api.login("viewer").get("/api/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert len(paths) > 25
    checked = 0
    for path, methods in paths.items():
        for method in methods:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            response = anonymous.request(method.upper(), concrete, json={})
            if (method, path) in PUBLIC:
                assert response.status_code != 401, (method, path)
            else:
                assert response.status_code == 401, f"{method.upper()} {path} answered {response.status_code} without credentials"
                checked += 1
    assert checked > 40
    assert anonymous.get("/metrics").status_code == 401
    assert anonymous.get("/api/v1/health").json()["ok"] is True


def test_login_sets_a_strict_secure_cookie_and_bad_credentials_fail(api):
    client = api.client()
    response = client.post("/api/v1/login", json={"username": "admin", "password": api.admin_password})
    cookie = response.headers["set-cookie"]
    assert "pacslb_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie and "Path=/" in cookie
    assert response.headers["cache-control"] == "no-store" and response.headers["x-frame-options"] == "DENY"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert client.post("/api/v1/login", json={"username": "admin", "password": "wrong-password"}).status_code == 401
    bad_key = api.client().get("/api/v1/config", headers={"Authorization": "Bearer pacslb_nothing_here"})
    assert bad_key.status_code == 401


def test_missing_or_forged_csrf_token_is_refused(api):
    viewer = api.login("operator")
    token = viewer.headers.pop("X-CSRF-Token")
    drain = {"state": "drain"}
    path = "/api/v1/virtual-services/web/real-servers/rs1/state"
    missing = viewer.put(path, json=drain)
    assert missing.status_code == 403 and "CSRF" in missing.json()["detail"]
    forged = viewer.put(path, json=drain, headers={"X-CSRF-Token": token[:-2] + "xx"})
    assert forged.status_code == 403
    assert server_state(api.login("viewer"), "web", "rs1") != "DRAIN"
    # the form field works as well as the header (the WebUI's forms)
    logout = viewer.post("/api/v1/logout", data={"csrf_token": token})
    assert logout.status_code == 200
    assert viewer.get("/api/v1/me").status_code == 401


def test_expired_session_gets_401(api):
    admin = api.login("admin")
    config = admin.get("/api/v1/config").json()
    changed = config["config"]
    changed["settings"].setdefault("management", {})["session_timeout"] = "1s"
    response = admin.put("/api/v1/config", json={"config": changed, "base_revision": config["revision"]})
    assert response.status_code == 200, response.text
    try:
        idle = api.login("viewer")
        assert idle.get("/api/v1/me").status_code == 200
        time.sleep(2.5)  # the idle timeout under test is 1 s
        expired = idle.get("/api/v1/me")
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    finally:
        admin = api.login("admin")
        current = admin.get("/api/v1/config").json()
        current["config"]["settings"]["management"]["session_timeout"] = "30m"
        restore = admin.put("/api/v1/config", json={"config": current["config"], "base_revision": current["revision"]})
        assert restore.status_code == 200, restore.text


def test_repeated_bad_logins_are_throttled_and_audited(api):
    """Changed on purpose (issue 22, item 6): the back-off holds the (user, address) that failed, not the user name
    everywhere: the right password from another address logs in at once."""
    source = loopback_host(77)  # an address of its own: the per-address throttle must not block the other tests
    client = api.client(source=source)
    codes = [client.post("/api/v1/login", json={"username": "viewer", "password": f"wrong-{i}"}).status_code for i in range(6)]
    assert codes[:5] == [401] * 5
    assert codes[5] == 429
    throttled = client.post("/api/v1/login", json={"username": "viewer", "password": "viewer-pass-12"})
    assert throttled.status_code == 429, "even the right password waits while throttled"
    assert int(throttled.headers["Retry-After"]) >= 1
    # from another address the same user logs in: a guesser does not lock the real user out
    assert api.client().post("/api/v1/login", json={"username": "viewer", "password": "viewer-pass-12"}).status_code == 200
    events = audit_events(api, action="login", username="viewer")
    failed = [e for e in events if e["outcome"] == "failed" and e["client_ip"] == source]
    assert len(failed) >= 5
    throttled_rows = [e for e in events if e["outcome"] == "throttled" and e["client_ip"] == source]
    assert len(throttled_rows) == 1 and throttled_rows[0]["detail"]["count"] == 2, "one row, counting the refusals"
    metrics = api.login("admin").get("/metrics").text
    assert re.search(r"^pacslb_logins_failed_total [1-9]", metrics, re.M)
    assert api.login("operator").get("/api/v1/me").status_code == 200
    # an admin lifts the back-off at once
    assert api.login("admin").post("/api/v1/users/viewer/unblock").status_code == 200
    assert client.post("/api/v1/login", json={"username": "viewer", "password": "viewer-pass-12"}).status_code == 200


# --- roles --------------------------------------------------------------------------------------------


def test_viewer_reads_but_cannot_drain_or_change(api):
    viewer = api.login("viewer")
    for path in ("/api/v1/status", "/api/v1/config", "/api/v1/virtual-services", "/api/v1/revisions",
                 "/api/v1/certificates", "/api/v1/logs/haproxy", "/metrics", "/api/v1/virtual-services/web/rules"):  # fmt: skip
        assert viewer.get(path).status_code == 200, path
    refused = viewer.put("/api/v1/virtual-services/web/real-servers/rs1/state", json={"state": "drain"})
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    assert viewer.put("/api/v1/virtual-services/web/real-servers/rs1/weight", json={"weight": 5}).status_code == 403
    assert viewer.get("/api/v1/audit").status_code == 403
    assert viewer.get("/api/v1/users").status_code == 403
    assert server_state(viewer, "web", "rs1") == "UP"


def test_operator_drains_but_cannot_change_the_configuration(api):
    operator = api.login("operator")
    base = operator.get("/api/v1/config").json()
    drained = operator.put("/api/v1/virtual-services/web/real-servers/rs1/state", json={"state": "drain"})
    assert drained.status_code == 200, drained.text
    assert drained.json()["engine"]["reloaded"] is False
    wait_until(lambda: server_state(operator, "web", "rs1") == "DRAIN", 30, what="rs1 drained")
    assert operator.put("/api/v1/virtual-services/web/real-servers/rs1/weight", json={"weight": 50}).status_code == 200
    online = operator.put("/api/v1/virtual-services/web/real-servers/rs1/state", json={"state": "online"})
    assert online.status_code == 200
    wait_until(lambda: server_state(operator, "web", "rs1") == "UP", 30, what="rs1 online again")
    refused = operator.put("/api/v1/virtual-services/web/health-check",
                           json={"health_check": {"type": "connect"}, "base_revision": base["revision"] + 3})  # fmt: skip
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert operator.put("/api/v1/config", json={"config": base["config"], "base_revision": 1}).status_code == 403
    assert operator.post("/api/v1/revisions/1/rollback", json={}).status_code == 403
    assert operator.delete("/api/v1/virtual-services/web").status_code == 403
    events = audit_events(api, username="operator")
    assert {"real-server.drain", "real-server.weight", "real-server.online"} <= {e["action"] for e in events}
    assert all(e["client_ip"] == "127.0.0.1" and e["via"] == "session" for e in events if e["action"].startswith("real-server"))
    restore = api.login("admin").put("/api/v1/virtual-services/web/real-servers/rs1/weight", json={"weight": 100})
    assert restore.status_code == 200


def test_role_matrix_over_every_operation(api):
    """Every operation of the OpenAPI document, as viewer and as operator: what the role may not do is 403."""
    document = api.login("viewer").get("/api/openapi.json").json()
    own = {("put", "/api/v1/users/{username}/password"), ("post", "/api/v1/users/{username}/api-keys"),
           ("delete", "/api/v1/api-keys/{key_id}"), ("post", "/api/v1/logout")}  # any role, for itself  # fmt: skip
    operator_may = {("put", "/api/v1/virtual-services/{service}/real-servers/{real_server}/state"),
                    ("put", "/api/v1/virtual-services/{service}/real-servers/{real_server}/weight"),
                    ("post", "/api/v1/verify"),  # verify sends test traffic, changes nothing
                    ("delete", "/api/v1/virtual-services/{service}/persistence"),  # run-time state, no revision
                    ("post", "/api/v1/cluster/nodes/{node}/drain"),  # a node out of the routers' choice, as a
                    ("post", "/api/v1/cluster/nodes/{node}/undrain")}  # real server's drain is  # fmt: skip
    admin_reads = {
        ("get", "/api/v1/users"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/login-blocks"),
        ("get", "/api/v1/cluster/members"),
    }  # etcd's member IDs and URLs: what `rejoin` (admin) acts on
    clients = {"viewer": api.login("viewer"), "operator": api.login("operator")}
    before = api.revision()
    checked = 0
    for path, methods in document["paths"].items():
        for method in methods:
            key = (method, path)
            if key in PUBLIC or key in own or method not in ("get", "post", "put", "delete"):
                continue
            concrete = re.sub(r"\{[^}]+\}", "nothing-here", path)
            for role, client in clients.items():
                allowed = (method == "get" and key not in admin_reads) or (role == "operator" and key in operator_may)
                # an empty body: a refused role answers 403 before the body is even looked at
                code = client.request(method.upper(), concrete, json={}).status_code
                if allowed:
                    assert code != 403, f"{role} may {method.upper()} {path} but got 403"
                else:
                    assert code == 403, f"{role} may not {method.upper()} {path} but got {code}"
                checked += 1
    assert checked > 80
    # every refusal left the configuration as it was, and the login sessions still work
    assert api.revision() == before
    assert clients["viewer"].get("/api/v1/me").status_code == 200


# --- optimistic concurrency and validation ----------------------------------------------------------------


def test_a_stale_revision_gets_409_and_changes_nothing(api):
    admin = api.login("admin")
    current = admin.get("/api/v1/config").json()["revision"]
    check = {"type": "http", "path": "/", "interval": "600ms", "timeout": "500ms", "rise": 1, "fall": 2}
    first = admin.put("/api/v1/virtual-services/web/health-check", json={"health_check": check, "base_revision": current})
    assert first.status_code == 200, first.text
    stale = admin.put("/api/v1/virtual-services/web/health-check",
                      json={"health_check": {**check, "interval": "700ms"}, "base_revision": current})  # fmt: skip
    assert stale.status_code == 409
    assert stale.json()["current_revision"] == first.json()["current_revision"] != current
    assert admin.get("/api/v1/virtual-services/web/health-check").json()["health_check"]["interval"] == "600ms"
    via_header = admin.put("/api/v1/virtual-services/web/health-check", json={"health_check": {**check, "interval": "700ms"}},
                           headers={"If-Match": f'"{current}"'})  # fmt: skip
    assert via_header.status_code == 409
    missing = admin.put("/api/v1/virtual-services/web/health-check", json={"health_check": check})
    assert missing.status_code == 428
    assert any(e["outcome"] == "conflict" for e in audit_events(api, action="health-check.replace"))


def test_invalid_values_come_back_422_with_field_paths(api):
    admin = api.login("admin")
    base = admin.get("/api/v1/config").json()["revision"]
    bad = admin.put("/api/v1/virtual-services/web/health-check",
                    json={"health_check": {"type": "http", "interval": "1s", "timeout": "5s"}, "base_revision": base})  # fmt: skip
    assert bad.status_code == 422
    problems = bad.json()["problems"]
    assert problems[0]["path"].startswith("virtual_services[web].health_check")
    assert "timeout" in problems[0]["message"]
    port = admin.post("/api/v1/virtual-services/web/real-servers",
                      json={"real_server": {"name": "rs9", "address": "127.0.0.1", "port": 70000}, "base_revision": base})  # fmt: skip
    assert port.status_code == 422
    assert port.json()["problems"][0]["path"] == "virtual_services[web].real_servers[rs9].port"
    assert admin.get("/api/v1/config").json()["revision"] == base


# --- resources ------------------------------------------------------------------------------------------


def test_virtual_services_real_servers_rules_and_health_checks(api):
    admin = api.login("admin")
    rev = lambda: admin.get("/api/v1/config").json()["revision"]  # noqa: E731
    vip, port = loopback_host(250), free_port(loopback_host(250))
    rs = api.servers[1]
    service = {"name": "extra", "mode": "layer7-http", "listen": [{"address": vip, "port": port}],
               "health_check": {"type": "none"}, "real_servers": [{"name": "a", "address": rs.host, "port": rs.port}]}  # fmt: skip
    created = admin.post("/api/v1/virtual-services", json={"virtual_service": service, "base_revision": rev()})
    assert created.status_code == 200, created.text
    wait_until(lambda: http_get(vip, port)[1] == "rs2\n", 30, what="the new virtual service to answer")
    assert admin.post("/api/v1/virtual-services", json={"virtual_service": service, "base_revision": rev()}).status_code == 409
    assert admin.get("/api/v1/virtual-services/extra").json()["virtual_service"]["listen"][0]["port"] == port
    assert "extra" in [v["name"] for v in admin.get("/api/v1/virtual-services").json()["virtual_services"]]

    # real servers
    added = admin.post("/api/v1/virtual-services/extra/real-servers",
                       json={"real_server": {"name": "b", "address": rs.host, "port": rs.port, "weight": 10}, "base_revision": rev()})  # fmt: skip
    assert added.status_code == 200, added.text
    assert admin.get("/api/v1/virtual-services/extra/real-servers/b").json()["real_server"]["weight"] == 10
    replaced = admin.put("/api/v1/virtual-services/extra/real-servers/b",
                         json={"real_server": {"address": rs.host, "port": rs.port, "weight": 20}, "base_revision": rev()})  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    assert [r["weight"] for r in admin.get("/api/v1/virtual-services/extra/real-servers").json()["real_servers"]] == [100, 20]
    assert admin.delete("/api/v1/virtual-services/extra/real-servers/b", params={"base_revision": rev()}).status_code == 200
    assert admin.get("/api/v1/virtual-services/extra/real-servers/b").status_code == 404

    # rules (a backend-only service reached by path)
    backend = {"name": "extra_images", "mode": "backend-only", "health_check": {"type": "none"},
               "real_servers": [{"name": "i", "address": api.servers[0].host, "port": api.servers[0].port}]}  # fmt: skip
    # a backend-only service must be reached: add it with the whole configuration, as extra's default service
    whole = admin.get("/api/v1/config").json()
    whole["config"]["virtual_services"].append(backend)
    next(v for v in whole["config"]["virtual_services"] if v["name"] == "extra")["default_service"] = "extra_images"
    alone = admin.post("/api/v1/virtual-services", json={"virtual_service": backend, "base_revision": whole["revision"]})
    assert alone.status_code == 422 and "nothing reaches" in alone.json()["problems"][0]["message"]
    added = admin.put("/api/v1/config", json={"config": whole["config"], "base_revision": whole["revision"]})
    assert added.status_code == 200, added.text
    wait_until(lambda: http_get(vip, port, "/")[1] == "rs1\n", 30, what="the default service to take the requests")
    rule = {"name": "images", "match": {"path_begins": ["/images"]}, "use_service": "extra_images"}
    assert admin.post("/api/v1/virtual-services/extra/rules", json={"rule": rule, "base_revision": rev()}).status_code == 200
    assert admin.get("/api/v1/virtual-services/extra/rules/images").json()["rule"]["use_service"] == "extra_images"
    bad_rule = admin.put("/api/v1/virtual-services/extra/rules/images",
                         json={"rule": {"match": {"path_begins": ["/images"]}, "use_service": "nowhere"}, "base_revision": rev()})  # fmt: skip
    assert bad_rule.status_code == 422
    assert any("nowhere" in p["message"] for p in bad_rule.json()["problems"])
    assert admin.delete("/api/v1/virtual-services/extra/rules/images", params={"base_revision": rev()}).status_code == 200
    assert admin.get("/api/v1/virtual-services/extra/rules").json()["rules"] == []

    # health check
    check = {"type": "connect", "interval": "2s", "timeout": "1s"}
    assert (
        admin.put("/api/v1/virtual-services/extra/health-check", json={"health_check": check, "base_revision": rev()}).status_code
        == 200
    )
    assert admin.get("/api/v1/virtual-services/extra/health-check").json()["health_check"]["type"] == "connect"

    # replace and delete the services
    service["description"] = "replaced"
    service["default_service"] = "extra_images"
    assert (
        admin.put("/api/v1/virtual-services/extra", json={"virtual_service": service, "base_revision": rev()}).status_code == 200
    )
    assert admin.get("/api/v1/virtual-services/extra").json()["virtual_service"]["description"] == "replaced"
    assert admin.delete("/api/v1/virtual-services/extra_images", headers={"If-Match": str(rev())}).status_code == 422
    whole = admin.get("/api/v1/config").json()  # the two reach each other: remove both in one change
    whole["config"]["virtual_services"] = [v for v in whole["config"]["virtual_services"] if v["name"] != "extra_images"]
    removed = admin.put("/api/v1/config", json={"config": whole["config"], "base_revision": whole["revision"]})
    assert removed.status_code == 422 and "extra_images" in str(removed.json()["problems"])
    whole["config"]["virtual_services"] = [v for v in whole["config"]["virtual_services"] if v["name"] != "extra"]
    assert admin.put("/api/v1/config", json={"config": whole["config"], "base_revision": whole["revision"]}).status_code == 200
    assert admin.get("/api/v1/virtual-services/extra").status_code == 404
    actions = {e["action"] for e in audit_events(api, username="admin")}
    assert {"virtual-service.create", "real-server.create", "real-server.replace", "real-server.delete", "rule.create",
            "rule.delete", "health-check.replace", "virtual-service.replace", "config.replace"} <= actions  # fmt: skip


def test_revisions_diff_and_rollback(api):
    admin = api.login("admin")
    before = admin.get("/api/v1/config").json()
    check = {"type": "http", "path": "/", "interval": "900ms", "timeout": "500ms", "rise": 1, "fall": 2}
    changed = admin.put(
        "/api/v1/virtual-services/web/health-check", json={"health_check": check, "base_revision": before["revision"]}
    )
    assert changed.status_code == 200, changed.text
    new = changed.json()["revision"]["id"]
    listed = admin.get("/api/v1/revisions", params={"limit": 5}).json()
    assert listed["current"] == new and listed["revisions"][0]["id"] == new
    assert listed["revisions"][0]["author"] == "admin"
    one = admin.get(f"/api/v1/revisions/{new}").json()
    assert one["config"]["virtual_services"][0]["health_check"]["interval"] == "900ms"
    diff = admin.get(f"/api/v1/revisions/{new}/diff").json()
    assert "health_check" in str(diff)
    assert admin.get("/api/v1/diff", params={"from": before["revision"], "to": new}).status_code == 200
    assert admin.get("/api/v1/revisions/999999").status_code == 404
    stale = admin.post(f"/api/v1/revisions/{before['revision']}/rollback", json={"base_revision": before["revision"]})
    assert stale.status_code == 409
    rolled = admin.post(f"/api/v1/revisions/{before['revision']}/rollback", json={"base_revision": new})
    assert rolled.status_code == 200, rolled.text
    assert (
        admin.get("/api/v1/virtual-services/web/health-check").json()["health_check"]
        == before["config"]["virtual_services"][0]["health_check"]
    )
    assert any(e["action"] == "revision.rollback" and e["outcome"] == "applied" for e in audit_events(api))


def test_status_logs_and_metrics(api):
    viewer = api.login("viewer")
    status = viewer.get("/api/v1/status").json()
    assert {v["name"] for v in status["virtual_services"]} >= {"web", "secure"}
    assert status["engine"]["running"] is True
    http_get(api.vip, api.vip_port)
    haproxy = viewer.get("/api/v1/logs/haproxy", params={"lines": 50})
    assert haproxy.status_code == 200 and haproxy.json()["lines"]
    controller = viewer.get("/api/v1/logs/controller", params={"lines": 20}).json()
    assert len(controller["lines"]) <= 20 and any("pacslb" in line for line in controller["lines"])
    assert viewer.get("/api/v1/logs/other").status_code == 404
    metrics = viewer.get("/metrics")
    assert metrics.status_code == 200
    assert "pacslb_changes_total" in metrics.text and "pacslb_revision_current" in metrics.text
    assert re.search(r'^pacslb_real_server_up\{real_server="rs1",state="UP",virtual_service="web"\} 1$', metrics.text, re.M)
    assert re.search(r'^pacslb_health_check_passed\{real_server="rs2",virtual_service="web"\} 1$', metrics.text, re.M)
    assert "haproxy_process_" in metrics.text and 'proxy="web"' in metrics.text, "HAProxy's own exporter is included"


# --- users and API keys -------------------------------------------------------------------------------


def test_users_and_api_keys(api):
    admin = api.login("admin")
    created = admin.post("/api/v1/users", json={"username": "script", "password": "script-pass-1", "role": "operator",
                                                "must_change_password": False})  # fmt: skip
    assert created.status_code == 200
    assert (
        admin.post("/api/v1/users", json={"username": "script", "password": "script-pass-1", "role": "viewer"}).status_code == 409
    )
    assert admin.post("/api/v1/users", json={"username": "short", "password": "x", "role": "viewer"}).status_code == 422
    script = api.login("script", "script-pass-1")
    key = script.post("/api/v1/users/script/api-keys", json={"name": "ci"}).json()
    token = key["token"]
    bearer = api.client()
    bearer.headers["Authorization"] = f"Bearer {token}"
    me = bearer.get("/api/v1/me").json()
    assert me == {"username": "script", "role": "operator", "via": "api-key", "csrf_token": None, "must_change_password": False}
    # an API key needs no CSRF token (it is not sent by the browser on its own), and has its user's role
    assert bearer.put("/api/v1/virtual-services/web/real-servers/rs2/weight", json={"weight": 100}).status_code in (200,)
    assert bearer.get("/api/v1/users").status_code == 403
    assert script.post("/api/v1/users/admin/api-keys", json={}).status_code == 403
    # role and password changes end the user's other sessions
    assert admin.put("/api/v1/users/script/role", json={"role": "viewer"}).status_code == 200
    assert script.get("/api/v1/me").status_code == 401
    assert bearer.get("/api/v1/me").json()["role"] == "viewer"
    assert admin.delete(f"/api/v1/api-keys/{key['api_key']['id']}").status_code == 200
    assert bearer.get("/api/v1/me").status_code == 401
    assert admin.delete("/api/v1/users/script").status_code == 200
    assert api.client().post("/api/v1/login", json={"username": "script", "password": "script-pass-1"}).status_code == 401
    assert admin.delete("/api/v1/users/admin").status_code == 409  # the last admin stays
    names = {u["username"] for u in admin.get("/api/v1/users").json()["users"]}
    assert "script" not in names and "admin" in names
    actions = [e["action"] for e in audit_events(api, username="admin")]
    assert "user.create" in actions and "user.delete" in actions and "api-key.delete" in actions


# --- certificates -------------------------------------------------------------------------------------


def peer_certificate(host: str, port: int) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=10) as raw, context.wrap_socket(raw) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def workers(client: httpx.Client) -> tuple[int, list[int]]:
    engine = client.get("/api/v1/status").json()["engine"]
    return engine["master_pid"], engine["workers"]


def test_certificate_replaced_without_a_reload(api):
    admin = api.login("admin")
    listed = admin.get("/api/v1/certificates").json()["certificates"]
    site = next(c for c in listed if c["name"] == "site")
    assert site["used_by"] == ["secure"] and site["days_left"] >= 364 and api.vip in site["sans"]
    assert "first site certificate" in peer_certificate(api.vip, api.tls_port).subject.rfc4514_string()
    before = workers(admin)

    ca = pki.make_ca("pacslb test CA")
    new = pki.issue(ca, "second site certificate", [api.vip])
    replaced = admin.put("/api/v1/certificates/site", json={"certificate": new.cert_pem.decode(), "key": new.key_pem.decode(),
                                                           "chain": ca.cert_pem.decode()})  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["hot_swapped"] == ["secure"]
    seen = peer_certificate(api.vip, api.tls_port)
    assert "second site certificate" in seen.subject.rfc4514_string()
    assert workers(admin) == before, "the HAProxy worker (and master) PIDs are unchanged: no reload"
    on_disk = api.cert_file.read_bytes()
    assert new.cert_pem in on_disk and ca.cert_pem in on_disk, "the file HAProxy loaded is written too"
    assert api.cert_file.stat().st_mode & 0o777 == 0o600

    # bad uploads name their field
    other = pki.self_signed("other", ["127.0.0.1"])
    mismatch = admin.put("/api/v1/certificates/site", json={"certificate": new.cert_pem.decode(), "key": other.key_pem.decode()})
    assert mismatch.status_code == 422 and mismatch.json()["problems"][0]["path"] == "key"
    import datetime as dt

    old = pki.self_signed("expired", ["127.0.0.1"], days=1, now=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    expired = admin.post(
        "/api/v1/certificates", json={"name": "old", "certificate": old.cert_pem.decode(), "key": old.key_pem.decode()}
    )
    assert expired.status_code == 422 and "expired" in expired.json()["problems"][0]["message"]
    wrong_order = admin.post("/api/v1/certificates", json={"name": "order", "certificate": new.cert_pem.decode(),
                                                          "key": new.key_pem.decode(), "chain": other.cert_pem.decode()})  # fmt: skip
    assert wrong_order.status_code == 422 and wrong_order.json()["problems"][0]["path"] == "chain[0]"
    assert "second site certificate" in peer_certificate(api.vip, api.tls_port).subject.rfc4514_string()


def test_certificate_generate_csr_assign_and_delete(api):
    admin = api.login("admin")
    made = admin.post("/api/v1/certificates/self-signed", json={"name": "made", "common_name": "made here", "sans": [api.vip]})
    assert made.status_code == 200, made.text
    csr = admin.post("/api/v1/certificates/csr", json={"name": "from-ca", "common_name": "pacs.example.org",
                                                      "sans": ["pacs.example.org", api.vip], "key_type": "ec"})  # fmt: skip
    assert csr.status_code == 200
    request = x509.load_pem_x509_csr(csr.json()["csr"].encode())
    assert request.is_signature_valid
    # the CA signs it; the upload needs no key (it stayed on the appliance)
    ca = pki.make_ca("site CA")
    from cryptography.hazmat.primitives import hashes

    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    signed = (x509.CertificateBuilder().subject_name(request.subject).issuer_name(ca.cert.subject)
              .public_key(request.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - __import__("datetime").timedelta(minutes=5))
              .not_valid_after(now + __import__("datetime").timedelta(days=90))
              .add_extension(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
              .sign(ca.key, hashes.SHA256()))  # fmt: skip
    from cryptography.hazmat.primitives import serialization

    uploaded = admin.post("/api/v1/certificates", json={"name": "from-ca",
                                                       "certificate": signed.public_bytes(serialization.Encoding.PEM).decode(),
                                                       "chain": ca.cert_pem.decode()})  # fmt: skip
    assert uploaded.status_code == 200, uploaded.text
    info = admin.get("/api/v1/certificates/from-ca").json()
    assert info["issuer"].startswith("CN=site CA") and 88 <= info["days_left"] <= 90 and info["chain_length"] == 1

    base = admin.get("/api/v1/config").json()["revision"]
    assigned = admin.put("/api/v1/virtual-services/secure/certificate", json={"name": "from-ca", "base_revision": base})
    assert assigned.status_code == 200, assigned.text
    assert "pacs.example.org" in peer_certificate(api.vip, api.tls_port).subject.rfc4514_string()
    assert admin.delete("/api/v1/certificates/from-ca").status_code == 409  # in use
    assert admin.delete("/api/v1/certificates/made").status_code == 200
    # back to the site certificate for the other tests
    again = admin.put("/api/v1/virtual-services/secure/certificate",
                      json={"name": "site", "base_revision": admin.get("/api/v1/config").json()["revision"]})  # fmt: skip
    assert again.status_code == 200
    actions = {e["action"] for e in audit_events(api)}
    assert {"certificate.replace", "certificate.self-signed", "certificate.csr", "certificate.assign"} <= actions


def test_user_commands_while_the_appliance_runs(api, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("night-shift-1\n")
    second.write_text("night-shift-2\n")
    added = api.appliance.cli("user", "add", "night", "--role", "viewer", "--password-file", str(first))
    assert added.returncode == 0, added.stderr
    night = api.login("night", "night-shift-1")
    assert night.get("/api/v1/me").json()["role"] == "viewer"
    changed = api.appliance.cli("user", "passwd", "night", "--password-file", str(second))
    assert changed.returncode == 0
    assert night.get("/api/v1/me").status_code == 401, "a changed password ends the user's sessions"
    assert api.login("night", "night-shift-2").get("/api/v1/me").status_code == 200
    assert api.appliance.cli("user", "del", "night").returncode == 0
    assert any(e["action"] == "user.delete" and e["via"] == "cli" for e in audit_events(api, action="user.delete"))


def test_first_admin_password_file_and_management_files(api):
    root = api.appliance.state_dir
    # the one-time password was changed at start (support/first_admin.py): its file went with it
    assert not (root / "initial-admin-password").exists() and api.one_time_password
    assert (root / "users.sqlite").stat().st_mode & 0o777 == 0o600
    assert (root / "audit.sqlite").stat().st_mode & 0o777 == 0o600
    assert (root / "management-url").read_text().strip().rstrip("/") == api.url
    log = api.appliance.read_log()
    assert log.count(api.one_time_password) == 1, "the one-time password is printed once, on stderr"
    assert api.one_time_password not in (root / "controller.log").read_text(), "and never into the log file"


def test_configured_certificate_and_unauthenticated_metrics_address(tmp_path):
    from api_support import start_management_appliance

    from support.realservers import TinyHTTPServer

    ca = pki.make_ca("management CA")
    own = pki.issue(ca, "pacslb management test", ["127.0.0.1"])
    cert = tmp_path / "management.pem"
    pki.write_pem(cert, own.bundle(chain=[ca]))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    metrics_port = free_port("127.0.0.1")
    servers = [TinyHTTPServer(f"rs{i}", loopback_host(200 + i)).start() for i in (1, 2)]
    appliance = None
    try:
        appliance, info = start_management_appliance(
            tmp_path, servers, f', certificate: {cert}, metrics_address: "127.0.0.1:{metrics_port}"'
        )
        # the configured certificate, verified against its CA (no verify=False here)
        trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with httpx.Client(base_url=info["url"], verify=trust, timeout=30) as client:
            assert client.get("/api/v1/health").status_code == 200
            assert client.get("/metrics").status_code == 401
        assert not (appliance.state_dir / "management" / "server.pem").exists(), "no self-signed certificate was made"
        plain = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30)
        assert plain.status_code == 200 and "pacslb_haproxy_up 1" in plain.text and "haproxy_process_" in plain.text
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/api/v1/config", timeout=30).status_code == 404
    finally:
        if appliance is not None:
            appliance.shut_down()
        for server in servers:
            server.stop()


def test_a_taken_management_port_does_not_stop_the_appliance(tmp_path):
    """Fail static: the engines serve although the management port is taken; the API listens once it is free."""
    import tempfile
    from pathlib import Path

    from support.appliance import Appliance
    from support.realservers import TinyHTTPServer

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    server = TinyHTTPServer("rs1", loopback_host(211)).start()
    appliance = None
    try:
        state_dir = Path(tempfile.mkdtemp(prefix="pacslb-api-", dir="/tmp")) / "state"
        vip = loopback_host(219)
        vip_port = free_port(vip)
        agent_port = free_port()  # the module's appliance holds the default agent port (held from start to stop)
        config = tmp_path / "taken.yaml"
        config.write_text(f"""version: 1
settings: {{max_connections: 2000, management: {{port: {port}}}, health: {{agent_port: {agent_port}}}}}
virtual_services:
  - name: web
    mode: layer7-http
    listen: [{{address: {vip}, port: {vip_port}}}]
    health_check: {{type: none}}
    real_servers: [{{name: rs1, address: {server.host}, port: {server.port}}}]
""")
        appliance = Appliance(state_dir=state_dir, config=config, log=tmp_path / "taken.log")
        appliance.up(wait=True)  # healthy: HAProxy serves although the management port is taken
        assert http_get(vip, vip_port) == (200, "rs1\n")
        wait_until(lambda: "cannot listen on 127.0.0.1 port" in appliance.read_log(), 30, what="the error to be logged")
        assert not (state_dir / "management-url").exists()
        blocker.close()
        wait_until((state_dir / "management-url").exists, 30, what="the management API to listen once the port is free")
        url = (state_dir / "management-url").read_text().strip()
        assert url == f"https://127.0.0.1:{port}/"
        assert httpx.get(url + "api/v1/health", verify=False, timeout=30).status_code == 200
    finally:
        blocker.close()
        if appliance is not None:
            appliance.shut_down()
        server.stop()
