"""`pacslb verify` on a DICOM service: a C-ECHO association through a layer7-tcp VIP to a real dcmtk storescp,
with the AE titles of the service's dicom-echo check."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest

from support.configs import tcp_service_config
from support.net import accepts, free_port, loopback_host
from support.wait import wait_until

pytestmark = [pytest.mark.e2e]

STORESCP = shutil.which("storescp")
CHECK = "{{type: dicom-echo, called_ae: {ae}, interval: 1s, timeout: 1s, rise: 1, fall: 2}}"


@pytest.fixture
def storescp(tmp_path):
    """One storescp (AE STORESCP, at most 300 s), stopped by its process group in teardown."""
    port = free_port()
    with open(tmp_path / "storescp.log", "ab") as log:
        process = subprocess.Popen(
            ["timeout", "300", STORESCP, "-aet", "STORESCP", "--fork", "-od", str(tmp_path), str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(lambda: accepts(port), 30, what="storescp listening")
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.skipif(STORESCP is None, reason="dcmtk is not installed: `make deps` (Debian package dcmtk)")
def test_verify_sends_a_c_echo_through_a_dicom_vip(start_appliance, storescp):
    vip, port = loopback_host(204), free_port()
    settings = f"{{max_connections: 2000, health: {{agent_port: {free_port()}}}}}"
    config = tcp_service_config(port, [("pacs1", "127.0.0.1", storescp)], name="dicom", vip=vip,
                                health_check=CHECK.format(ae="STORESCP"), settings=settings)  # fmt: skip
    appliance = start_appliance(config)
    done = appliance.cli("verify", "--json", timeout=120)
    assert done.returncode == 0, (done.stdout, done.stderr)
    (route,) = json.loads(done.stdout)["routes"]
    assert (route["request"], route["status"], route["service"], route["real_server"]) == (
        "DICOM C-ECHO to STORESCP",
        "C-ECHO success",
        "dicom",
        "pacs1",
    ), route
