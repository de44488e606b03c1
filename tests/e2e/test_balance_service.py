"""`pacslb balance run` as a real process on loopback: a few hundred ORMs over MLLP, simulated readers pulling their
next case over REST and sending ORU when done, the service SIGKILLed mid-run and started again on the same state.
Every exam must be read exactly once and none lost; malformed HL7 gets AE/AR with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from support.hl7feed import MLLPClient, msa, orm, oru
from support.net import LOOPBACK, free_port
from support.processes import pid_gone, stop_group
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMS = 300
READERS = ("ada", "bo", "cy", "dee")
CONFIG = """
timezone: UTC
effort:
  - {modality: CT, effort: 1.3}
  - {modality: XR, effort: 0.25}
  - {modality: MR, effort: 1.5, subspecialty: msk}
  - {modality: MG, effort: 0.75, credential: MQSA}
readers:
  - {name: ada, credentials: [MQSA]}
  - {name: bo, subspecialties: [msk]}
  - {name: cy, sites: [north]}
  - {name: dee, credentials: [MQSA], subspecialties: [msk]}
shifts:
""" + "".join(
    f'  - {{reader: {r}, start: "00:00", end: "12:00", capacity: 6}}\n  - {{reader: {r}, start: "12:00", end: "00:00", capacity: 6}}\n'
    for r in READERS
)
MODALITIES = ("CT", "XR", "XR", "MR", "MG", "CT")
PRIORITIES = ("routine", "routine", "STAT", "expedited")


class Service:
    """One `pacslb balance run` process, with a bounded life (--exit-after) and stopped by PID."""

    def __init__(self, tmp_path, state_dir) -> None:
        self.mllp, self.http = free_port(), free_port()
        self.log = open(tmp_path / f"balance-{self.mllp}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pacslb", "balance", "run", "-c", str(tmp_path / "balance.yaml"), "--state-dir", str(state_dir),
             "--host", LOOPBACK, "--mllp-port", str(self.mllp), "--http-port", str(self.http), "--exit-after", "300"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.client = httpx.Client(base_url=f"http://{LOOPBACK}:{self.http}", timeout=30)
        wait_until(self._ready, timeout=60, what="the balance service to answer")
        self.feed = MLLPClient(LOOPBACK, self.mllp)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"balance service exited with {self.process.returncode}")
        try:
            return self.client.get("/api/counts").status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a power cut or an OOM kill would: no chance to flush anything."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self.close()

    def close(self) -> None:
        """Idempotent: the connections, then the process by its group (SIGTERM, SIGKILL after a grace)."""
        if hasattr(self, "feed"):
            self.feed.close()
        self.client.close()
        stop_group(self.process)
        self.log.close()


def test_every_exam_is_read_exactly_once_across_a_kill(tmp_path):
    (tmp_path / "balance.yaml").write_text(CONFIG)
    state = tmp_path / "state"
    services: list[Service] = []
    try:
        service = Service(tmp_path, state)
        services.append(service)
        # malformed HL7: AR for what is not HL7, AE for an order without an accession
        assert msa(service.feed.send_raw(b"\x0bnot hl7 at all\x1c\x0d"))[0] == "AR"
        code, _, reason = msa(service.feed.send(orm("bad1", "", "P1")))
        assert code == "AE" and "OBR-3" in reason

        opened: dict[str, str] = {}  # accession -> reader who opened it
        in_hand: dict[str, str] = {}  # reader -> accession opened, report not yet sent
        signed: set[str] = set()
        sent = 0
        killed = False
        started = time.monotonic()
        while len(signed) < EXAMS:
            assert time.monotonic() - started < 240, f"only {len(signed)} of {EXAMS} read"
            for _ in range(12):  # the RIS sends orders in bursts
                if sent < EXAMS:
                    sent += 1
                    message = orm(f"o{sent}", f"ACC{sent:04d}", f"P{sent % 97}", MODALITIES[sent % 6], PRIORITIES[sent % 4],
                                  site="north" if sent % 3 else "south")  # fmt: skip
                    assert msa(service.feed.send(message))[:2] == ["AA", f"o{sent}"]
            for reader in READERS:
                if reader in in_hand:  # done reading: the report is signed
                    accession = in_hand.pop(reader)
                    assert msa(service.feed.send(oru(f"r-{accession}", accession, reader)))[0] == "AA"
                    signed.add(accession)
                reply = service.client.post(f"/api/readers/{reader}/next")
                if reply.status_code == 200:
                    case = reply.json()
                    assert case["accession"] not in opened, f"{case['accession']} opened twice"
                    assert case["reason"]
                    opened[case["accession"]] = reader
                    in_hand[reader] = case["accession"]
                else:
                    assert reply.status_code == 204, reply.text
            if not killed and sent >= EXAMS // 2 and in_hand:
                service.kill()  # mid-run, with cases opened and not yet signed
                service = Service(tmp_path, state)
                services.append(service)
                killed = True
        assert killed
        counts = service.client.get("/api/counts").json()
        assert counts == {"signed": EXAMS}, counts
        assert len(opened) == EXAMS and signed == set(opened)
        for accession in ("ACC0001", f"ACC{EXAMS:04d}"):
            [*_, first] = service.client.get("/api/assignments", params={"accession": accession}).json()
            assert first["reader"] and first["reason"]
        page = service.client.get("/")
        assert page.status_code == 200 and "<svg" in page.text
    finally:
        for s in services:
            s.close()
        for s in services:
            assert pid_gone(s.process.pid)
