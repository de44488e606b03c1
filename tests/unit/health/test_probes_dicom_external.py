"""The pure parts of the dicom-echo and external probes, and `probe_for` for every check type."""

from __future__ import annotations

import signal

from pacslb.health import (
    AMQPProbe,
    CheckContext,
    ConnectProbe,
    DicomEchoProbe,
    ExternalProbe,
    HL7Probe,
    HTTPProbe,
    Result,
    Target,
    dicom,
    external,
    probe_for,
)  # fmt: skip
from pacslb.model.config import AMQPCheck, ConnectCheck, DicomEchoCheck, ExternalCheck, HL7Check, NoCheck


def test_rejections_read_like_the_archives_words():
    assert dicom.rejection_reason("Rejected Permanent", "Service User", "Called AE Title Not Recognised") == (
        "association rejected (permanent, by the service user): called AE title not recognised"
    )
    assert dicom.rejection_reason("Rejected Transient", "Service Provider (Presentation)", "Local Limit Exceeded") == (
        "association rejected (transient, by the service provider (presentation)): local limit exceeded"
    )


def test_echo_status():
    assert dicom.echo_status_reason(0) == Result(True, "C-ECHO success")
    assert dicom.echo_status_reason(0x0110) == Result(False, "C-ECHO status 0x0110")


def test_external_arguments_follow_the_reference_convention():
    t = Target("10.0.0.5", 104)
    assert external.arguments("/c.sh", "192.0.2.1", 11112, t) == ["/c.sh", "192.0.2.1", "11112", "10.0.0.5", "104"]
    assert external.arguments("/c.sh", None, None, t) == ["/c.sh", "", "", "10.0.0.5", "104"]  # backend-only
    env = external.environment("192.0.2.1", 11112, t, 4.0)
    assert env["PACSLB_VIP"] == "192.0.2.1" and env["PACSLB_REAL_SERVER_PORT"] == "104" and env["PACSLB_CHECK_TIMEOUT"] == "4"


def test_external_exit_judging():
    assert external.judge_exit(0, b"noise") == Result(True, "script exited 0")
    assert external.judge_exit(3, b"\n  archive offline \nmore") == Result(False, "script exited 3: archive offline")
    assert external.judge_exit(1, b"") == Result(False, "script exited 1")
    assert external.judge_exit(-signal.SIGSEGV, b"") == Result(False, "script killed by SIGSEGV")


def test_probe_for_every_check_type():
    assert probe_for(NoCheck(type="none")) is None
    assert isinstance(probe_for(ConnectCheck(type="connect")), ConnectProbe)
    echo = probe_for(DicomEchoCheck(type="dicom-echo", calling_ae="LB1", called_ae="PACS", timeout="3s"))
    assert echo == DicomEchoProbe(timeout=3.0, calling_ae="LB1", called_ae="PACS")
    hl7 = probe_for(HL7Check(type="hl7", sending_application="LB", receiving_application="RIS"))
    assert isinstance(hl7, HL7Probe) and hl7.segments[0].startswith("MSH|^~\\&|LB|PACSLB|RIS|")
    assert probe_for(AMQPCheck(type="amqp", username="u", password="p", virtual_host="/v")) == AMQPProbe(4.0, "/v", "u", "p")
    ext = probe_for(ExternalCheck(type="external", script="/bin/true"), CheckContext("192.0.2.1", 104))
    assert ext == ExternalProbe(timeout=4.0, script="/bin/true", vip="192.0.2.1", vip_port=104)
    assert probe_for(ExternalCheck(type="external", script="/bin/true")) == ExternalProbe(4.0, "/bin/true")
    # Equal probes for equal checks: the runner keeps a watch running when nothing changed.
    assert probe_for(DicomEchoCheck(type="dicom-echo")) == probe_for(DicomEchoCheck(type="dicom-echo"))
    assert isinstance(probe_for(ConnectCheck(type="connect")), ConnectProbe) and not isinstance(echo, HTTPProbe)
