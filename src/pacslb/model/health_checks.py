"""Health checks of a virtual service's real servers: the model's classes (model/config.py uses them, and so does
the GSLB section, model/gslb.py). Which engine runs each kind: HAProxy the connect and HTTP(S) checks, the
appliance's health service the others (APPLIANCE_CHECK_TYPES; docs/health-checks.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from . import limits as L
from .base import Strict
from .types import SECRET_PLACEHOLDER, Duration, Secret, Text, URLPath

# --- health checks -----------------------------------------------------------------------------


class CheckTiming(Strict):
    interval: Duration = Field(default=Duration(5000), description="time between checks")
    timeout: Duration = Field(default=Duration(4000), description="time a check may take")
    rise: int = Field(default=2, ge=1, le=100, description="consecutive passes that bring a server up")
    fall: int = Field(default=3, ge=1, le=100, description="consecutive failures that take a server down")
    port: int | None = Field(default=None, ge=1, le=65535, description="check this port instead of the server's")

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> "CheckTiming":
        if self.timeout > self.interval:
            raise ValueError(f"timeout ({self.timeout}) must not be longer than interval ({self.interval})")
        if self.interval.milliseconds < 100:
            raise ValueError("interval must be at least 100ms")
        return self


class NoCheck(Strict):
    """'No checks, always on': the real servers are taken as up."""

    type: Literal["none"]


class ConnectCheck(CheckTiming):
    """A TCP connect to the port ('Connect to Port')."""

    type: Literal["connect"]


class HTTPCheck(CheckTiming):
    """An HTTP or HTTPS request whose answer must carry the expected status (and body text)."""

    type: Literal["http", "https"]
    method: Literal["GET", "HEAD", "OPTIONS", "POST"] = "GET"
    path: URLPath = "/"
    host: Text | None = Field(
        default=None,
        description="Host header sent with the check (HTTP/1.1); omitted, the address of the virtual service "
        "that reaches these real servers (its first listener), or 'localhost' for a wildcard listener",
    )
    check_traffic_port: bool = Field(
        default=True,
        description="when `port` moves the check away from the real servers' own port, also open a connection to "
        "that port in each check, so that a dead traffic port takes the server down (only when every real server "
        "of the service has the same port)",
    )
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200], min_length=1, max_length=L.MAX_SMALL_LIST, description="any of these statuses passes"
    )
    expect_body: Text | None = Field(default=None, description="text the answer's body must contain")


def _check_ae_title(value: object) -> object:
    """An AE title: 1 to 16 printable ASCII characters, no backslash, not all spaces (DICOM PS3.5 AE)."""
    if isinstance(value, str) and not (
        1 <= len(value) <= 16 and value.strip() and all(" " <= c <= "~" and c != "\\" for c in value)
    ):
        raise ValueError(f"{value!r} is not an AE title: 1 to 16 printable ASCII characters, no backslash")
    return value


AETitle = Annotated[str, BeforeValidator(_check_ae_title)]


class DicomEchoCheck(CheckTiming):
    """A DICOM association with a C-ECHO (Verification) on it: the archive must accept and answer Success."""

    type: Literal["dicom-echo"]
    calling_ae: AETitle = Field(default="PACSLB", description="AE title the check calls from")
    called_ae: AETitle = Field(default="ANY-SCP", description="AE title of the real server's DICOM service")


class HL7Check(CheckTiming):
    """An HL7 v2 message over MLLP; the real server must acknowledge it with AA (or CA)."""

    type: Literal["hl7"]
    message: list[Text] | None = Field(
        default=None,
        min_length=1,
        max_length=L.MAX_SMALL_LIST,
        description="the HL7 v2 message to send, one segment per item (or per line of one text), MSH first "
        "(MSH-7 and MSH-10 are set per check); omitted, a network-management query (NMQ^N01) from sending_application",
    )
    sending_application: Text = Field(default="PACSLB", description="MSH-3 of the default message")
    receiving_application: Text = Field(default="", description="MSH-5 of the default message")

    @field_validator("message", mode="before")
    @classmethod
    def _lines(cls, message: object) -> object:
        """A message may also be one text with a segment per line (a YAML block, the WebUI's text area);
        a blank text means the default message."""
        if isinstance(message, str):
            return [line for line in re.split(r"\r\n|\r|\n", message) if line.strip()] or None
        return message

    @field_validator("message")
    @classmethod
    def _segments(cls, message: list[str] | None) -> list[str] | None:
        if message is None:
            return None
        msh = message[0]
        if not (msh.startswith("MSH") and len(msh) >= 8 and msh[3] not in "^~\\& " and msh[4:8].count(msh[3]) == 0):
            raise ValueError(
                f"the first segment must be the MSH segment with its separator and encoding characters, "
                f"e.g. 'MSH|^~\\&|PACSLB|...', not {msh[:20]!r}"
            )
        for number, segment in enumerate(message[1:], start=2):
            if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", segment[:3]) or (len(segment) > 3 and segment[3] != msh[3]):
                raise ValueError(
                    f"segment {number} ({segment[:20]!r}) must begin with a segment ID such as PID or EVN, then {msh[3]!r}"
                )
        return message

    @field_validator("sending_application", "receiving_application")
    @classmethod
    def _no_delimiters(cls, value: str) -> str:
        if any(c in value for c in "|^~\\&"):
            raise ValueError(f"{value!r} must not contain the HL7 delimiters | ^ ~ \\ &")
        return value


class AMQPCheck(CheckTiming):
    """The AMQP 0-9-1 handshake: up to Connection.Start, or a whole login when a username is given."""

    type: Literal["amqp"]
    virtual_host: Text = Field(default="/", description="vhost opened by a whole login")
    username: Text | None = Field(default=None, description="log in as this user (PLAIN); omitted, stop at Connection.Start")
    password: Secret | None = Field(
        default=None, description=f"password of `username`: a secret, shown as {SECRET_PLACEHOLDER!r} (docs/security.md)"
    )

    @model_validator(mode="after")
    def _credentials_together(self) -> "AMQPCheck":
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both for a login, or neither")
        return self


class ExternalCheck(CheckTiming):
    """A script run as `SCRIPT VIP VIP_PORT REAL_SERVER REAL_SERVER_PORT`; exit status 0 means up."""

    type: Literal["external"]
    script: str = Field(
        min_length=1,
        description="absolute path of an executable script that root owns, in directories only root can change, "
        "named without symbolic links (e.g. /etc/pacslb/checks/pacs.sh); it runs as root",
    )

    @field_validator("script")
    @classmethod
    def _absolute(cls, script: str) -> str:
        if not script.startswith("/"):
            raise ValueError(f"{script!r} is not an absolute path: write the script's full path, e.g. /etc/pacslb/checks/pacs.sh")
        return script


# Checks run by the appliance's own health-check service (pacslb.health) rather than by HAProxy.
APPLIANCE_CHECK_TYPES = frozenset({"dicom-echo", "hl7", "amqp", "external"})

HealthCheck = Annotated[
    Union[NoCheck, ConnectCheck, HTTPCheck, DicomEchoCheck, HL7Check, AMQPCheck, ExternalCheck],
    Field(discriminator="type"),
]
