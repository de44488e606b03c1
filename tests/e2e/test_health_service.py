"""The appliance's health-check service for real: `pacslb up`, real HAProxy, checks the appliance runs itself.

A layer7-tcp service whose real servers are checked by an `external` script (down while a flag file
of that server exists): the server that fails gets no new connections and `pacslb status` shows it
DOWN with the reason; it comes back after `rise` passes; a controller killed and started again
takes no server down (and brings no down server up).

The DICOM failover of issue 6: a layer7-tcp service for DICOM in front of two real `storescp`
(dcmtk), checked with dicom-echo. While `storescu` sends a study of 60 images through the VIP, one
storescp is restarted with --refuse (it accepts TCP, refuses every association, so its C-ECHO
fails); the sender retries a failed association as a modality does, and every image arrives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pacslb.engines.haproxy.runtime import RuntimeAPI
from support.appliance import PACSLB
from support.configs import tcp_service_config
from support.net import free_port, http_get, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = pytest.mark.e2e


# --- an external check that follows flag files ---------------------------------------------------------


def _flag_script(tmp_path: Path) -> tuple[Path, Path]:
    """A check script: down while <flags>/<address>_<port> exists."""
    flags = tmp_path / "flags"
    flags.mkdir()
    script = tmp_path / "check.sh"
    script.write_text(f'#!/bin/sh\nif [ -e "{flags}/$3_$4" ]; then echo "flag file says down" >&2; exit 1; fi\nexit 0\n')
    script.chmod(0o755)
    return script, flags


def _tcp_config(port: int, agent_port: int, servers: list[TinyHTTPServer], script: Path, vip: str) -> str:
    return tcp_service_config(
        port,
        servers,
        vip=vip,
        # the script lies beside the appliance's folder, not in it: its folder is allowed explicitly
        settings=f"{{max_connections: 2000, health: {{agent_port: {agent_port}}}, files: {{allowed_directories: [{script.parent}]}}}}",
        health_check=f"{{type: external, script: {script}, interval: 300ms, timeout: 300ms, rise: 2, fall: 2}}",
    )


def _haproxy_status(appliance, server: str) -> str:
    """HAProxy's own word for a server (asked directly: works without a controller)."""
    rows = RuntimeAPI(appliance.paths.haproxy_admin_socket, timeout=3.0).show_stat()
    return next(r.status for r in rows if r.proxy == "pacs" and r.name == server)


def _answers(vip: str, port: int, count: int) -> list[str]:
    return [http_get(vip, port)[1].strip() for _ in range(count)]


