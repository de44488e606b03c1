#!/usr/bin/env python3
"""CPU of the DICOM codec work of one dicom-echo check: pacslb's own codec against pynetdicom's PDU and
DIMSE classes (issue 6 chose between them with this).

    .venv/bin/python bench/dicom_codec.py [--checks 5000]

One check's codec work = encode the A-ASSOCIATE-RQ, decode the A-ASSOCIATE-AC, encode the C-ECHO-RQ
in a P-DATA-TF, decode the C-ECHO-RSP and its Status, encode the A-RELEASE-RQ, decode the A-RELEASE-RP.
No sockets: process CPU time (time.process_time) per check, best of 3 rounds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "health"))

import dicom_reference as ref  # noqa: E402
from pynetdicom import pdu  # noqa: E402

from pacslb.health import dicom_pdu  # noqa: E402

AC, RSP, RP = ref.associate_ac(), ref.echo_rsp(0), ref.release_rp()


def pacslb_check() -> None:
    echo = dicom_pdu.CEcho("PACSLB", "ARCHIVE")
    echo.start()
    echo.feed(AC)
    echo.feed(RSP)
    _, verdict = echo.feed(RP)
    assert verdict is not None and verdict.up


def pynetdicom_check() -> None:
    ref.associate_rq("PACSLB", "ARCHIVE")
    ac = pdu.A_ASSOCIATE_AC()
    ac.decode(AC)
    ac.to_primitive()
    ref.echo_rq(1)
    assert ref.decode_echo_rsp(RSP).Status == 0
    pdu.A_RELEASE_RQ().encode()
    pdu.A_RELEASE_RP().decode(RP)


def per_check(function, checks: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(checks):
            function()
        best = min(best, (time.process_time() - started) / checks)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=5000)
    args = parser.parse_args()
    for name, function in (("pacslb codec", pacslb_check), ("pynetdicom PDU + DIMSE classes", pynetdicom_check)):
        print(f"{name:32} {per_check(function, args.checks) * 1e6:8.1f} us CPU per check")


if __name__ == "__main__":
    main()
