"""HAProxy's workers drop root on the real appliance (issue 22): seen from /proc while everything still works.

The appliance (`pacslb up` run by root, real HAProxy, the management API) serves an HTTP and a TLS service in
front of two real servers. Its HAProxy master stays root and unconfined; each worker runs as the haproxy
user and group with no supplementary group and no capability, its root directory the empty, root-owned
<state>/haproxy/chroot. Meanwhile traffic flows, a drain goes through the stats socket, the management API
reads HAProxy's Prometheus exporter, a certificate is swapped in memory (`set ssl cert`), health checks
take a dead real server out and its 'DOWN' reaches HAProxy's log, and a hitless reload's new workers drop
root again. The sockets the master made before forking stay root's, mode 0600, and the controller uses them.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import ssl
import stat

import pytest
from api_support import ApiAccess, start_management_appliance
from cryptography import x509

from pacslb import pki
from pacslb.engines.haproxy import process
from support.net import http_get, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture
def api(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the controller drops HAProxy's workers to the haproxy user only when it runs as root")
    servers = [TinyHTTPServer(f"rs{i}", loopback_host(220 + i)).start() for i in (1, 2)]
    appliance = None
    try:
        appliance, info = start_management_appliance(tmp_path, servers)
        access = ApiAccess(appliance, info["url"], info["password"], info["vip"], info["port"], info["tls_port"], servers,
                           info["cert"])  # fmt: skip
        yield access
        access.close()
    finally:
        if appliance is not None:
            appliance.shut_down()
        for server in servers:
            server.stop()


def status_ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid (real, effective, saved, filesystem), Groups and CapEff of /proc/PID/status."""
    found = {}
    for line in open(f"/proc/{pid}/status").read().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            found[key] = [int(v) for v in value.split()]
        elif key == "CapEff":
            found[key] = [int(value.strip(), 16)]
    return found


def assert_dropped(pid: int, chroot: str) -> None:
    """A worker: the haproxy user and group everywhere, no supplementary group, no capability, inside the chroot."""
    uid, gid = pwd.getpwnam("haproxy").pw_uid, grp.getgrnam("haproxy").gr_gid
    ids = status_ids(pid)
    assert ids == {"Uid": [uid] * 4, "Gid": [gid] * 4, "Groups": [], "CapEff": [0]}, f"worker {pid}: {ids}"
    assert os.readlink(f"/proc/{pid}/root") == chroot, f"worker {pid} is not chrooted"


def current_workers(api) -> list[int]:
    return [w.pid for w in process.show_proc(api.appliance.paths).current_workers]


def answers(api, count: int = 8) -> set[str]:
    names = set()
    for _ in range(count):
        status, body = http_get(api.vip, api.vip_port)
        assert status == 200, body
        names.add(body.strip())
    return names


def peer_subject(host: str, port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=10) as raw, context.wrap_socket(raw) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).subject.rfc4514_string()


def logged(api, start: str) -> bool:
    """A log line (`log stdout format raw`) beginning so, not HAProxy's '[WARNING] (PID) :' copy of it on stderr."""
    return any(line.startswith(start) for line in api.appliance.haproxy_log().splitlines())


def server_state(client, service: str, real_server: str) -> str:
    vs = next(v for v in client.get("/api/v1/status").json()["virtual_services"] if v["name"] == service)
    return next(r for r in vs["real_servers"] if r["name"] == real_server)["state"]


def test_workers_run_as_haproxy_in_an_empty_chroot_and_everything_still_works(api):
    paths = api.appliance.paths
    chroot = str(paths.haproxy_chroot)

    # the chroot: empty, root's, mode 0755; the config says so
    found = os.lstat(chroot)
    assert stat.S_ISDIR(found.st_mode) and (found.st_uid, found.st_gid, stat.S_IMODE(found.st_mode)) == (0, 0, 0o755)
    assert os.listdir(chroot) == []
    text = paths.haproxy_config.read_text()
    assert f"    chroot {chroot}\n    user haproxy\n    group haproxy\n" in text

    # the master stays root and unconfined; every worker dropped
    table = process.show_proc(paths)
    assert status_ids(table.master.pid)["Uid"] == [0, 0, 0, 0]
    assert os.readlink(f"/proc/{table.master.pid}/root") == "/"
    before = current_workers(api)
    assert before
    for worker in before:
        assert_dropped(worker, chroot)

    # the sockets the master made before forking: root's and private, and the controller talks to them
    for sock in (paths.haproxy_admin_socket, paths.haproxy_master_socket, paths.haproxy_prometheus_socket):
        made = os.lstat(sock)
        assert stat.S_ISSOCK(made.st_mode) and (made.st_uid, stat.S_IMODE(made.st_mode)) == (0, 0o600), sock

    # traffic to both real servers; a drain through the stats socket (no reload) leaves rs2 alone
    assert answers(api) == {"rs1", "rs2"}
    admin = api.login("admin")
    drained = admin.put("/api/v1/virtual-services/web/real-servers/rs1/state", json={"state": "drain"})
    assert drained.status_code == 200 and drained.json()["engine"]["reloaded"] is False, drained.text
    wait_until(lambda: server_state(admin, "web", "rs1") == "DRAIN", 30, what="rs1 drained")
    assert answers(api) == {"rs2"}
    assert admin.put("/api/v1/virtual-services/web/real-servers/rs1/state", json={"state": "online"}).status_code == 200
    wait_until(lambda: server_state(admin, "web", "rs1") == "UP", 30, what="rs1 online again")

    # HAProxy's Prometheus exporter on its Unix socket, read by the management API
    metrics = admin.get("/metrics")
    assert metrics.status_code == 200 and "haproxy_process_" in metrics.text

    # a certificate swapped in memory by the unprivileged worker (set ssl cert), no reload
    assert "first site certificate" in peer_subject(api.vip, api.tls_port)
    ca = pki.make_ca("privileges test CA")
    new = pki.issue(ca, "second site certificate", [api.vip])
    replaced = admin.put("/api/v1/certificates/site", json={"certificate": new.cert_pem.decode(), "key": new.key_pem.decode(),
                                                           "chain": ca.cert_pem.decode()})  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    assert "second site certificate" in peer_subject(api.vip, api.tls_port)
    assert current_workers(api) == before, "the swap needed no reload"

    # health checks from the worker take a dead real server out, and its log line reaches haproxy.log
    api.servers[1].stop()
    wait_until(lambda: server_state(admin, "web", "rs2") == "DOWN", 30, what="rs2 DOWN")
    wait_until(lambda: logged(api, "Server web/rs2 is DOWN"), 10, what="the worker's log line about rs2")
    assert answers(api) == {"rs1"}

    # a hitless reload: the master (root) reads the file again, the new workers drop root again
    process.reload(paths)
    after = current_workers(api)
    assert after and not set(after) & set(before)
    for worker in after:
        assert_dropped(worker, chroot)
    wait_until(lambda: server_state(admin, "web", "rs2") == "DOWN", 30, what="rs2 DOWN after the reload")
    assert answers(api) == {"rs1"}
    assert "second site certificate" in peer_subject(api.vip, api.tls_port)
