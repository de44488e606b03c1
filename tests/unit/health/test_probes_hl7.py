"""MLLP framing, the check message and the judging of acknowledgements (pure; no sockets)."""

from __future__ import annotations

import hl7
import pytest

from pacslb.health import hl7 as check
from pacslb.health.base import Result

# (message, wire): one table for framing and unframing
MLLP = [
    ("MSH|^~\\&|A\r", b"\x0bMSH|^~\\&|A\r\x1c\x0d"),
    ("", b"\x0b\x1c\x0d"),
    ("MSH|^~\\&|\u00e9\r", b"\x0bMSH|^~\\&|\xc3\xa9\r\x1c\x0d"),
]


@pytest.mark.parametrize("message, wire", MLLP)
def test_mllp_frames_and_unframes_also_byte_by_byte(message, wire):
    assert check.frame(message) == wire
    assert check.unframe(wire + b"\x0bnext") == (message.encode(), b"\x0bnext")
    assert check.unframe(b"\n" + wire) == (message.encode(), b"")  # a stray byte before the start block
    for cut in range(len(wire)):
        assert check.unframe(wire[:cut]) == (None, wire[:cut])


def test_the_default_message_is_an_nmq_with_a_fresh_control_id_and_time():
    segments = check.default_segments("PACSLB", "RIS")
    text = check.build_message(segments, "CTRL1", "20260101120000")
    msh = hl7.parse(text).segment("MSH")
    assert text.endswith("\r") and text.count("\r") == 1
    assert (str(msh[3]), str(msh[5]), str(msh[7]), str(msh[9]), str(msh[10]), str(msh[11]), str(msh[12])) == (
        "PACSLB", "RIS", "20260101120000", "NMQ^N01^NMQ_N01", "CTRL1", "P", "2.5"
    )  # fmt: skip
    probe = check.HL7Probe(timeout=1)
    (m1, c1), (m2, c2) = probe.message(), probe.message()
    assert c1 != c2 and f"|{c1}|" in m1 and f"|{c2}|" in m2


def test_a_short_msh_is_padded_and_other_segments_follow():
    text = check.build_message(["MSH|^~\\&|LB", "EVN|A01"], "ID9", "20260101")
    assert text == "MSH|^~\\&|LB||||20260101|||ID9||\rEVN|A01\r"


def ack(code: str, control_id: str = "C1", extra: str = "") -> bytes:
    return f"MSH|^~\\&|ENG|H|PACSLB|PACSLB|20260101||ACK^N01|A1|P|2.5\rMSA|{code}|{control_id}{extra}\r".encode()


JUDGED = [
    (ack("AA"), Result(True, "HL7 answered AA")),
    (ack("CA"), Result(True, "HL7 answered CA")),
    (ack("AE", extra="|Unknown event"), Result(False, "HL7 answered AE: Unknown event")),
    (ack("AR"), Result(False, "HL7 answered AR")),
    (ack("CR", extra="|busy"), Result(False, "HL7 answered CR: busy")),
    (ack("AE") + b"ERR|||207|E||||Segment sequence error\r", Result(False, "HL7 answered AE: Segment sequence error")),
    (ack("AA", control_id="OTHER"), Result(False, "HL7 answered AA for control ID 'OTHER', not ours (C1)")),
    (ack("ZZ"), Result(False, "HL7 answer with an unknown acknowledgement code 'ZZ'")),
    (ack("AA").replace(b"\r", b"\n"), Result(True, "HL7 answered AA")),  # newline-separated engines
]


@pytest.mark.parametrize("answer, verdict", JUDGED)
def test_judging_acknowledgements(answer, verdict):
    assert check.judge_ack(answer, "C1") == verdict


@pytest.mark.parametrize("junk", [b"", b"HTTP/1.1 400 Bad Request", b"MSH|^~\\&|ENG\rPID|1\r", b"\xff\xfe"])
def test_junk_is_down_and_says_what_came(junk):
    result = check.judge_ack(junk, "C1")
    assert not result.up and result.reason.startswith("HL7 answer without an MSA segment")
