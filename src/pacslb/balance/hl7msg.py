"""HL7 v2 messages of the balance service, pure: ORM^O01 (orders) and ORU^R01 (report signed) in, ACK out.

Where the fields are (HL7 v2.3 to 2.5, as RIS and voice-recognition systems send them):
  MSH-9 message type, MSH-10 control ID, MSH-4 sending facility (the site when PV1-3.4 is empty)
  PID-3 patient identifier (first component)
  ORC-1 order control: NW new order, CA/OC cancel; ORC-7.6 or OBR-27.6 priority: S stat, A asap (expedited), R routine
  OBR-3 filler order number = the accession; OBR-4 procedure (its text names the body part when OBR-15 does not);
  OBR-15.4 or OBR-4.2 body part; OBR-24 diagnostic service section = the modality; OBR-25 result status (F final)
  PV1-3.4 facility = the site

An unparseable message or a type this service does not take gets AR (rejected); a message missing what it needs
(no accession, no patient, an unknown priority) gets AE with the field named. The reason goes in MSA-3 and ERR-8.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import hl7

MAX_MESSAGE_BYTES = 1 << 20  # an order is a few kilobytes; larger frames are refused
BS = chr(92)  # the HL7 escape character, a backslash
PRIORITY_CODES = {
    "S": "STAT",
    "STAT": "STAT",
    "A": "expedited",
    "P": "expedited",
    "C": "expedited",
    "R": "routine",
    "": "routine",
}


class HL7Reject(ValueError):
    """The message cannot be taken; `code` is AR (not understood or not supported) or AE (application error)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Order:
    accession: str
    patient: str
    modality: str
    body_part: str
    priority: str
    site: str
    cancel: bool = False


@dataclass(frozen=True)
class Signed:
    accession: str
    reader: str


def _field(message, segment: str, index: int, component: int = 0) -> str:
    """Field (and component, 1-based; 0 for the whole first repetition's first component) of the first segment."""
    try:
        seg = message.segment(segment)
    except KeyError:
        return ""
    try:
        value = seg[index]
    except IndexError:
        return ""
    text = str(value)
    if "~" in text:
        text = text.split("~", 1)[0]
    parts = text.split("^")
    if component:
        return parts[component - 1].strip() if len(parts) >= component else ""
    return parts[0].strip()


def parse(raw: bytes) -> tuple[object, str, str]:
    """(message, message type such as ORM^O01, control ID); HL7Reject AR if it is not HL7 v2 at all."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise HL7Reject("AR", f"message of {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not text.startswith("MSH") or len(text) < 8:
        raise HL7Reject("AR", "not an HL7 v2 message: it must start with an MSH segment")
    try:
        message = hl7.parse(text)
        msh = message.segment("MSH")
    except (hl7.ParseException, KeyError, IndexError, ValueError) as exc:
        raise HL7Reject("AR", f"not an HL7 v2 message ({type(exc).__name__})") from None
    msg_type = "^".join(str(msh[9]).split("^")[:2]) if len(msh) > 9 else ""
    control = str(msh[10]) if len(msh) > 10 else ""
    return message, msg_type, control


def read_order(message) -> Order:
    """An ORM^O01 as an Order (AE naming the field when something it needs is missing)."""
    accession = _field(message, "OBR", 3) or _field(message, "ORC", 3)
    if not accession:
        raise HL7Reject("AE", "OBR-3 (filler order number, the accession) is empty")
    patient = _field(message, "PID", 3)
    if not patient:
        raise HL7Reject("AE", "PID-3 (patient identifier) is empty")
    control = _field(message, "ORC", 1).upper()
    code = (_field(message, "ORC", 7, 6) or _field(message, "OBR", 27, 6)).upper()
    if code not in PRIORITY_CODES:
        raise HL7Reject("AE", f"ORC-7.6/OBR-27.6 priority {code!r} is not S, A or R")
    modality = _field(message, "OBR", 24).upper()
    if not modality:
        raise HL7Reject("AE", "OBR-24 (diagnostic service section, the modality) is empty")
    body = _field(message, "OBR", 15, 4) or _field(message, "OBR", 4, 2)
    site = _field(message, "PV1", 3, 4) or _field(message, "MSH", 4)
    return Order(accession, patient, modality, body.upper(), PRIORITY_CODES[code], site, cancel=control in ("CA", "OC", "DC"))


def read_signed(message) -> Signed | None:
    """An ORU^R01 as Signed when OBR-25 is F (final) or C (corrected); None for a preliminary result."""
    accession = _field(message, "OBR", 3) or _field(message, "ORC", 3)
    if not accession:
        raise HL7Reject("AE", "OBR-3 (filler order number, the accession) is empty")
    status = _field(message, "OBR", 25).upper()
    if status not in ("F", "C", "P", ""):
        raise HL7Reject("AE", f"OBR-25 result status {status!r} is not F, C or P")
    if status == "P":
        return None
    return Signed(accession, _field(message, "OBR", 32))


def escape(text: str) -> str:
    """HL7 v2 escape sequences for the delimiters (the escape character first)."""
    for char, seq in (
        (BS, BS + "E" + BS),
        ("|", BS + "F" + BS),
        ("^", BS + "S" + BS),
        ("~", BS + "R" + BS),
        ("&", BS + "T" + BS),
    ):
        text = text.replace(char, seq)
    return text


def ack(message_text_msh: str | None, control_id: str, code: str, reason: str = "", now: dt.datetime | None = None) -> str:
    """An ACK message: MSH (sender and receiver swapped from `message_text_msh` when known), MSA, and ERR when not AA."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%d%H%M%S")
    sending, facility, receiving, rfacility, version = "", "", "", "", "2.5"
    if message_text_msh:
        parts = message_text_msh.split("|")
        get = lambda i: parts[i] if len(parts) > i else ""  # noqa: E731 - a local accessor keeps the field numbers readable
        sending, facility, receiving, rfacility = get(2), get(3), get(4), get(5)
        version = get(11) or version
    clean = escape(reason.replace("\r", " ").replace("\n", " ")[:200])
    msh = f"MSH|^~\\&|{receiving or 'PACSLB'}|{rfacility}|{sending}|{facility}|{stamp}||ACK|{control_id or stamp}|P|{version}"
    segments = [msh, f"MSA|{code}|{control_id}" + (f"|{clean}" if clean else "")]
    if code != "AA":
        segments.append(f"ERR||||E||||{clean}")  # ERR-4 severity E, ERR-8 user message
    return "\r".join(segments) + "\r"
