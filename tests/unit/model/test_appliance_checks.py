"""The model's refusals for the appliance-run checks (dicom-echo, hl7, amqp, external): each names its field."""

from __future__ import annotations

import pytest

from pacslb.model import load_text

BASE = """
version: 1
virtual_services:
  - name: pacs
    mode: layer7-tcp
    listen: [{address: 127.0.0.1, port: 104}]
    real_servers:
      - {name: rs1, address: 192.0.2.1, port: 104}
    health_check: %s
"""
AT = "virtual_services[pacs].health_check"

REFUSED = [
    ('{type: dicom-echo, called_ae: "THIS-TITLE-IS-TOO-LONG"}', f"{AT}.called_ae: 'THIS-TITLE-IS-TOO-LONG' is not an AE title"),
    ('{type: dicom-echo, calling_ae: "A\\\\B"}', f"{AT}.calling_ae: 'A\\\\B' is not an AE title"),
    ('{type: dicom-echo, calling_ae: "   "}', f"{AT}.calling_ae: '   ' is not an AE title"),
    ('{type: dicom-echo, calling_ae: "LB\\u00e9"}', f"{AT}.calling_ae: 'LBé' is not an AE title"),
    ('{type: hl7, message: ["PID|1"]}', f"{AT}.message: the first segment must be the MSH segment"),
    ('{type: hl7, message: ["MSH|^~\\\\&|A", "pid|1"]}', f"{AT}.message: segment 2 ('pid|1') must begin with a segment ID"),
    ("{type: hl7, message: []}", f"{AT}.message: list should have at least 1 item"),
    ('{type: hl7, message: ["MSH|^~\\\\&|A\\tPID|1"]}', f"{AT}.message[0]: must not contain control characters"),
    ('{type: hl7, sending_application: "A|B"}', f"{AT}.sending_application: 'A|B' must not contain the HL7 delimiters"),
    ('{type: hl7, receiving_application: "R^S"}', f"{AT}.receiving_application: 'R^S' must not contain the HL7 delimiters"),
    ("{type: amqp, username: guest}", f"{AT}: username and password go together"),
    ("{type: amqp, password: guest}", f"{AT}: username and password go together"),
    ("{type: external, script: check.sh}", f"{AT}.script: 'check.sh' is not an absolute path"),
    ("{type: external}", f"{AT}.script: required field is missing"),
    ("{type: dicom-echo, timeout: 6s}", f"{AT}: timeout (6s) must not be longer than interval (5s)"),
]


@pytest.mark.parametrize("check, problem", REFUSED, ids=[c for c, _ in REFUSED])
def test_bad_checks_are_refused_naming_the_field(check, problem):
    lines = [str(p) for p in load_text(BASE % check).problems]
    assert len(lines) == 1 and lines[0].startswith(problem), lines


@pytest.mark.parametrize(
    "check",
    [
        "{type: dicom-echo}",
        '{type: dicom-echo, calling_ae: "PACS LB 1", called_ae: "ARCHIVE", interval: 2s, timeout: 1s}',
        '{type: hl7, message: ["MSH|^~\\\\&|LB||ADT|HOSP|||ADT^A01|x|P|2.5", "EVN|A01"]}',
        "{type: amqp, virtual_host: /pacs, username: guest, password: guest}",
        "{type: external, script: /etc/pacslb/checks/pacs.sh, rise: 1, fall: 1}",
    ],
)
def test_good_checks_load(check):
    loaded = load_text(BASE % check)
    assert loaded.ok, [str(p) for p in loaded.problems]


def test_an_hl7_message_may_be_one_text_with_a_segment_per_line():
    text = BASE.replace(
        "health_check: %s", "health_check:\n      type: hl7\n      message: |\n        MSH|^~\\&|LB||ADT\n        EVN|A01\n"
    )
    loaded = load_text(text)
    assert loaded.ok, [str(p) for p in loaded.problems]
    assert loaded.config.virtual_services[0].health_check.message == ["MSH|^~\\&|LB||ADT", "EVN|A01"]
    blank = load_text(BASE % '{type: hl7, message: "  "}')
    assert blank.ok and blank.config.virtual_services[0].health_check.message is None  # the default message
