"""The fallback server and the maintenance page for real (`pacslb up`, real HAProxy, loopback).

When every real server of a service, backups included, is down, traffic goes to the fallback
server; with `fallback: {maintenance_page: true}` HAProxy itself answers 503 with the page. When a
real server comes back, traffic goes to it again.
"""

from __future__ import annotations

import pytest

from support.configs import config_text, real_server, service
from support.net import free_port, http_get, loopback_host
from support.wait import wait_until

pytestmark = pytest.mark.e2e

CHECK = "{type: http, path: /, interval: 300ms, timeout: 300ms, rise: 1, fall: 1}"


def _body(vip: str, port: int) -> tuple[int, str]:
    try:
        return http_get(vip, port, timeout=3.0)
    except OSError as exc:
        return 0, str(exc)


def test_fallback_server_takes_traffic_when_every_real_server_is_down(start_appliance, http_server):
    rs1, standby, fallback = http_server("rs1"), http_server("standby"), http_server("fallback-server")
    vip, port = loopback_host(210), free_port()
    appliance = start_appliance(
        config_text(
            service(
                "web",
                "layer7-http",
                vip,
                port,
                [real_server(rs1), real_server(standby, backup=True)],
                health_check=CHECK,
                fallback=f"{{address: {fallback.host}, port: {fallback.port}}}",
            )  # fmt: skip
        )
    )
    assert _body(vip, port) == (200, "rs1\n")

    rs1.stop()
    wait_until(lambda: _body(vip, port) == (200, "standby\n"), 30, what="the backup serves while rs1 is down")
    assert fallback.requests == 0
    standby.stop()
    wait_until(lambda: _body(vip, port) == (200, "fallback-server\n"), 30, what="the fallback serves once the backup is down too")
    status = appliance.status()
    web = next(v for v in status["virtual_services"] if v["name"] == "web")
    assert web["fallback"]["name"] == "fallback"
    assert [r["state"] for r in web["real_servers"]] == ["DOWN", "DOWN"]

    rs1.start()
    wait_until(lambda: _body(vip, port) == (200, "rs1\n"), 30, what="rs1 serves again when it is back")


def test_maintenance_page_when_every_real_server_is_down(start_appliance, http_server, tmp_path):
    rs1, rs2 = http_server("rs1"), http_server("rs2")
    vip, port, port2 = loopback_host(211), free_port(), free_port()
    page = tmp_path / "our-page.html"
    page.write_text("<html><body>Radiology PACS maintenance until 22:00</body></html>\n")
    appliance = start_appliance(
        "\n".join(
            [
                "version: 1",
                # the page lies beside the appliance's folder, not in it: its folder is allowed explicitly
                f"settings: {{max_connections: 2000, files: {{allowed_directories: [{tmp_path}]}}}}",
                "virtual_services:",
                "  - name: viewer",
                "    mode: layer7-http",
                f"    listen: [{{address: {vip}, port: {port}}}]",
                f"    health_check: {CHECK}",
                f"    real_servers: [{{name: rs1, address: {rs1.host}, port: {rs1.port}}}]",
                "    fallback: {maintenance_page: true}",
                "  - name: portal",
                "    mode: layer7-http",
                f"    listen: [{{address: {vip}, port: {port2}}}]",
                f"    health_check: {CHECK}",
                f"    real_servers: [{{name: rs2, address: {rs2.host}, port: {rs2.port}}}]",
                f"    fallback: {{maintenance_page: true, page: {page}}}",
            ]
        )
        + "\n"
    )
    assert _body(vip, port) == (200, "rs1\n")
    assert _body(vip, port2) == (200, "rs2\n")

    rs1.stop()
    # (a request that arrives before the check has seen rs1 fail gets HAProxy's own 503)
    status, body = wait_until(
        lambda: (a := _body(vip, port))[0] == 503 and "Service temporarily unavailable" in a[1] and a,
        30,
        what="the maintenance page while rs1 is down",
    )
    assert "imaging service is temporarily unavailable" in body
    assert _body(vip, port2) == (200, "rs2\n")  # the other service is untouched
    rs2.stop()
    status, body = wait_until(
        lambda: (a := _body(vip, port2))[0] == 503 and "Radiology" in a[1] and a, 30, what="the custom page while rs2 is down"
    )
    assert "Radiology PACS maintenance until 22:00" in body
    viewer = next(v for v in appliance.status()["virtual_services"] if v["name"] == "viewer")
    assert viewer["fallback"]["address"].startswith("maintenance page")

    rs1.start()
    wait_until(lambda: _body(vip, port) == (200, "rs1\n"), 30, what="rs1 serves again when it is back")


def test_a_maintenance_page_on_a_tcp_service_is_refused(start_appliance, tmp_path):
    config = tmp_path / "tcp.yaml"
    config.write_text(
        "version: 1\nvirtual_services:\n  - name: dicom\n    mode: layer7-tcp\n"
        "    listen: [{address: 127.0.0.1, port: 11112}]\n"
        "    real_servers: [{name: pacs1, address: 127.0.0.1, port: 11113}]\n"
        "    fallback: {maintenance_page: true}\n"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pacslb", "validate", "-c", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "virtual_services[dicom]" in done.stdout + done.stderr
    assert "a layer7-tcp service can only have a fallback server" in done.stdout + done.stderr