def test_failed_check_takes_the_server_out_and_rise_brings_it_back(start_appliance, http_server, tmp_path):
    rs1, rs2 = http_server("rs1"), http_server("rs2")
    script, flags = _flag_script(tmp_path)
    vip, port = loopback_host(200), free_port()
    appliance = start_appliance(_tcp_config(port, free_port(), [rs1, rs2], script, vip))

    wait_until(lambda: set(_answers(vip, port, 6)) == {"rs1", "rs2"}, 30, what="both real servers take connections")
    wait_until(
        lambda: all(appliance.server(appliance.status(), "pacs", n)["check"]["outcome"] == "passed" for n in ("rs1", "rs2")),
        30,
        what="the appliance's checks pass for both",
    )
    status = appliance.status()
    check = appliance.server(status, "pacs", "rs1")["check"]
    assert check["by"] == "appliance" and check["type"] == "external"

    (flags / f"{rs1.host}_{rs1.port}").touch()
    down = wait_until(
        lambda: (rs := appliance.server(appliance.status(), "pacs", "rs1"))["state"] == "DOWN" and rs,
        30,
        what="rs1 DOWN after its check fails `fall` times",
    )
    assert down["check"]["outcome"] == "failed"
    assert "script exited 1: flag file says down" in down["check"]["description"]
    assert "appliance" in (down["transition"] or "")
    table = subprocess.run(  # the table as a person reads it (wide: rich wraps cells at 80 columns otherwise)
        [*PACSLB, "status", "--state-dir", str(appliance.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    first = next(i for i, lis in enumerate(lines) if " rs1 " in lis)
    row = [lines[first].split("│")]
    for line in lines[first + 1 :]:  # a cell wrapped by the table goes on in the next lines, name column empty
        cols = line.split("│")
        if len(cols) < 8 or cols[2].strip():
            break
        row.append(cols)
    cells = lambda n: " ".join(cols[n].strip() for cols in row).strip()  # noqa: E731
    assert cells(4).startswith("DOWN"), table.stdout
    assert cells(6) == "failed: script exited 1: flag file says down", table.stdout

    before = rs1.requests
    assert _answers(vip, port, 20) == ["rs2"] * 20  # no new connection for the failed server
    assert rs1.requests == before
    assert "real server pacs/rs1 is DOWN: script exited 1: flag file says down" in appliance.read_log()

    (flags / f"{rs1.host}_{rs1.port}").unlink()
    wait_until(lambda: appliance.server(appliance.status(), "pacs", "rs1")["state"] == "UP", 30, what="rs1 UP after rise passes")
    wait_until(lambda: "rs1" in _answers(vip, port, 6), 30, what="rs1 takes connections again")
    assert "real server pacs/rs1 is UP" in appliance.read_log()


def test_a_controller_restart_takes_no_server_down_nor_brings_one_up(start_appliance, http_server, tmp_path):
    rs1, rs2 = http_server("rs1"), http_server("rs2")
    script, flags = _flag_script(tmp_path)
    vip, port = loopback_host(201), free_port()
    appliance = start_appliance(_tcp_config(port, free_port(), [rs1, rs2], script, vip))
    (flags / f"{rs2.host}_{rs2.port}").touch()
    wait_until(lambda: _haproxy_status(appliance, "rs2").startswith("DOWN"), 30, what="rs2 DOWN by the appliance's check")
    wait_until(lambda: _haproxy_status(appliance, "rs1") == "UP", 30, what="rs1 UP")

    appliance.kill9()  # HAProxy keeps serving; nobody answers on the agent port now
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 3.0  # ten check intervals without a controller
    while time.monotonic() < deadline:
        seen.add((_haproxy_status(appliance, "rs1"), _haproxy_status(appliance, "rs2").split(" ")[0]))
        time.sleep(0.05)
    assert seen == {("UP", "DOWN")}, f"states changed without a controller: {seen}"
    assert set(_answers(vip, port, 6)) == {"rs1"}

    appliance.up(wait=False)  # a new controller adopts HAProxy; its checks start from nothing
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.add((_haproxy_status(appliance, "rs1"), _haproxy_status(appliance, "rs2").split(" ")[0]))
        try:
            if appliance.api("GET", "/health").status_code == 200:
                status = appliance.status()
                if all(appliance.server(status, "pacs", n)["check"]["outcome"] in ("passed", "failed") for n in ("rs1", "rs2")):
                    break  # both watches decided
        except Exception:  # noqa: BLE001 - the API comes up during this loop
            pass
        time.sleep(0.05)
    else:
        pytest.fail("the restarted controller's checks did not decide within 30s")
    for _ in range(20):  # and a few intervals more
        seen.add((_haproxy_status(appliance, "rs1"), _haproxy_status(appliance, "rs2").split(" ")[0]))
        time.sleep(0.05)
    assert seen == {("UP", "DOWN")}, f"a controller restart changed server states: {seen}"

    # a reload (a new HAProxy worker) keeps them too: the server-state file, then the agent's answers
    reloads = appliance.api_status()["engine"]["reloads"]
    appliance.config.write_text(appliance.config.read_text().replace("settings: {", "settings: {timeouts: {client: 11h}, "))
    done = appliance.cli("apply", "-c", str(appliance.config))
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        seen.add((_haproxy_status(appliance, "rs1"), _haproxy_status(appliance, "rs2").split(" ")[0]))
        time.sleep(0.05)
    assert appliance.api_status()["engine"]["reloads"] > reloads, "the apply did not reload HAProxy"
    assert seen == {("UP", "DOWN")}, f"a reload changed server states: {seen}"

    (flags / f"{rs2.host}_{rs2.port}").unlink()
    wait_until(lambda: _haproxy_status(appliance, "rs2") == "UP", 30, what="rs2 UP after its check passes again")


# --- DICOM failover with dcmtk ----------------------------------------------------------------------------

STORESCP = shutil.which("storescp")
STORESCU = shutil.which("storescu")
IMAGES = 60


def _make_study(directory: Path, count: int) -> set[str]:
    """`count` small CT images (64x64) of one study; returns their SOP Instance UIDs."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study, series = generate_uid(), generate_uid()
    uids = set()
    for i in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(directory / f"ct{i:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID, ds.Modality = "TEST^FAILOVER", "PACSLB-E2E", "CT"
        ds.InstanceNumber = i + 1
        ds.Rows = ds.Columns = 64
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.PixelData = bytes((i + x) % 256 for x in range(64 * 64 * 2))
        ds.save_as(directory / f"ct{i:03d}.dcm", enforce_file_format=True)
        uids.add(str(ds.SOPInstanceUID))
    return uids


def _received(directories: list[Path]) -> dict[str, int]:
    """SOP Instance UID -> how many copies arrived, across the storescp output directories."""
    from pydicom import dcmread

    found: dict[str, int] = {}
    for directory in directories:
        for f in directory.iterdir():
            if f.is_file():
                try:
                    uid = str(dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                except Exception:  # noqa: BLE001 - a file still being written
                    continue
                found[uid] = found.get(uid, 0) + 1
    return found


class StoreSCP:
    """One real `storescp` (AE STORESCP) writing what it receives to its own directory."""

    def __init__(self, name: str, port: int, out: Path, log: Path) -> None:
        self.name, self.port, self.out, self.log = name, port, out, log
        self.process: subprocess.Popen | None = None

    def start(self, *extra: str) -> "StoreSCP":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    "timeout",
                    "300",
                    STORESCP,
                    "-aet",
                    "STORESCP",
                    "-od",
                    str(self.out),
                    "-ta",
                    "10",
                    "-td",
                    "10",
                    *extra,
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_until(self._listening, 30, what=f"storescp {self.name} listening on {self.port}")
        return self

    def _listening(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None


@pytest.mark.slow
@pytest.mark.skipif(STORESCP is None or STORESCU is None, reason="dcmtk is not installed: `make deps` (Debian package dcmtk)")
def test_dicom_failover_every_image_arrives(start_appliance, tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    uids = _make_study(study, IMAGES)
    outs = [tmp_path / "pacs1", tmp_path / "pacs2"]
    for o in outs:
        o.mkdir()
    scps = [StoreSCP(f"pacs{i + 1}", free_port(), outs[i], tmp_path / f"storescp{i + 1}.log") for i in range(2)]
    try:
        for scp in scps:
            scp.start()
        vip, port = loopback_host(202), free_port()
        config = tcp_service_config(
            port,
            [(s.name, "127.0.0.1", s.port) for s in scps],
            name="dicom",
            vip=vip,
            settings=f"{{max_connections: 2000, health: {{agent_port: {free_port()}}}}}",
            # fall 3 at 1s: a window of seconds where pacs1 refuses associations but still takes connections
            health_check="{type: dicom-echo, called_ae: STORESCP, interval: 1s, timeout: 1s, rise: 2, fall: 3}",
        )
        appliance = start_appliance(config)
        wait_until(
            lambda: all(appliance.server(appliance.status(), "dicom", s.name)["check"]["outcome"] == "passed" for s in scps),
            30,
            what="both storescp pass their C-ECHO",
        )

        files = sorted(study.iterdir())
        batches = [files[i : i + 5] for i in range(0, len(files), 5)]
        failed_associations = 0
        switched = False
        pacs1_sessions_when_down: int | None = None
        for number, batch in enumerate(batches):
            if number == 3:  # mid-study: pacs1 starts refusing associations (TCP still accepts)
                scps[0].stop()
                scps[0].start("--refuse")
                switched = True
            for _attempt in range(40):  # a modality retries a failed association
                done = subprocess.run(
                    [
                        STORESCU,
                        "-aec",
                        "STORESCP",
                        "-aet",
                        "MODALITY",
                        "-to",
                        "10",
                        "-ta",
                        "10",
                        "-td",
                        "10",
                        vip,
                        str(port),
                        *map(str, batch),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    stdin=subprocess.DEVNULL,
                )
                if done.returncode == 0 and "Store Failed" not in done.stderr and "Association Rejected" not in done.stderr:
                    break
                failed_associations += 1
                time.sleep(0.3)
            else:
                pytest.fail(f"batch {number} could not be sent in 40 associations: {done.stderr[-500:]}")
            if switched and pacs1_sessions_when_down is None:
                rs = appliance.server(appliance.status(), "dicom", "pacs1")
                if rs["state"] == "DOWN":
                    pacs1_sessions_when_down = rs["sessions"]["total"]
                    assert rs["check"]["outcome"] == "failed" and rs["check"]["type"] == "dicom-echo", json.dumps(rs)

        assert switched and pacs1_sessions_when_down is not None, "pacs1 was not DOWN by the end of the study"
        received = _received(outs)
        missing = uids - set(received)
        assert not missing, f"{len(missing)} of {IMAGES} images never arrived"
        assert len(list(outs[0].iterdir())) > 0 and len(list(outs[1].iterdir())) > 0, (
            "both archives took images before the switch"
        )
        rs = appliance.server(appliance.status(), "dicom", "pacs1")
        assert rs["state"] == "DOWN" and rs["check"]["outcome"] == "failed", json.dumps(rs)
        # no new connection (association) went to pacs1 once it was DOWN
        assert rs["sessions"]["total"] == pacs1_sessions_when_down
        print(
            f"DICOM failover: {IMAGES} images all arrived, {failed_associations} associations retried, "
            f"{len(received)} distinct images in pacs1 {len(list(outs[0].iterdir()))} + pacs2 {len(list(outs[1].iterdir()))} files"
        )
    finally:
        for scp in scps:
            scp.stop()


def test_a_real_server_added_at_runtime_is_checked_by_the_appliance(start_appliance, http_server, tmp_path):
    rs1, rs2, rs3 = http_server("rs1"), http_server("rs2"), http_server("rs3")
    script, flags = _flag_script(tmp_path)
    vip, port, agent_port = loopback_host(203), free_port(), free_port()
    appliance = start_appliance(_tcp_config(port, agent_port, [rs1, rs2], script, vip))
    wait_until(lambda: set(_answers(vip, port, 6)) == {"rs1", "rs2"}, 30, what="both real servers take connections")

    (flags / f"{rs3.host}_{rs3.port}").touch()  # rs3 joins failing its check
    appliance.config.write_text(_tcp_config(port, agent_port, [rs1, rs2, rs3], script, vip))
    reloads = appliance.api_status()["engine"]["reloads"]
    done = appliance.cli("apply", "-c", str(appliance.config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert appliance.api_status()["engine"]["reloads"] == reloads, f"adding a real server needs no reload:\n{done.stdout}"
    down = wait_until(
        lambda: (r := appliance.server(appliance.status(), "pacs", "rs3"))["state"] == "DOWN" and r,
        30,
        what="rs3 (added at runtime) DOWN by the appliance's check",
    )
    assert "flag file says down" in down["check"]["description"]
    assert rs3.requests == 0 and set(_answers(vip, port, 10)) == {"rs1", "rs2"}
    (flags / f"{rs3.host}_{rs3.port}").unlink()
    wait_until(lambda: "rs3" in _answers(vip, port, 9), 30, what="rs3 takes connections once its check passes")
