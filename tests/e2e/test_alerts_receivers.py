"""The alerts service against real receivers on loopback: an SMTP server (aiosmtpd: STARTTLS or TLS, AUTH), an HTTP
webhook receiver that checks the HMAC signature, syslog over UDP, TCP and a Unix socket (RFC 5424 parsed back);
flapping grouped, a dead or hanging receiver bounded (queue, retries, counted drops) without slowing its callers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import time
from typing import Any, Callable

import pytest

from pacslb.alerts import events
from pacslb.alerts.service import AlertService
from pacslb.model import load_text
from support.alert_receivers import SmtpReceiver, SyslogTCP, SyslogUDP, SyslogUnix, WebhookReceiver, parse_rfc5424
from support.appliance import PACSLB
from support.net import LOOPBACK, free_port

# aiosmtpd cannot see TLS from the first byte, and warns of AUTH without STARTTLS on each such connection
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

REASON = "association rejected: called AE title not recognised"


def config(receivers: list[str], **alerts: Any):
    extra = "".join(f"  {k}: {v}\n" for k, v in alerts.items())
    text = "version: 1\nalerts:\n" + extra + "  receivers:\n" + "".join(f"    - {r}\n" for r in receivers)
    loaded = load_text(text)
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded.config


async def arrives(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "the alert") -> Any:
    """Poll without blocking the loop the service runs in."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        await asyncio.sleep(0.02)
    return value


async def running(cfg) -> AlertService:
    service = AlertService(node="lb-test")
    await service.start(cfg)
    return service


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_an_email_goes_out_over_starttls_or_tls_with_a_login(security: str):
    with SmtpReceiver("pacslb", "smtp-s3cret", tls=security) as smtp:
        service = await running(config([
            f"{{name: mail, type: email, host: {LOOPBACK}, port: {smtp.port}, security: {security}, verify: none, "
            f"username: pacslb, password: smtp-s3cret, sender: pacslb@h.example, to: [pacs@h.example, it@h.example]}}"
        ]))  # fmt: skip
        try:
            sent_at = time.monotonic()
            service.emit(events.real_server_down("PACS_DICOM", "archive1", REASON, time.time()))
            message, recipients, at = (await arrives(lambda: smtp.messages, what="the e-mail"))[0]
            assert at - sent_at < 5
            assert message["Subject"] == f"[pacslb lb-test] CRITICAL: real server archive1 of PACS_DICOM is DOWN: {REASON}"
            assert message["From"] == "pacslb@h.example" and sorted(recipients) == ["it@h.example", "pacs@h.example"]
            assert "event:    real-server-down" in message.get_content() and smtp.logins == [("pacslb", True)]
            await arrives(lambda: service.status()["receivers"][0]["sent"] == 1, what="the sent count")
        finally:
            await service.stop()


async def test_an_smtp_refusal_says_what_to_check():
    with SmtpReceiver("pacslb", "right") as smtp:
        base = f"{{name: mail, type: email, host: {LOOPBACK}, port: {smtp.port}, sender: a@h.example, to: [b@h.example], "
        service = await running(config([base + "verify: none, username: pacslb, password: wrong}",
                                         base.replace("name: mail", "name: strict") + "username: pacslb, password: right}"]))  # fmt: skip
        try:
            wrong, strict = await service.test()
            assert not wrong["ok"] and "SMTP login as pacslb refused (535): check username and password" in wrong["error"]
            assert not strict["ok"] and "CERTIFICATE_VERIFY_FAILED" in strict["error"]  # a self-signed server, verify: required
            assert smtp.messages == []
        finally:
            await service.stop()


