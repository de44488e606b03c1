"""DICOM upper layer (PS3.8) and the C-ECHO command (PS3.7), as much as a Verification check needs.

Pure: PDUs are bytes in and bytes out, and `CEcho` is the check's state machine; the probe in
dicom.py owns the socket and the timeout.

    check (SCU)                                  archive (SCP)
    A-ASSOCIATE-RQ  Verification, Implicit VR LE ->
                                                 <- A-ASSOCIATE-AC (or -RJ, A-ABORT)
    P-DATA-TF       C-ECHO-RQ                    ->
                                                 <- P-DATA-TF  C-ECHO-RSP  Status
    A-RELEASE-RQ                                 ->
                                                 <- A-RELEASE-RP

pynetdicom stays the reference: tests/unit/health/test_dicom_pdu.py decodes what this module
encodes with pynetdicom's PDU and DIMSE classes, and this module decodes what pynetdicom encodes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .base import Result

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
# A UUID-derived UID (PS3.5 B.2): pacslb has no registered UID root.
IMPLEMENTATION_CLASS_UID = "2.25.331919839149817393991294301138865218985"
IMPLEMENTATION_VERSION = "PACSLB_0.1"
MAX_PDU = 16384  # what we accept; a C-ECHO-RSP is about 100 bytes
MAX_RECEIVED_PDU = 1 << 20  # a longer PDU from the archive is junk, not DICOM we need to read
CONTEXT_ID = 1

A_ASSOCIATE_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ, P_DATA_TF, A_RELEASE_RQ, A_RELEASE_RP, A_ABORT = range(1, 8)
PDU_NAMES = {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF",
             5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT"}  # fmt: skip

C_ECHO_RQ = 0x0030
C_ECHO_RSP = 0x8030
NO_DATA_SET = 0x0101

# A-ASSOCIATE-RJ words (PS3.8 9.3.4), spelled as pynetdicom spells them.
RJ_RESULTS = {1: "Rejected Permanent", 2: "Rejected Transient"}
RJ_SOURCES = {1: "Service User", 2: "Service Provider (ACSE)", 3: "Service Provider (Presentation)"}
RJ_REASONS = {
    1: {1: "No reason given", 2: "Application context name not supported", 3: "Calling AE title not recognised",
        7: "Called AE title not recognised"},
    2: {1: "No reason given", 2: "Protocol version not supported"},
    3: {1: "Temporary congestion", 2: "Local limit exceeded"},
}  # fmt: skip
# A-ABORT (PS3.8 9.3.8) and presentation context results (9.3.3.2).
ABORT_REASONS = {1: "unrecognized PDU", 2: "unexpected PDU", 4: "unrecognized PDU parameter",
                 5: "unexpected PDU parameter", 6: "invalid PDU parameter value"}  # fmt: skip
CONTEXT_RESULTS = {1: "user rejection", 2: "no reason (provider rejection)", 3: "abstract syntax not supported",
                   4: "transfer syntaxes not supported"}  # fmt: skip


class PDUError(ValueError):
    """The archive sent bytes that are not the DICOM upper layer protocol (or not what it promised)."""


# --- encoding ----------------------------------------------------------------------------------


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BxI", pdu_type, len(body)) + body


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(value)) + value


def _ae(title: str) -> bytes:
    raw = title.encode("ascii", errors="replace")
    if not raw.strip() or len(raw) > 16 or not title.isascii():
        raise ValueError(f"AE title {title!r}: 1 to 16 ASCII characters")
    return raw.ljust(16, b" ")


def associate_rq(calling_ae: str, called_ae: str, max_pdu: int = MAX_PDU) -> bytes:
    """A-ASSOCIATE-RQ proposing Verification with Implicit VR Little Endian (context ID 1)."""
    context = (
        struct.pack(">B3x", CONTEXT_ID) + _item(0x30, VERIFICATION.encode()) + _item(0x40, IMPLICIT_VR_LITTLE_ENDIAN.encode())
    )
    user = (
        _item(0x51, struct.pack(">I", max_pdu))
        + _item(0x52, IMPLEMENTATION_CLASS_UID.encode())
        + _item(0x55, IMPLEMENTATION_VERSION.encode())
    )
    body = (
        struct.pack(">H2x", 1)  # protocol version 1
        + _ae(called_ae)
        + _ae(calling_ae)
        + bytes(32)
        + _item(0x10, APPLICATION_CONTEXT.encode())
        + _item(0x20, context)
        + _item(0x50, user)
    )
    return _pdu(A_ASSOCIATE_RQ, body)


def _element(tag_element: int, value: bytes) -> bytes:
    """One group-0000 element in Implicit VR Little Endian."""
    return struct.pack("<HHI", 0, tag_element, len(value)) + value


def _uid(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw  # UIDs pad to an even length with NUL


def echo_command(message_id: int) -> bytes:
    """The C-ECHO-RQ command set (Implicit VR Little Endian, group length first)."""
    rest = (
        _element(0x0002, _uid(VERIFICATION))
        + _element(0x0100, struct.pack("<H", C_ECHO_RQ))
        + _element(0x0110, struct.pack("<H", message_id))
        + _element(0x0800, struct.pack("<H", NO_DATA_SET))
    )
    return _element(0x0000, struct.pack("<I", len(rest))) + rest


def p_data_tf(context_id: int, command: bytes) -> bytes:
    """P-DATA-TF with one PDV: a whole command set (message control header: command, last fragment)."""
    return _pdu(P_DATA_TF, struct.pack(">IBB", len(command) + 2, context_id, 0x03) + command)


def release_rq() -> bytes:
    return _pdu(A_RELEASE_RQ, bytes(4))


def release_rp() -> bytes:
    return _pdu(A_RELEASE_RP, bytes(4))


def abort(source: int = 0, reason: int = 0) -> bytes:
    """A-ABORT; source 0 is the service user (the check itself)."""
    return _pdu(A_ABORT, struct.pack(">2xBB", source, reason))


# --- decoding ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PDU:
    type: int
    body: bytes


def split_pdus(buffer: bytes) -> tuple[list[PDU], bytes]:
    """The whole PDUs at the start of `buffer` and the bytes left (an incomplete PDU)."""
    pdus: list[PDU] = []
    offset = 0
    while len(buffer) - offset >= 6:
        pdu_type, length = struct.unpack_from(">BxI", buffer, offset)
        if pdu_type not in PDU_NAMES:
            raise PDUError(f"unknown PDU type 0x{pdu_type:02X}")
        if length > MAX_RECEIVED_PDU:
            raise PDUError(f"{PDU_NAMES[pdu_type]} of {length} bytes")
        if len(buffer) - offset - 6 < length:
            break
        pdus.append(PDU(pdu_type, buffer[offset + 6 : offset + 6 + length]))
        offset += 6 + length
    return pdus, buffer[offset:]


def _items(data: bytes, offset: int, what: str):
    """(item type, value) of the items in data[offset:]."""
    while offset < len(data):
        if len(data) - offset < 4:
            raise PDUError(f"{what}: truncated item header")
        item_type, length = struct.unpack_from(">BxH", data, offset)
        end = offset + 4 + length
        if end > len(data):
            raise PDUError(f"{what}: item 0x{item_type:02X} longer than the PDU")
        yield item_type, data[offset + 4 : end]
        offset = end


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\x00 ").decode("ascii", errors="replace")


@dataclass(frozen=True)
class Acceptance:
    """What an A-ASSOCIATE-AC says about our presentation context."""

    context_result: int | None  # 0 acceptance; None when the AC has no answer for context 1
    transfer_syntax: str
    max_pdu: int  # the archive's maximum PDU length, 0 for unlimited


def decode_associate_ac(body: bytes) -> Acceptance:
    if len(body) < 68:
        raise PDUError("A-ASSOCIATE-AC shorter than its fixed fields")
    result, syntax, max_pdu = None, "", 0
    for item_type, value in _items(body, 68, "A-ASSOCIATE-AC"):
        if item_type == 0x21 and len(value) >= 4 and value[0] == CONTEXT_ID:
            result = value[2]
            for sub_type, sub in _items(value, 4, "presentation context"):
                if sub_type == 0x40:
                    syntax = _text(sub)
        elif item_type == 0x50:
            for sub_type, sub in _items(value, 0, "user information"):
                if sub_type == 0x51 and len(sub) == 4:
                    max_pdu = struct.unpack(">I", sub)[0]
    return Acceptance(result, syntax, max_pdu)


@dataclass(frozen=True)
class Rejection:
    result: int
    source: int
    reason: int

    def words(self) -> tuple[str, str, str]:
        """(result, source, reason) as pynetdicom words them."""
        return (
            RJ_RESULTS.get(self.result, f"Rejected (result {self.result})"),
            RJ_SOURCES.get(self.source, f"source {self.source}"),
            RJ_REASONS.get(self.source, {}).get(self.reason, f"reason {self.reason}"),
        )


def decode_associate_rj(body: bytes) -> Rejection:
    if len(body) < 4:
        raise PDUError("A-ASSOCIATE-RJ shorter than 4 bytes")
    return Rejection(body[1], body[2], body[3])


def decode_abort(body: bytes) -> tuple[int, int]:
    """(source, reason) of an A-ABORT; the source is 0 (service user) or 2 (service provider)."""
    if len(body) < 4:
        raise PDUError("A-ABORT shorter than 4 bytes")
    return body[2], body[3]


def decode_pdvs(body: bytes) -> list[tuple[int, int, bytes]]:
    """(context ID, message control header, fragment) of each PDV of a P-DATA-TF."""
    pdvs = []
    offset = 0
    while offset < len(body):
        if len(body) - offset < 6:
            raise PDUError("P-DATA-TF: truncated PDV header")
        (length,) = struct.unpack_from(">I", body, offset)
        if length < 2 or offset + 4 + length > len(body):
            raise PDUError(f"P-DATA-TF: PDV length {length} does not fit the PDU")
        pdvs.append((body[offset + 4], body[offset + 5], body[offset + 6 : offset + 4 + length]))
        offset += 4 + length
    return pdvs


def decode_command(data: bytes) -> dict[int, bytes]:
    """Group-0000 elements of a command set (Implicit VR Little Endian): {element number: value}."""
    elements: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        if len(data) - offset < 8:
            raise PDUError("command set: truncated element header")
        group, element, length = struct.unpack_from("<HHI", data, offset)
        if group != 0:
            raise PDUError(f"command set: element ({group:04X},{element:04X}) outside group 0000")
        if offset + 8 + length > len(data):
            raise PDUError(f"command set: element (0000,{element:04X}) longer than the command")
        elements[element] = data[offset + 8 : offset + 8 + length]
        offset += 8 + length
    return elements


def _us(elements: dict[int, bytes], element: int) -> int | None:
    value = elements.get(element)
    return struct.unpack("<H", value)[0] if value is not None and len(value) == 2 else None


@dataclass(frozen=True)
class EchoResponse:
    command_field: int | None
    responding_to: int | None
    status: int | None
    error_comment: str = ""


def decode_echo_response(command: bytes) -> EchoResponse:
    elements = decode_command(command)
    return EchoResponse(_us(elements, 0x0100), _us(elements, 0x0120), _us(elements, 0x0900), _text(elements.get(0x0902, b"")))


# --- verdicts in words -------------------------------------------------------------------------


def rejection_reason(result: str, source: str, reason: str) -> str:
    """Pure: an A-ASSOCIATE-RJ in words, from pynetdicom's result_str, source_str and reason_str."""
    kind = result.replace("Rejected", "").strip().lower() or "rejected"
    by = source.strip().lower()
    words = " ".join(w if w in ("AE", "DICOM", "ACSE") else w.lower() for w in reason.split())
    return f"association rejected ({kind}, by the {by}): {words}"


