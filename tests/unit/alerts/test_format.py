"""Each receiver's message: RFC 5424 lines (parsed back field by field), the signature, the e-mail."""

from __future__ import annotations

import hashlib
import hmac
import json

from pacslb.alerts import events, format
from support.alert_receivers import parse_rfc5424 as parse


def test_a_syslog_line_is_rfc5424_with_priority_from_facility_and_severity():
    alert = events.real_server_down("WFC_443", "rs1", 'association rejected: called AE "X]" not recognised\nINJECTED', 0.5)
    line = format.syslog_line(alert, "lb1", "local3", 4242)
    fields = parse(line)
    assert int(fields["pri"]) == 19 * 8 + 2  # local3, critical
    assert fields["ts"] == b"1970-01-01T00:00:00.500000Z"
    assert (fields["host"], fields["app"], fields["procid"], fields["msgid"]) == (b"lb1", b"pacslb", b"4242", b"real-server-down")
    assert fields["sd_id"] == "pacslb@32473"
    assert (
        fields["params"]["server"] == "rs1"
        and fields["params"]["reason"] == 'association rejected: called AE "X]" not recognised INJECTED'
    )
    assert b"\n" not in line and fields["msg"].decode().startswith("real server rs1 of WFC_443 is DOWN")
    info = parse(format.syslog_line(events.virtual_service_up("VS", 0), "lb 1", "user", 1))
    assert int(info["pri"]) == 1 * 8 + 6 and info["host"] == b"lb_1"


def test_a_long_syslog_message_is_cut_at_the_limit():
    alert = events.config_refused("apply", "f", "admin", "cli", "x" * 5000, [], 0)
    assert len(format.syslog_line(alert, "lb1", "local0", 1)) == format.MAX_SYSLOG_MESSAGE


def test_the_signature_is_the_hmac_sha256_of_the_exact_body():
    alert = events.virtual_service_down("VS", 1.0)
    body = format.webhook_body(alert, "lb1")
    data = json.loads(body)
    assert data == {"event": "virtual-service-down", "severity": "critical", "subject": "VS", "message": alert.message,
                    "at": 1.0, "node": "lb1", "details": {"service": "VS"}}  # fmt: skip
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert format.signature(body, "k3y") == f"sha256={expected}"
    assert format.signature(body + b" ", "k3y") != format.signature(body, "k3y")


def test_an_email_carries_severity_and_message_in_its_subject_and_no_header_injection():
    alert = events.real_server_down("VS", "rs1", "refused\r\nBcc: victim@example.org", 0)
    msg = format.email(alert, "lb1", "pacslb@h.example", ["a@h.example", "b@h.example"])
    assert msg["Subject"].startswith("[pacslb lb1] CRITICAL: real server rs1 of VS is DOWN: refused  Bcc")
    assert msg["Bcc"] is None and msg["To"] == "a@h.example, b@h.example"
    assert "server: rs1" in msg.get_content()