async def test_a_webhook_is_signed_with_hmac_sha256_of_its_body():
    with WebhookReceiver() as hook:
        service = await running(config([f"{{name: hook, type: webhook, url: '{hook.url}', secret: 'hmac-k3y'}}"]))
        try:
            service.emit(events.virtual_service_down("PACS_WEB", time.time()))
            body, headers, _ = (await arrives(lambda: hook.posts))[0]
            expected = "sha256=" + hmac.new(b"hmac-k3y", body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Pacslb-Signature"], expected)
            data = json.loads(body)
            assert (data["event"], data["severity"], data["subject"], data["node"]) == ("virtual-service-down", "critical",
                                                                                       "PACS_WEB", "lb-test")  # fmt: skip
            [result] = await service.test("hook")
            assert result["ok"] and json.loads(hook.posts[-1][0])["event"] == "test"
        finally:
            await service.stop()


async def test_syslog_over_udp_tcp_and_a_unix_socket_is_rfc5424(tmp_path):
    with SyslogUDP() as udp, SyslogTCP() as tcp, SyslogUnix(tmp_path / "log.sock") as unix:
        service = await running(config([
            f"{{name: udp, type: syslog, target: '{udp.target}', facility: local4}}",
            f"{{name: tcp, type: syslog, target: '{tcp.target}', transport: tcp}}",
            f"{{name: unix, type: syslog, target: '{unix.target}', facility: daemon, min_severity: critical}}",
        ]))  # fmt: skip
        try:
            service.emit(events.real_server_down("PACS_DICOM", "archive1", REASON, time.time()))
            service.emit(events.real_server_up("PACS_DICOM", "archive2", "passed", time.time()))  # info: not for unix
            await arrives(lambda: len(udp.lines) == 2 and len(tcp.lines) == 2 and unix.lines, what="every syslog line")
            first = parse_rfc5424(udp.lines[0][0])
            assert int(first["pri"]) == 20 * 8 + 2 and first["msgid"] == b"real-server-down"
            assert first["params"]["reason"] == REASON and first["params"]["server"] == "archive1"
            assert first["host"] == b"lb-test" and first["app"] == b"pacslb"
            assert [parse_rfc5424(line)["msgid"] for line, _ in tcp.lines] == [b"real-server-down", b"real-server-up"]
            assert int(parse_rfc5424(tcp.lines[1][0])["pri"]) == 16 * 8 + 6
            await asyncio.sleep(0.3)
            assert [int(parse_rfc5424(line)["pri"]) for line, _ in unix.lines] == [3 * 8 + 2]  # the critical one only
        finally:
            await service.stop()


async def test_a_flapping_server_gets_one_message_then_a_summary():
    with WebhookReceiver() as hook:
        service = await running(config([f"{{name: hook, type: webhook, url: '{hook.url}'}}"], flap_interval="10s"))
        try:
            started = time.monotonic()
            for i in range(10):  # down, up, down, ... within the interval
                alert = events.real_server_down if i % 2 == 0 else events.real_server_up
                service.emit(alert("PACS_DICOM", "archive1", REASON if i % 2 == 0 else "passed", time.time()))
                service.emit(events.real_server_down("PACS_DICOM", "archive2", REASON, time.time())) if i == 5 else None
            await arrives(lambda: len(hook.posts) == 2, what="the first change of each server")
            first = [json.loads(body) for body, _, _ in hook.posts]
            assert [(d["event"], d["subject"]) for d in first] == [("real-server-down", "PACS_DICOM/archive1"),
                                                                   ("real-server-down", "PACS_DICOM/archive2")]  # fmt: skip
            assert service.status()["held_by_flap_grouping"] == 9
            await arrives(lambda: len(hook.posts) == 3, timeout=20, what="the flap summary")
            summary = json.loads(hook.posts[2][0])
            assert summary["details"]["flapping"] is True and summary["details"]["changes"] == 9
            assert summary["message"].startswith("flapping: PACS_DICOM/archive1 changed state 9 more times in 10s; now: ")
            assert 9 <= hook.posts[2][2] - started < 13
        finally:
            await service.stop()


async def test_a_dead_receiver_never_makes_callers_wait_and_its_drops_are_counted():
    dead = f"http://{LOOPBACK}:{free_port()}/alerts"  # nothing listens: every POST is refused
    with WebhookReceiver(delay=30) as hanging, WebhookReceiver() as alive:
        service = await running(config([
            f"{{name: dead, type: webhook, url: '{dead}'}}",
            f"{{name: hanging, type: webhook, url: '{hanging.url}', timeout: 1s}}",
            f"{{name: alive, type: webhook, url: '{alive.url}'}}",
        ], queue_size=10, retries=1))  # fmt: skip
        try:
            started = time.perf_counter()
            for i in range(50):
                service.emit(events.config_applied("apply", "pacslb.yaml", i, "admin", "cli", "applied", time.time()))
            took = time.perf_counter() - started
            assert took < 0.5, f"50 alerts took {took:.3f}s to hand over"
            await arrives(lambda: len(alive.posts) == 10, what="the live receiver's ten")  # its queue holds ten too
            by_name = {r["name"]: r for r in service.status()["receivers"]}
            assert by_name["alive"]["dropped_queue_full"] == 40 and by_name["dead"]["dropped_queue_full"] == 40
            # the dead one: each alert tried twice (retries: 1, 1s apart), then dropped and counted
            await arrives(lambda: service.status()["receivers"][0]["dropped_undeliverable"] >= 2, timeout=15, what="drops")
            dead_status = service.status()["receivers"][0]
            assert dead_status["sent"] == 0 and dead_status["failed_attempts"] >= 4 and "POST" in dead_status["last_error"]
            hanging_status = service.status()["receivers"][1]
            assert hanging_status["sent"] == 0 and hanging_status["queued"] >= 9
        finally:
            await service.stop()


def test_pacslb_alerts_test_sends_straight_from_the_file_without_a_controller(tmp_path):
    with WebhookReceiver() as hook, SyslogUDP() as udp:
        config_file = tmp_path / "pacslb.yaml"
        config_file.write_text(
            "version: 1\nalerts:\n  receivers:\n"
            f"    - {{name: hook, type: webhook, url: '{hook.url}', secret: k}}\n"
            f"    - {{name: udp, type: syslog, target: '{udp.target}'}}\n"
            f"    - {{name: refused, type: webhook, url: 'http://{LOOPBACK}:{free_port()}/x'}}\n"
        )  # fmt: skip
        run = [*PACSLB, "alerts", "test", "-c", str(config_file), "--state-dir", str(tmp_path / "no-state")]
        done = subprocess.run(run, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert lines[:2] == ["hook: sent", "udp: sent"] and lines[2].startswith("refused: FAILED: POST http://")
        assert parse_rfc5424(udp.lines[0][0])["msgid"] == b"test" and json.loads(hook.posts[0][0])["event"] == "test"
        done = subprocess.run([*run, "--receiver", "nope"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "no alert receiver called 'nope'" in done.stderr and "hook, udp, refused" in done.stderr
