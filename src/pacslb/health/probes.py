"""One probe per kind of check: a small class with `async def probe(target) -> Result`.

A probe owns one attempt (open, ask, judge, close) within its timeout; the runner owns timing and
rise/fall. A reason tells "the server broke the protocol" apart from "nothing answers".
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from ..model.config import AMQPCheck, ConnectCheck, DicomEchoCheck, ExternalCheck, HL7Check, HTTPCheck
from .amqp import AMQPProbe
from .base import CheckContext, Probe, Result, Target
from .dicom import DicomEchoProbe
from .external import ExternalProbe
from .hl7 import HL7Probe, default_segments

__all__ = [
    "AMQPProbe", "CheckContext", "ConnectProbe", "DicomEchoProbe", "ExternalProbe", "HL7Probe", "HTTPProbe",
    "Probe", "Result", "Target", "probe_for",
]  # fmt: skip


async def _open(target: Target, timeout: float, tls: ssl.SSLContext | None = None):
    # asyncio.timeout, not wait_for: Python 3.11's wait_for can hang on cancellation when the connection
    # completes at the same moment (seen at 2,000 checks/s when the checker closed).
    async with asyncio.timeout(timeout):
        return await asyncio.open_connection(target.address, target.port, ssl=tls, server_hostname=None if tls is None else "")


def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except Exception:  # noqa: BLE001
        pass


@dataclass
class ConnectProbe:
    """'Connect to port': up when a TCP connection opens within the timeout."""

    timeout: float

    async def probe(self, target: Target) -> Result:
        try:
            _, writer = await _open(target, self.timeout)
        except TimeoutError:
            return Result(False, f"no answer to connect within {self.timeout:g}s")
        except OSError as exc:
            return Result(False, f"connect failed: {exc.strerror or exc}")
        _close(writer)
        return Result(True, "connected")


@dataclass
class HTTPProbe:
    """An HTTP(S) request; up when the status is one of `expect_status` (and the body holds `expect_body`)."""

    timeout: float
    tls: bool = False
    method: str = "GET"
    path: str = "/"
    host: str | None = None
    expect_status: tuple[int, ...] = (200,)
    expect_body: str | None = None

    def request(self, target: Target) -> bytes:
        host = self.host or (f"[{target.address}]" if ":" in target.address else target.address)
        return (
            f"{self.method} {self.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pacslb-health\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        ).encode()

    def judge(self, answer: bytes) -> Result:
        """Pure: the verdict on what the server sent (the whole answer, up to what was read)."""
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return Result(False, f"not an HTTP answer: {status_line[:60]!r}")
        status = int(parts[1])
        if status not in self.expect_status:
            return Result(False, f"HTTP status {status}, expected {', '.join(map(str, self.expect_status))}")
        if self.expect_body is not None and self.expect_body.encode() not in body:
            return Result(False, f"HTTP {status} but the body lacks {self.expect_body!r}")
        return Result(True, f"HTTP {status}")

    async def probe(self, target: Target) -> Result:
        context = None
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # like HAProxy's `check-ssl verify none`: up/down, not identity
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(target.address, target.port, ssl=context)
                try:
                    writer.write(self.request(target))
                    await writer.drain()
                    answer = b""
                    while len(answer) < 65536:
                        chunk = await reader.read(65536)
                        if not chunk:
                            break
                        answer += chunk
                        if self.expect_body is None and b"\r\n\r\n" in answer:
                            break
                finally:
                    _close(writer)
        except TimeoutError:
            return Result(False, f"no full answer within {self.timeout:g}s")
        except ssl.SSLError as exc:
            return Result(False, f"TLS failed: {exc.reason or exc}")
        except OSError as exc:
            return Result(False, f"connect failed: {exc.strerror or exc}")
        return self.judge(answer)


def probe_for(check: object, context: CheckContext | None = None) -> Probe | None:
    """The probe of a model health check; None for 'none' (always up).

    `context` carries the virtual service's VIP and VIP port, which the `external` check passes to its
    script; the other checks ignore it."""
    if isinstance(check, ConnectCheck):
        return ConnectProbe(timeout=check.timeout.seconds)
    if isinstance(check, HTTPCheck):
        return HTTPProbe(
            timeout=check.timeout.seconds,
            tls=check.type == "https",
            method=check.method,
            path=check.path,
            host=check.host,
            expect_status=tuple(check.expect_status),
            expect_body=check.expect_body,
        )
    if isinstance(check, DicomEchoCheck):
        return DicomEchoProbe(timeout=check.timeout.seconds, calling_ae=check.calling_ae, called_ae=check.called_ae)
    if isinstance(check, HL7Check):
        segments = check.message or default_segments(check.sending_application, check.receiving_application)
        return HL7Probe(timeout=check.timeout.seconds, segments=tuple(segments))
    if isinstance(check, AMQPCheck):
        return AMQPProbe(
            timeout=check.timeout.seconds,
            virtual_host=check.virtual_host,
            username=check.username,
            password=check.password.reveal() if check.password is not None else None,  # the probe logs in with the value
        )
    if isinstance(check, ExternalCheck):
        context = context or CheckContext()
        return ExternalProbe(timeout=check.timeout.seconds, script=check.script, vip=context.vip, vip_port=context.vip_port)
    return None
