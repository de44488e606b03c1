"""HL7 v2 messages a RIS would send to the balance service (ORM^O01 new or cancel, ORU^R01 signed), and an MLLP
client that sends them one by one over a kept connection (loopback only)."""

from __future__ import annotations

import socket

from pacslb.health.hl7 import frame, unframe

PRIORITY_CODE = {"STAT": "S", "expedited": "A", "routine": "R"}


def orm(control: str, accession: str, patient: str, modality: str = "CT", priority: str = "routine", body_part: str = "", site: str = "north", order_control: str = "NW") -> str:  # fmt: skip
    """An ORM^O01 order (segments separated by carriage returns)."""
    code = PRIORITY_CODE.get(priority, priority)
    return "\r".join([
        f"MSH|^~\\&|RIS|{site.upper()}|PACSLB|BALANCE|20261207080000||ORM^O01|{control}|P|2.5",
        f"PID|1||{patient}^^^HOSP||DOE^JANE",
        f"PV1|1|O|RAD^^^{site}",
        f"ORC|{order_control}|{accession}|{accession}||||^^^^^{code}",
        f"OBR|1|{accession}|{accession}|{modality}^{body_part or modality}|||||||||||^^^{body_part}|||||||||{modality}",
    ]) + "\r"  # fmt: skip


def oru(control: str, accession: str, reader: str = "", status: str = "F") -> str:
    """An ORU^R01 report with OBR-25 result status (F: final, the report is signed)."""
    return "\r".join([
        f"MSH|^~\\&|VR|NORTH|PACSLB|BALANCE|20261207090000||ORU^R01|{control}|P|2.5",
        "PID|1||P0^^^HOSP||DOE^JANE",
        f"OBR|1|{accession}|{accession}|CT^CT|||||||||||||||||||||{status}|||||||{reader}",
        "OBX|1|TX|REPORT||normal",
    ]) + "\r"  # fmt: skip


class MLLPClient:
    """One connection; `send` returns the unframed acknowledgement as text."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def send_raw(self, data: bytes) -> str:
        self.sock.sendall(data)
        while True:
            message, self.buffer = unframe(self.buffer)
            if message is not None:
                return message.decode()
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the service closed the connection before acknowledging")
            self.buffer += chunk

    def send(self, message: str) -> str:
        return self.send_raw(frame(message))

    def close(self) -> None:
        self.sock.close()


def msa(ack: str) -> list[str]:
    """The MSA fields of an acknowledgement: [code, control ID, text]."""
    for segment in ack.split("\r"):
        if segment.startswith("MSA|"):
            return (segment.split("|") + ["", "", ""])[1:4]
    raise AssertionError(f"no MSA in {ack!r}")
