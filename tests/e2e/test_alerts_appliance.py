"""Alerts from the running appliance (`pacslb up`, real HAProxy, the appliance's own DICOM check) to real receivers:
a real server that goes down is told within 5 s with the check's reason, its virtual service with it; a flapping
one is grouped; a change is told; `pacslb alerts test|status`; a dead receiver does not slow an apply."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

import httpx
import pytest
from health_peers import DicomSCP

from support.alert_receivers import SyslogUDP, WebhookReceiver, parse_rfc5424
from support.appliance import controller_api
from support.configs import config_text, real_server, service
from support.first_admin import own_admin_password
from support.net import LOOPBACK, free_port, loopback_host
from support.realservers import TinyHTTPServer
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY = "e2e-hmac-k3y"
FLAP_S = 10
REJECTED = "association rejected: called AE title not recognised"


def configuration(dicom: DicomSCP, web: TinyHTTPServer, hook: WebhookReceiver, syslog: SyslogUDP, *, called_ae: str,
                  dead: str | None = None, hanging: str | None = None) -> str:  # fmt: skip
    dicom_check = f"{{type: dicom-echo, called_ae: {called_ae}, interval: 300ms, timeout: 300ms, rise: 1, fall: 1}}"
    http_check = "{type: http, interval: 200ms, timeout: 200ms, rise: 1, fall: 1}"
    text = config_text(
        service("PACS_DICOM", "layer7-tcp", loopback_host(211), free_port(), [real_server(("archive1", LOOPBACK, dicom.port))],
                health_check=dicom_check),
        service("PACS_WEB", "layer7-http", loopback_host(212), free_port(), [real_server(web)], health_check=http_check),
        settings=f"{{max_connections: 2000, health: {{agent_port: {free_port()}}}, management: {{address: 127.0.0.1, port: 0}}}}",
    )  # fmt: skip
    receivers = [
        f"{{name: hook, type: webhook, url: '{hook.url}', secret: '{KEY}'}}",
        f"{{name: syslog, type: syslog, target: '{syslog.target}', min_severity: critical}}",
    ]
    if dead is not None:  # nothing listens there: each alert is tried once, then dropped and counted
        receivers.append(f"{{name: dead, type: webhook, url: '{dead}', timeout: 2s}}")
    if hanging is not None:  # it takes the connection and never answers in time: each try costs its 10s timeout
        receivers.append(f"{{name: hanging, type: webhook, url: '{hanging}', timeout: 10s}}")
    return (
        text + f"alerts:\n  flap_interval: {FLAP_S}s\n  retries: 0\n  receivers:\n" + "".join(f"    - {r}\n" for r in receivers)
    )


def posted(hook: WebhookReceiver, event: str, subject: str | None = None) -> list[tuple[dict, float]]:
    """The alerts of `event` (about `subject`) the webhook received, each checked against its HMAC signature."""
    found = []
    for body, headers, at in list(hook.posts):
        expected = "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Pacslb-Signature"], expected), body
        data = json.loads(body)
        if data["event"] == event and (subject is None or data["subject"] == subject):
            found.append((data, at))
    return found


def test_alerts_from_the_running_appliance(start_appliance, tmp_path):
    dicom = DicomSCP("ARCHIVE", kind="dcmqrscp").start(lifetime=300)  # refuses called AE titles it does not know
    web = TinyHTTPServer("web1", loopback_host(213)).start()
    try:
        with WebhookReceiver() as hook, SyslogUDP() as syslog:
            appliance = start_appliance(configuration(dicom, web, hook, syslog, called_ae="ARCHIVE"))
            wait_until(lambda: {rs["state"] for vs in appliance.api_status()["virtual_services"] for rs in vs["real_servers"]}
                       == {"UP"}, 30, what="both real servers UP")  # fmt: skip
            time.sleep(1.5)  # the alerts service's first look (once a second) must see them UP: it compares to it

            # `pacslb alerts test` through the running controller: the webhook gets it, signed
            done = appliance.cli("alerts", "test", "--receiver", "hook")
            assert done.returncode == 0 and done.stdout.strip() == "hook: sent", done.stdout + done.stderr
            assert posted(hook, "test")
            nope = appliance.cli("alerts", "test", "--receiver", "nope")
            assert nope.returncode == 2 and "no alert receiver called 'nope'" in nope.stderr

            # 1. a real server stops (and then flaps): its first fall is told within 5 s with the check's reason,
            # the changes after it in one summary at the end of the flap interval
            web.stop()
            stopped_at = time.monotonic()
            [(down, at)] = wait_until(lambda: posted(hook, "real-server-down", "PACS_WEB/web1"), 10, what="web1 down")
            print(f"the real-server-down alert arrived {at - stopped_at:.2f}s after the server stopped")
            assert at - stopped_at < 5, f"the alert arrived {at - stopped_at:.1f}s after the server stopped"
            assert (
                down["message"].startswith("real server web1 of PACS_WEB is DOWN: ") and "Connection refused" in down["message"]
            )
            assert down["severity"] == "critical" and "Connection refused" in down["details"]["reason"]
            [(vs_down, vs_at)] = wait_until(lambda: posted(hook, "virtual-service-down", "PACS_WEB"), 10, what="PACS_WEB down")
            assert vs_at - stopped_at < 5 and vs_down["message"].startswith("virtual service PACS_WEB is DOWN")
            for _ in range(2):  # up, down, up, down: each change seen by the check (rise 1, fall 1) and by the status
                web.start()
                wait_until(lambda: appliance.server(appliance.api_status(), "PACS_WEB", "web1")["state"] == "UP", 10, what="up")
                time.sleep(1.2)  # the alerts service looks once a second
                web.stop()
                wait_until(
                    lambda: appliance.server(appliance.api_status(), "PACS_WEB", "web1")["state"] == "DOWN", 10, what="down"
                )
                time.sleep(1.2)
            assert time.monotonic() - stopped_at < FLAP_S, "the flapping took longer than one interval: nothing was grouped"
            web_alerts = [a for e in ("real-server-down", "real-server-up") for a, _ in posted(hook, e, "PACS_WEB/web1")]
            assert len(web_alerts) == 1, web_alerts  # one message in the interval
            summaries = wait_until(lambda: [a for a, _ in posted(hook, "real-server-down", "PACS_WEB/web1") if a["details"].get("flapping")],
                                   FLAP_S + 10, what="the flap summary")  # fmt: skip
            assert summaries[0]["details"]["changes"] == 4, summaries
            assert summaries[0]["message"].startswith(f"flapping: PACS_WEB/web1 changed state 4 more times in {FLAP_S}s; now: ")

            # 2. the archive refuses the check's called AE title (after a change): told with the check's own words
            appliance.config.write_text(configuration(dicom, web, hook, syslog, called_ae="WRONG"))
            done = appliance.cli("apply", "-c", str(appliance.config))
            assert done.returncode == 0, done.stdout + done.stderr
            [(down, _)] = wait_until(lambda: posted(hook, "real-server-down", "PACS_DICOM/archive1"), 10, what="archive1 down")
            assert down["message"].startswith("real server archive1 of PACS_DICOM is DOWN: association rejected")
            assert down["details"]["reason"].endswith(REJECTED.split(": ")[1])  # "called AE title not recognised"
            [(applied, _)] = posted(hook, "config-applied")
            assert applied["details"]["via"] == "cli" and applied["details"]["revision"] == 2
            lines = wait_until(lambda: [parse_rfc5424(line) for line, _ in syslog.lines], 10, what="syslog")
            wait_until(lambda: len(syslog.lines) >= 4, 10, what="four critical syslog lines")
            lines = [parse_rfc5424(line) for line, _ in syslog.lines]
            assert {(f["msgid"], f["params"].get("subject")) for f in lines} >= {
                (b"real-server-down", "PACS_WEB/web1"), (b"virtual-service-down", "PACS_WEB"),
                (b"real-server-down", "PACS_DICOM/archive1"), (b"virtual-service-down", "PACS_DICOM")}  # fmt: skip
            assert all(f["params"]["severity"] == "critical" for f in lines)  # min_severity: critical

            # 3. receivers that are down (refused) or hang (10s timeout) do not slow an apply; their drops are counted
            def apply(text: str) -> float:
                started = time.monotonic()
                answer = controller_api(appliance.state_dir, "POST", "/apply", json={"yaml": text}, timeout=60)
                assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text
                return time.monotonic() - started

            baseline = [apply(configuration(dicom, web, hook, syslog, called_ae=ae)) for ae in ("ARCHIVE", "WRONG")]
            dead = f"http://{LOOPBACK}:{free_port()}/alerts"
            with WebhookReceiver(delay=30) as hanging:
                timings = [apply(configuration(dicom, web, hook, syslog, called_ae=ae, dead=dead, hanging=hanging.url))
                           for ae in ("ARCHIVE", "WRONG", "ARCHIVE", "WRONG")]  # fmt: skip
                print(f"applies with good receivers: {', '.join(f'{t:.2f}s' for t in baseline)}; with a dead and a "
                      f"hanging one as well: {', '.join(f'{t:.2f}s' for t in timings)}")  # fmt: skip
                # waiting for the hanging receiver would take its 10s timeout; the machine's load varies the rest
                assert max(timings) < 8, f"applies took {timings} (without the bad receivers {baseline}): they waited"

                def counted() -> dict | None:
                    answer = controller_api(appliance.state_dir, "GET", "/alerts").json()
                    by_name = {r["name"]: r for r in answer["receivers"]}
                    return by_name if by_name["dead"]["dropped"] >= 4 else None

                by_name = wait_until(counted, 20, what="the dead receiver's drops")
                assert by_name["dead"]["sent"] == 0 and "POST" in by_name["dead"]["last_error"]
                assert by_name["hanging"]["sent"] == 0 and by_name["hanging"]["queued"] >= 1
                assert by_name["hook"]["dropped"] == 0 and by_name["hook"]["sent"] >= 6
                shown = appliance.cli("alerts", "status")
                assert shown.returncode == 0 and "dead" in shown.stdout and "hanging" in shown.stdout, shown.stdout

                # the same counters on the management API and in /metrics
                url = (appliance.state_dir / "management-url").read_text().strip().rstrip("/")
                password = own_admin_password(url, appliance.state_dir)
                with httpx.Client(base_url=url, verify=False, timeout=30) as api:
                    login = api.post("/api/v1/login", json={"username": "admin", "password": password})
                    assert login.status_code == 200, login.text
                    api.headers["X-CSRF-Token"] = login.json()["csrf_token"]
                    answer = api.get("/api/v1/alerts")
                    assert answer.status_code == 200 and {r["name"] for r in answer.json()["receivers"]} == {
                        "hook", "syslog", "dead", "hanging"}  # fmt: skip
                    metrics = api.get("/metrics").text
                    assert 'pacslb_alerts_dropped_total{receiver="dead"}' in metrics
                    assert re.search(r'^pacslb_alerts_sent_total\{receiver="hook"\} [1-9]', metrics, re.M), metrics[:2000]
                    tested = api.post("/api/v1/alerts/test", params={"receiver": "hook"})
                    assert tested.status_code == 200 and tested.json()["results"][0]["ok"], tested.text
    finally:
        web.stop()
        dicom.stop()
