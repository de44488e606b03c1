"""Delivery at the edge: one function per kind of receiver, each bounded by the receiver's timeout.

`send_email` and `send_syslog` block (smtplib, sockets): the alerts service runs them on threads of its own,
never on the event loop's shared pool, so a receiver that hangs cannot hold a thread a change needs.
Each raises DeliveryError with words a person can act on when the receiver did not take the alert.
"""

from __future__ import annotations

import smtplib
import socket
import ssl

import httpx

from ..model.alerts import EmailReceiver, SyslogReceiver, WebhookReceiver
from . import format
from .events import Alert


class DeliveryError(Exception):
    """The receiver did not take the alert (it is retried, then dropped)."""


def _tls_context(verify: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if verify == "none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def send_email(receiver: EmailReceiver, alert: Alert, node: str) -> None:
    """Deliver one alert by SMTP (blocking)."""
    message = format.email(alert, node, receiver.sender, receiver.to)
    timeout = receiver.timeout.seconds
    context = _tls_context(receiver.verify)
    try:
        if receiver.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(receiver.host, receiver.effective_port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(receiver.host, receiver.effective_port, timeout=timeout)
        with client:
            if receiver.security == "starttls":
                client.starttls(context=context)
            if receiver.username is not None and receiver.password is not None:
                client.login(receiver.username, receiver.password.reveal())
            refused = client.send_message(message)
        if refused:
            raise DeliveryError(f"the SMTP server refused some recipients: {', '.join(sorted(refused))}")
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"SMTP login as {receiver.username} refused ({exc.smtp_code}): check username and password") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(
            f"SMTP {receiver.host}:{receiver.effective_port}: {exc} (check security: starttls, tls or none)"
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {receiver.host}:{receiver.effective_port}: {exc or type(exc).__name__}") from None


async def send_webhook(receiver: WebhookReceiver, alert: Alert, node: str) -> None:
    """POST one alert as JSON, signed when the receiver has a secret."""
    body = format.webhook_body(alert, node)
    headers = {"Content-Type": "application/json", "User-Agent": "pacslb-alerts"}
    if receiver.secret is not None:
        headers[format.SIGNATURE_HEADER] = format.signature(body, receiver.secret.reveal())
    verify: ssl.SSLContext | bool = _tls_context(receiver.verify) if receiver.url.startswith("https:") else False
    try:
        async with httpx.AsyncClient(timeout=receiver.timeout.seconds, verify=verify, trust_env=False) as client:
            response = await client.post(receiver.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"POST {receiver.url}: {exc or type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"POST {receiver.url} answered {response.status_code}: {format.one_line(response.text, 200)}")


def _host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def send_syslog(receiver: SyslogReceiver, alert: Alert, node: str, pid: int) -> None:
    """Send one RFC 5424 message (blocking): UDP, TCP with octet counting (RFC 6587), or a Unix datagram socket."""
    line = format.syslog_line(alert, node, receiver.facility, pid)
    timeout = receiver.timeout.seconds
    try:
        if receiver.target.startswith("/"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout)
                sock.sendto(line, receiver.target)
            return
        host, port = _host_port(receiver.target)
        if receiver.transport == "udp":
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(timeout)
                sock.sendto(line, address)
            return
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(str(len(line)).encode() + b" " + line)
    except OSError as exc:
        raise DeliveryError(f"syslog {receiver.target} ({receiver.transport}): {exc}") from None
