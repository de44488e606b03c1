"""How an alert looks on each kind of receiver, pure: an e-mail, a signed JSON body, an RFC 5424 syslog line."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from .events import Alert

SIGNATURE_HEADER = "X-Pacslb-Signature"
SD_ID = "pacslb@32473"  # 32473: the private enterprise number RFC 5612 sets aside for documentation and examples
FACILITIES = {"user": 1, "daemon": 3, **{f"local{i}": 16 + i for i in range(8)}}
SYSLOG_SEVERITY = {"critical": 2, "warning": 4, "info": 6}  # crit, warning, informational (RFC 5424 table 2)
MAX_SYSLOG_MESSAGE = 2048  # RFC 5424 receivers must take 480 octets and should take 2048: longer messages are cut

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str, limit: int = 1000) -> str:
    """Text with no control characters (no header or log injection), at most `limit` characters."""
    text = _CONTROL.sub(" ", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _utc(at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(at, dt.timezone.utc)


def email(alert: Alert, node: str, sender: str, to: list[str]) -> EmailMessage:
    """The e-mail of an alert: the severity and message in the subject, every detail in the body."""
    msg = EmailMessage()
    msg["Subject"] = one_line(f"[pacslb {node}] {alert.severity.upper()}: {alert.message}", 200)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(_utc(alert.at))
    msg["Message-ID"] = make_msgid(domain="pacslb.invalid")
    lines = [alert.message, "", f"event:    {alert.event}", f"severity: {alert.severity}", f"subject:  {alert.subject}",
             f"node:     {node}", f"at:       {_utc(alert.at).isoformat(timespec='seconds')}"]  # fmt: skip
    lines += [f"{k}: {v}" for k, v in alert.details.items()]
    msg.set_content("\n".join(one_line(line) for line in lines) + "\n")
    return msg


def webhook_body(alert: Alert, node: str) -> bytes:
    """The JSON body POSTed to a webhook (keys sorted: the same alert always gives the same bytes)."""
    return json.dumps(alert.as_json(node), sort_keys=True, separators=(",", ":")).encode()


def signature(body: bytes, secret: str) -> str:
    """The signature header's value: 'sha256=' and the hex HMAC-SHA256 of the body, keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _sd_value(value: object) -> str:
    # RFC 5424 6.3.3: inside PARAM-VALUE, '"', '\' and ']' are escaped with a backslash
    return re.sub(r'(["\\\]])', r"\\\1", one_line(str(value), 200))


def _token(text: str, limit: int) -> str:
    """A header field of RFC 5424: printable US-ASCII without spaces, or '-' (NILVALUE)."""
    text = re.sub(r"[^!-~]", "_", text)[:limit]
    return text or "-"


def syslog_line(alert: Alert, node: str, facility: str, pid: int) -> bytes:
    """One RFC 5424 message: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG (UTF-8)."""
    pri = FACILITIES[facility] * 8 + SYSLOG_SEVERITY[alert.severity]
    stamp = _utc(alert.at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = {"event": alert.event, "severity": alert.severity, "subject": alert.subject}
    params.update({k: v for k, v in alert.details.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)})
    sd = "[" + SD_ID + "".join(f' {_token(k, 32).replace("=", "_")}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    head = f"<{pri}>1 {stamp} {_token(node, 255)} pacslb {pid} {_token(alert.event, 32)} {sd} "
    line = head.encode() + b"\xef\xbb\xbf" + one_line(alert.message, MAX_SYSLOG_MESSAGE).encode()
    # cut at the limit, never inside a UTF-8 character
    return line if len(line) <= MAX_SYSLOG_MESSAGE else line[:MAX_SYSLOG_MESSAGE].decode(errors="ignore").encode()
