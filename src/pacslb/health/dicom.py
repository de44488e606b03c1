"""The `dicom-echo` check: a DICOM association with a C-ECHO (Verification) on it, on asyncio.

The protocol is the pure state machine `dicom_pdu.CEcho` (bytes in, bytes and a verdict out); the
probe here owns the socket and the timeout: connect, association, C-ECHO and release all happen
within the check's `timeout`.

Reasons follow the archive's own words: "association rejected (permanent, by the service user):
called AE title not recognised", "association aborted by the server (A-ABORT)", "C-ECHO status 0x0110".

pacslb used pynetdicom's AE here until issue 6: 3.9 ms of CPU per check (two threads per association
polling every millisecond, under the GIL) capped the appliance at about 250 checks/s. pynetdicom is now
the reference the codec is tested against (tests/unit/health/test_dicom_pdu.py).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from .base import Result, Target
from .dicom_pdu import WAITING_FOR, CEcho, abort, echo_status_reason, rejection_reason

__all__ = ["DicomEchoProbe", "echo_status_reason", "rejection_reason"]

# Message IDs of the C-ECHO-RQ: distinct per check of the process, for an archive's logs.
_message_ids = itertools.count(1)


@dataclass
class DicomEchoProbe:
    """Associate as `calling_ae` with `called_ae` and send one C-ECHO, within `timeout` seconds."""

    timeout: float
    calling_ae: str = "PACSLB"
    called_ae: str = "ANY-SCP"

    async def probe(self, target: Target) -> Result:
        echo = CEcho(self.calling_ae, self.called_ae, message_id=next(_message_ids) % 0x10000 or 1)
        writer = None
        try:
            # asyncio.timeout, not wait_for: see probes._open (3.11's wait_for can hang on cancellation).
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(target.address, target.port)
                writer.write(echo.start())
                while True:
                    data = await reader.read(65536)
                    if not data:
                        return echo.closed()
                    out, verdict = echo.feed(data)
                    if out:
                        writer.write(out)
                    if verdict is not None:
                        return verdict
        except TimeoutError:
            if writer is None:
                return Result(False, f"no answer to connect within {self.timeout:g}s")
            if echo.stage in ("echoing", "releasing"):
                writer.write(abort())  # the association is up: end it the way DICOM says, not only by TCP
            return echo.timed_out(self.timeout)
        except OSError as exc:
            if writer is None:
                return Result(False, "connect failed: refused or unreachable")
            if echo.stage == "releasing" and echo.verdict is not None:
                return echo.verdict  # the C-ECHO was answered; a reset instead of A-RELEASE-RP does not undo it
            return Result(
                False, f"connection lost waiting for the {WAITING_FOR.get(echo.stage, 'answer')}: {exc.strerror or exc}"
            )
        finally:
            if writer is not None:
                writer.close()
