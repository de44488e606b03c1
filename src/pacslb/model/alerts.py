"""Alerts (`alerts:`): who is told when something happens, and of what.

Three kinds of receiver: e-mail over SMTP, a webhook (a JSON POST, optionally signed with HMAC-SHA256), and
syslog (RFC 5424). Each receiver names the events it wants and a minimum severity. The events themselves,
their severities and messages are in `pacslb.alerts` (docs/alerts.md lists them).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union, get_args

from pydantic import Field, field_validator, model_validator

from .base import Strict
from .types import SECRET_PLACEHOLDER, Duration, Host, Name, Secret, Text

# Every event an alert can be about; `test` is what `pacslb alerts test` sends (every receiver takes it).
EventName = Literal[
    "real-server-down",
    "real-server-up",
    "virtual-service-down",
    "virtual-service-up",
    "ha-role-change",
    "split-brain",
    "config-applied",
    "config-refused",
    "certificate-expiring",
    "engine-restarted",
]
EVENTS: tuple[str, ...] = get_args(EventName)
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")  # in rising order

MAX_RECEIVERS = 20
MAX_RECIPIENTS = 20
MAX_URL_LENGTH = 2048
MAX_TIMEOUT_MS = 60_000

# An address as RFC 5321 allows it in practice: local@domain, no spaces, quotes or angle brackets (one line, no
# header injection); the domain a hostname or a bracketed address literal.
_MAILBOX_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@([A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.?)*|\[[0-9A-Fa-f:.]+\])$")
_URL_RE = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(/[!-~]*)?$")
_SYSLOG_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def _mailbox(value: str) -> str:
    if len(value) > 254 or not _MAILBOX_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address: write local@domain, e.g. pacs-team@hospital.example")
    return value


class Receiver(Strict):
    """What every receiver has: a name, the events it wants, and the least severity it is told of."""

    name: Name
    events: list[EventName] = Field(
        default_factory=lambda: list(EVENTS),
        min_length=1,
        max_length=len(EVENTS),
        description="the events this receiver is told of; omitted, all",
    )
    min_severity: Severity = Field(default="info", description="events less severe than this are not sent here")

    @field_validator("timeout", check_fields=False)  # each kind has its own default timeout
    @classmethod
    def _timeout_bounds(cls, timeout: Duration) -> Duration:
        if not 1000 <= timeout.milliseconds <= MAX_TIMEOUT_MS:
            raise ValueError("timeout must be between 1s and 60s: a delivery holds its receiver's thread that long at most")
        return timeout


class EmailReceiver(Receiver):
    """E-mail over SMTP: STARTTLS (port 587), TLS from the first byte (port 465), or plain (port 25, a local relay)."""

    type: Literal["email"]
    host: Host = Field(description="the SMTP server (relay)")
    port: int | None = Field(default=None, ge=1, le=65535, description="omitted: 587 (starttls), 465 (tls), 25 (none)")
    security: Literal["starttls", "tls", "none"] = Field(default="starttls", description="how the connection is encrypted")
    verify: Literal["required", "none"] = Field(default="required", description="check the server's certificate (system CAs)")
    username: Text | None = Field(default=None, description="log in as this user (AUTH); omitted, send without login")
    password: Secret | None = Field(
        default=None, description=f"password of `username`: a secret, shown as {SECRET_PLACEHOLDER!r} (docs/security.md)"
    )
    sender: Text = Field(description="the From address, e.g. pacslb@hospital.example")
    to: list[Text] = Field(min_length=1, max_length=MAX_RECIPIENTS, description="recipients, 1 to 20 addresses")
    timeout: Duration = Field(default=Duration(10_000), description="time one delivery may take")

    @field_validator("sender")
    @classmethod
    def _sender_is_an_address(cls, value: str) -> str:
        return _mailbox(value)

    @field_validator("to")
    @classmethod
    def _recipients_are_addresses(cls, value: list[str]) -> list[str]:
        return [_mailbox(v) for v in value]

    @model_validator(mode="after")
    def _login(self) -> "EmailReceiver":
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both for a login, or neither")
        if self.password is not None and self.security == "none":
            raise ValueError("a login over a plain connection would send the password in clear: use security starttls or tls")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]


class WebhookReceiver(Receiver):
    """A JSON POST to a URL; with `secret`, signed: X-Pacslb-Signature: sha256=<HMAC-SHA256 of the body, hex>."""

    type: Literal["webhook"]
    url: str = Field(description="http:// or https:// URL the JSON is posted to")
    secret: Secret | None = Field(
        default=None, description=f"key of the HMAC-SHA256 signature: a secret, shown as {SECRET_PLACEHOLDER!r}"
    )
    verify: Literal["required", "none"] = Field(default="required", description="check an https server's certificate")
    timeout: Duration = Field(default=Duration(5_000), description="time one POST may take")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if len(url) > MAX_URL_LENGTH or not _URL_RE.fullmatch(url):
            raise ValueError(
                f"{url[:80]!r} is not an http(s) URL: write e.g. https://alerts.hospital.example/pacslb "
                f"(at most {MAX_URL_LENGTH} characters, no spaces)"
            )
        return url


class SyslogReceiver(Receiver):
    """RFC 5424 messages to a syslog server (HOST:PORT over UDP or TCP) or a local socket (a path)."""

    type: Literal["syslog"]
    target: Text = Field(description="'HOST:PORT' (e.g. 'logs.hospital.example:514') or a Unix socket path ('/dev/log')")
    transport: Literal["udp", "tcp"] = Field(default="udp", description="for HOST:PORT: UDP, or TCP with octet counting")
    facility: Literal["user", "daemon", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"] = "local0"
    timeout: Duration = Field(default=Duration(5_000), description="time one message may take (TCP, socket)")

    @field_validator("target")
    @classmethod
    def _target(cls, target: str) -> str:
        if target.startswith("/"):
            if len(target.encode()) > 107:
                raise ValueError(f"{target!r} is too long for a Unix socket path (at most 107 bytes)")
            return target
        match = _SYSLOG_HOST_RE.fullmatch(target)
        if not match or not 0 < int(match[2]) <= 65535:
            raise ValueError(f"{target!r} is not a syslog target: write HOST:PORT (e.g. '10.0.0.5:514') or a socket path")
        return target


AlertReceiver = Annotated[Union[EmailReceiver, WebhookReceiver, SyslogReceiver], Field(discriminator="type")]


class Alerts(Strict):
    """Under `alerts:`: the receivers, and the rules every alert follows."""

    receivers: list[AlertReceiver] = Field(default_factory=list, max_length=MAX_RECEIVERS, description="at most 20")
    certificate_expiry_days: int = Field(
        default=30, ge=1, le=365, description="warn once a day of every certificate that expires within this many days"
    )
    flap_interval: Duration = Field(
        default=Duration(5 * 60_000),
        description="a real server or virtual service gets at most one message per interval; the changes in between "
        "are told in one summary at its end",
    )
    queue_size: int = Field(default=1000, ge=10, le=100_000, description="alerts waiting per receiver; more are dropped")
    retries: int = Field(default=3, ge=0, le=10, description="further attempts after a failed delivery, with back-off")

    @field_validator("flap_interval")
    @classmethod
    def _interval_bounds(cls, interval: Duration) -> Duration:
        if not 10_000 <= interval.milliseconds <= 24 * 3_600_000:
            raise ValueError("flap_interval must be between 10s and 24h")
        return interval

    @field_validator("receivers")
    @classmethod
    def _unique_names(cls, receivers: list) -> list:
        seen: set[str] = set()
        for receiver in receivers:
            if receiver.name in seen:
                raise ValueError(f"two receivers are called {receiver.name!r}: give each its own name")
            seen.add(receiver.name)
        return receivers

    def receiver(self, name: str):
        """The receiver called `name`, or None."""
        return next((r for r in self.receivers if r.name == name), None)
