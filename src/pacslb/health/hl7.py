"""The `hl7` check: one HL7 v2 message over MLLP, up only when the real server acknowledges it AA (or CA).

MLLP (HL7 v2 Minimal Lower Layer Protocol) frames a message as 0x0B, the message, 0x1C 0x0D.
Framing and judging are pure functions; `HL7Probe.probe` owns the socket and the timeout.

The default message is a network-management query, NMQ^N01, with only its MSH segment: HL7 v2 made
NMQ for "are you there" between applications, it asks the receiver to do nothing, and interface engines
acknowledge any well-formed message at the MLLP listener (original acknowledgement mode). Every check
carries a fresh control ID (MSH-10), and the acknowledgement must name it in MSA-2.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import hl7

from .base import Result, Target

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
MAX_ANSWER = 1 << 20  # an acknowledgement is a few hundred bytes; stop reading junk at 1 MiB


def frame(message: str) -> bytes:
    """MLLP frame of one message (segments already separated by carriage returns)."""
    return START_BLOCK + message.encode("utf-8") + END_BLOCK


def unframe(buffer: bytes) -> tuple[bytes | None, bytes]:
    """The first whole MLLP message in `buffer` (without its framing) and what follows it;
    (None, buffer) while the end block has not arrived. Bytes before the start block are dropped
    (some engines send a stray newline between frames)."""
    start = buffer.find(START_BLOCK)
    if start < 0:
        return None, buffer
    end = buffer.find(END_BLOCK, start + 1)
    if end < 0:
        return None, buffer
    return buffer[start + 1 : end], buffer[end + len(END_BLOCK) :]


def default_segments(sending_application: str, receiving_application: str) -> list[str]:
    """The default check message: NMQ^N01 with only its MSH (the control ID and time are filled per check)."""
    return [f"MSH|^~\\&|{sending_application}|PACSLB|{receiving_application}||||NMQ^N01^NMQ_N01||P|2.5"]


def build_message(segments: list[str], control_id: str, timestamp: str) -> str:
    """The message to send: MSH-7 (date/time) and MSH-10 (control ID) set to these values.

    The segments' own MSH-7 and MSH-10 are replaced so that no engine drops a check as a duplicate."""
    msh = segments[0]
    if not msh.startswith("MSH") or len(msh) < 8:
        raise ValueError("the first segment must be MSH with its field separator and encoding characters")
    sep = msh[3]
    fields = msh.split(sep)
    fields += [""] * (12 - len(fields))  # MSH-1 is the separator itself, so MSH-n is fields[n - 1]
    fields[6], fields[9] = timestamp, control_id
    return "\r".join([sep.join(fields), *segments[1:]]) + "\r"


def judge_ack(answer: bytes, control_id: str) -> Result:
    """Pure: the verdict on an acknowledgement (the unframed bytes). AA and CA pass; AE, AR, CE, CR,
    a missing MSA, a foreign control ID or anything that is not HL7 fail, with the engine's own text."""
    text = answer.decode("utf-8", errors="replace").replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    try:
        message = hl7.parse(text)
        msa = message.segment("MSA")
    except (hl7.ParseException, KeyError, IndexError, ValueError) as exc:
        return Result(False, f"HL7 answer without an MSA segment ({type(exc).__name__}): {_snippet(text)}")
    code = _field(msa, 1)
    acked = _field(msa, 2)
    if code in ("AA", "CA"):
        if acked != control_id:
            return Result(False, f"HL7 answered {code} for control ID {acked!r}, not ours ({control_id})")
        return Result(True, f"HL7 answered {code}")
    detail = _field(msa, 3) or _error_text(message)
    if code in ("AE", "AR", "CE", "CR"):
        return Result(False, f"HL7 answered {code}" + (f": {detail}" if detail else ""))
    return Result(False, f"HL7 answer with an unknown acknowledgement code {code!r}")


def _field(segment, index: int) -> str:
    try:
        return str(segment[index]).strip()
    except IndexError:
        return ""


def _error_text(message) -> str:
    """ERR-8 (user message) or ERR-3 (HL7 error code) of v2.5 acknowledgements, when MSA-3 is empty."""
    try:
        err = message.segment("ERR")
    except KeyError:
        return ""
    return _field(err, 8) or _field(err, 3) or _field(err, 1)


def _snippet(text: str) -> str:
    return repr(text[:60])


@dataclass
class HL7Probe:
    """Send one message over MLLP and judge the acknowledgement within `timeout` seconds."""

    timeout: float
    segments: tuple[str, ...] = tuple(default_segments("PACSLB", ""))

    def message(self) -> tuple[str, str]:
        """(message, control ID) of one check."""
        control_id = hl7.generate_message_control_id()
        return build_message(list(self.segments), control_id, time.strftime("%Y%m%d%H%M%S")), control_id

    async def probe(self, target: Target) -> Result:
        message, control_id = self.message()
        stage = "connect"
        received = b""
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(target.address, target.port)
                try:
                    stage = "answer"
                    writer.write(frame(message))
                    await writer.drain()
                    while True:
                        chunk = await reader.read(65536)
                        if not chunk:
                            break
                        received += chunk
                        answer, _ = unframe(received)
                        if answer is not None:
                            return judge_ack(answer, control_id)
                        if len(received) > MAX_ANSWER:
                            return Result(False, f"HL7 answer not MLLP-framed: {received[:40]!r}")
                finally:
                    writer.close()
        except TimeoutError:
            if stage == "connect":
                return Result(False, f"no answer to connect within {self.timeout:g}s")
            if received:
                return Result(False, f"HL7 answer not complete (no MLLP end block) within {self.timeout:g}s")
            return Result(False, f"TCP accepted but no HL7 acknowledgement within {self.timeout:g}s")
        except OSError as exc:
            return Result(False, f"{'connect failed' if stage == 'connect' else 'connection lost'}: {exc.strerror or exc}")
        if received:
            return Result(False, f"connection closed before the MLLP end block: {received[:40]!r}")
        return Result(False, "connection closed without an HL7 acknowledgement")
