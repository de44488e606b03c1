"""The `alerts:` section: what it accepts, and each refusal named by its field path with the fix."""

from __future__ import annotations

import pytest

from pacslb.model import load_text
from pacslb.model.alerts import EVENTS, MAX_RECEIVERS, MAX_RECIPIENTS
from pacslb.model.secrets import secrets_of
from pacslb.model.types import SECRET_PLACEHOLDER

HEAD = "version: 1\n"

GOOD = (
    HEAD
    + """
alerts:
  certificate_expiry_days: 14
  flap_interval: 2m
  receivers:
    - {name: mail, type: email, host: smtp.hospital.example, username: pacslb, password: "s3cret-smtp",
       sender: pacslb@hospital.example, to: [pacs-team@hospital.example], min_severity: warning}
    - {name: hook, type: webhook, url: "https://alerts.hospital.example/pacslb", secret: "hmac-key",
       events: [real-server-down, real-server-up]}
    - {name: log, type: syslog, target: "10.0.0.5:514", transport: tcp, facility: local3}
    - {name: local, type: syslog, target: /dev/log}
"""
)


def problems(text: str) -> list[str]:
    loaded = load_text(text)
    return [str(p) for p in loaded.problems if p.severity == "error"]


def test_a_whole_section_is_accepted_with_its_defaults():
    loaded = load_text(GOOD)
    assert loaded.ok, [str(p) for p in loaded.problems]
    alerts = loaded.config.alerts
    mail, hook, log, local = alerts.receivers
    assert (mail.effective_port, mail.security, mail.events) == (587, "starttls", list(EVENTS))
    assert hook.events == ["real-server-down", "real-server-up"] and hook.min_severity == "info"
    assert (log.transport, local.transport, alerts.queue_size, alerts.retries) == ("tcp", "udp", 1000, 3)
    assert alerts.flap_interval.seconds == 120 and alerts.certificate_expiry_days == 14


def test_the_smtp_password_and_the_hmac_key_are_secrets():
    config = load_text(GOOD).config
    assert set(secrets_of(config)) == {"alerts.receivers[mail].password", "alerts.receivers[hook].secret"}
    shown = config.model_dump_json()
    assert "s3cret-smtp" not in shown and "hmac-key" not in shown and SECRET_PLACEHOLDER in shown


@pytest.mark.parametrize(
    "receiver, path, words",
    [
        (
            "{name: m, type: email, host: h.example, sender: nobody, to: [a@b.example]}",
            "alerts.receivers[m].sender",
            "not an e-mail address",
        ),
        ("{name: m, type: email, host: h.example, sender: a@b.example, to: []}", "alerts.receivers[m].to", "at least 1"),
        (
            "{name: m, type: email, host: h.example, sender: a@b.example, to: ['x@y.example\\nBcc: z@z.example']}",
            "alerts.receivers[m].to",
            "",
        ),
        (
            "{name: m, type: email, host: h.example, sender: a@b.example, to: [a@b.example], username: u}",
            "alerts.receivers[m]",
            "username and password go together",
        ),
        (
            "{name: m, type: email, host: h.example, sender: a@b.example, to: [a@b.example], security: none, username: u, "
            "password: p}",
            "alerts.receivers[m]",
            "use security starttls or tls",
        ),
        ("{name: w, type: webhook, url: 'ftp://x.example/'}", "alerts.receivers[w].url", "not an http(s) URL"),
        ("{name: w, type: webhook, url: 'https://x.example/a b'}", "alerts.receivers[w].url", "not an http(s) URL"),
        ("{name: s, type: syslog, target: 'logs.example'}", "alerts.receivers[s].target", "write HOST:PORT"),
        ("{name: s, type: syslog, target: 'logs.example:70000'}", "alerts.receivers[s].target", "write HOST:PORT"),
        ("{name: s, type: syslog, target: '/x', events: [server-down]}", "alerts.receivers[s].events[0]", "real-server-down"),
        ("{name: s, type: syslog, target: '/x', min_severity: error}", "alerts.receivers[s].min_severity", "critical"),
        ("{name: s, type: syslog, target: '/x', timeout: 2m}", "alerts.receivers[s].timeout", "between 1s and 60s"),
        ("{name: w, type: webhook, url: 'http://x.example/', timeout: 500ms}", "alerts.receivers[w].timeout", "between 1s"),
        ("{name: s, type: pager, target: '/x'}", "alerts.receivers[s]", "choose one of 'email', 'webhook', 'syslog'"),
    ],
)
def test_a_bad_receiver_is_named_by_its_field(receiver: str, path: str, words: str):
    found = problems(HEAD + f"alerts:\n  receivers:\n    - {receiver}\n")
    assert any(p.startswith(path + ":") and words in p for p in found), found


def test_limits_are_explicit():
    to = ", ".join(f"u{i}@h.example" for i in range(MAX_RECIPIENTS + 1))
    found = problems(
        HEAD + f"alerts:\n  receivers:\n    - {{name: m, type: email, host: h.example, sender: a@h.example, to: [{to}]}}\n"
    )
    assert any(p.startswith("alerts.receivers[m].to:") and "at most 20" in p for p in found), found
    many = "\n".join(f"    - {{name: s{i}, type: syslog, target: /dev/log}}" for i in range(MAX_RECEIVERS + 1))
    found = problems(HEAD + f"alerts:\n  receivers:\n{many}\n")
    assert any(p.startswith("alerts.receivers:") and "at most 20" in p for p in found), found
    long_url = "https://x.example/" + "a" * 2048
    assert any(
        "at most 2048" in p
        for p in problems(HEAD + f"alerts:\n  receivers:\n    - {{name: w, type: webhook, url: '{long_url}'}}\n")
    )
    for field, value, words in [("flap_interval", "5s", "between 10s and 24h"), ("flap_interval", "2d", "between 10s and 24h"),
                                ("certificate_expiry_days", "0", "greater than or equal to 1"),
                                ("certificate_expiry_days", "366", "less than or equal to 365"),
                                ("queue_size", "5", "greater than or equal to 10"), ("retries", "11", "less than or equal to 10")]:  # fmt: skip
        found = problems(HEAD + f"alerts:\n  {field}: {value}\n")
        assert any(p.startswith(f"alerts.{field}:") and words in p for p in found), (field, found)


def test_receiver_names_are_unique():
    found = problems(
        HEAD + "alerts:\n  receivers:\n    - {name: a, type: syslog, target: /x}\n    - {name: a, type: syslog, target: /y}\n"
    )
    assert any(p.startswith("alerts.receivers:") and "two receivers are called 'a'" in p for p in found), found