def echo_status_reason(status: int, comment: str = "") -> Result:
    """Pure: the verdict on a C-ECHO-RSP status (0x0000 Success; PS3.7 C.2.1)."""
    if status == 0x0000:
        return Result(True, "C-ECHO success")
    return Result(False, f"C-ECHO status 0x{status:04X}" + (f": {comment}" if comment else ""))


def abort_reason(source: int, reason: int) -> str:
    if source == 2:
        return (
            f"association aborted by the server's DICOM provider (A-ABORT: {ABORT_REASONS.get(reason, 'reason not specified')})"
        )
    return "association aborted by the server (A-ABORT)"


# --- the check as a state machine ----------------------------------------------------------------


WAITING_FOR = {
    "associating": "answer to the association request",
    "echoing": "C-ECHO answer",
    "releasing": "answer to the release request (A-RELEASE-RP)",
}


@dataclass
class CEcho:
    """Sans-IO C-ECHO check. `start()` gives the A-ASSOCIATE-RQ; `feed(data)` gives bytes to send and,
    once the exchange is over, the Result (None until then).

    `stage` goes associating -> echoing -> releasing -> done. The C-ECHO's verdict is in `verdict` as
    soon as the C-ECHO-RSP arrives; the release that follows does not change it (an archive that
    answered the C-ECHO is up even when it does not answer the A-RELEASE-RQ)."""

    calling_ae: str = "PACSLB"
    called_ae: str = "ANY-SCP"
    message_id: int = 1
    stage: str = "associating"
    verdict: Result | None = None
    _buffer: bytes = field(default=b"", repr=False)
    _command: bytes = field(default=b"", repr=False)

    def start(self) -> bytes:
        return associate_rq(self.calling_ae, self.called_ae)

    def feed(self, data: bytes) -> tuple[bytes, Result | None]:
        if self.stage == "done":
            return b"", self.verdict
        self._buffer += data
        try:
            pdus, self._buffer = split_pdus(self._buffer)
        except PDUError as exc:
            return abort(0, 1), self._fail(f"not DICOM ({exc}): {self._buffer[:24]!r}")
        out = b""
        for pdu in pdus:
            try:
                sent, verdict = self._on_pdu(pdu)
            except PDUError as exc:
                return out + abort(0, 6), self._fail(f"broken {PDU_NAMES[pdu.type]}: {exc}")
            out += sent
            if verdict is not None:
                return out, verdict
        return out, None

    def closed(self) -> Result:
        """The verdict when the archive closes the connection now."""
        if self.stage == "done":
            return self.verdict  # type: ignore[return-value]
        if self.stage == "releasing":
            return self._done(self.verdict)  # type: ignore[arg-type]
        return self._fail(f"connection closed by the server before the {WAITING_FOR[self.stage]} (A-P-ABORT)")

    def timed_out(self, timeout: float) -> Result:
        """The verdict when `timeout` ran out in the current stage."""
        if self.stage == "releasing":
            return self._done(self.verdict)  # type: ignore[arg-type]
        if self.stage == "associating":
            return self._fail(f"TCP accepted but no answer to the association request within {timeout:g}s")
        return self._fail(f"no {WAITING_FOR.get(self.stage, 'answer')} within {timeout:g}s")

    def _done(self, verdict: Result) -> Result:
        self.stage, self.verdict = "done", verdict
        return verdict

    def _fail(self, reason: str) -> Result:
        return self._done(Result(False, reason))

    def _on_pdu(self, pdu: PDU) -> tuple[bytes, Result | None]:
        if pdu.type == A_ABORT:
            source, reason = decode_abort(pdu.body)
            if self.stage == "releasing":  # the C-ECHO was answered; some archives abort instead of releasing
                return b"", self._done(self.verdict)  # type: ignore[arg-type]
            during = "" if self.stage == "associating" else " during the C-ECHO"
            return b"", self._fail(abort_reason(source, reason) + during)
        if self.stage == "associating" and pdu.type == A_ASSOCIATE_RJ:
            return b"", self._fail(rejection_reason(*decode_associate_rj(pdu.body).words()))
        if self.stage == "associating" and pdu.type == A_ASSOCIATE_AC:
            accepted = decode_associate_ac(pdu.body)
            if accepted.context_result != 0:
                why = CONTEXT_RESULTS.get(accepted.context_result, "no answer for it")  # type: ignore[arg-type]
                self.verdict = Result(False, f"association accepted but the Verification SOP class was refused ({why})")
                self.stage = "releasing"
                return release_rq(), None
            if accepted.transfer_syntax not in ("", IMPLICIT_VR_LITTLE_ENDIAN):
                return abort(0, 6), self._fail(f"the archive chose transfer syntax {accepted.transfer_syntax}, not proposed")
            self.stage = "echoing"
            return p_data_tf(CONTEXT_ID, echo_command(self.message_id)), None
        if self.stage == "echoing" and pdu.type == P_DATA_TF:
            for _context_id, header, fragment in decode_pdvs(pdu.body):
                if not header & 0x01:
                    continue  # a data set: a C-ECHO-RSP has none, and we have no use for one
                self._command += fragment
                if len(self._command) > MAX_RECEIVED_PDU:
                    raise PDUError(f"a command set of over {MAX_RECEIVED_PDU} bytes")
                if header & 0x02:  # last fragment of the command
                    return self._on_response(decode_echo_response(self._command))
            return b"", None
        if self.stage == "releasing" and pdu.type == A_RELEASE_RP:
            return b"", self._done(self.verdict)  # type: ignore[arg-type]
        if self.stage == "releasing" and pdu.type == A_RELEASE_RQ:
            # Release collision (PS3.8 7.2.2): the requestor answers with A-RELEASE-RP and is done.
            return release_rp(), self._done(self.verdict)  # type: ignore[arg-type]
        if self.stage == "releasing" and pdu.type == P_DATA_TF:
            return b"", None  # late data before the archive's A-RELEASE-RP
        return abort(0, 2), self._fail(f"unexpected {PDU_NAMES[pdu.type]} while waiting for the {WAITING_FOR[self.stage]}")

    def _on_response(self, response: EchoResponse) -> tuple[bytes, Result | None]:
        self._command = b""
        if response.command_field != C_ECHO_RSP:
            field_ = "none" if response.command_field is None else f"0x{response.command_field:04X}"
            return abort(0, 2), self._fail(f"the archive answered the C-ECHO with command field {field_}, not a C-ECHO-RSP")
        if response.status is None:
            return abort(0, 6), self._fail("C-ECHO-RSP without a Status")
        if response.responding_to not in (None, self.message_id):
            return abort(0, 6), self._fail(f"C-ECHO-RSP for message ID {response.responding_to}, not ours ({self.message_id})")
        self.verdict = echo_status_reason(response.status, response.error_comment)
        self.stage = "releasing"
        return release_rq(), None
