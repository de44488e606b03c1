"""Delivery at the edge: one function per kind of receiver, each bounded by the receiver's timeout.

All three block (smtplib, urllib, sockets): the alerts service runs them on a thread of each receiver's own,
never on the event loop's shared pool, so a receiver that hangs holds neither a thread a change needs nor
another receiver's.
Each raises DeliveryError with words a person can act on when the receiver did not take the alert.
"""

from __future__ import annotations

import http.client
import smtplib
import socket
import ssl
import urllib.error
import urllib.request

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


def send_webhook(receiver: WebhookReceiver, alert: Alert, node: str) -> None:
    """POST one alert as JSON, signed when the receiver has a secret (blocking). A plain blocking client on a thread:
    an asyncio client cancelled in the middle of an exchange has been seen never to finish its cancellation."""
    body = format.webhook_body(alert, node)
    headers = {"Content-Type": "application/json", "User-Agent": "pacslb-alerts"}
    if receiver.secret is not None:
        headers[format.SIGNATURE_HEADER] = format.signature(body, receiver.secret.reveal())
    request = urllib.request.Request(receiver.url, data=body, headers=headers, method="POST")
    # no proxy from the environment, no redirects followed (a signed body goes where it was configured to, or nowhere)
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({}), _NoRedirect()]
    if receiver.url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=_tls_context(receiver.verify)))
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=receiver.timeout.seconds) as response:
            status, text = response.status, response.read(200).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read(200).decode(errors="replace")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DeliveryError(f"POST {receiver.url}: {reason or type(exc).__name__}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"POST {receiver.url} answered {status}: {format.one_line(text, 200)}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 3xx is an answer, not a delivery
        return None


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
