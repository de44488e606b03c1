"""AMQP 0-9-1 wire encoding: pure functions (no I/O), enough for the connection handshake.

References: the AMQP 0-9-1 specification, sections 2.3 (framing), 4.2.2 (protocol header),
4.2.3-4.2.6 (frames), and RabbitMQ's errata for field-table types (``s`` short-int, ``x``
byte array). Every integer is big-endian.

    protocol header   b"AMQP" 0 0 9 1
    frame             type:octet channel:short size:long payload:size octets 0xCE
    method payload    class-id:short method-id:short arguments
    shortstr          length:octet bytes          longstr  length:long bytes
    field table       size:long then (name:shortstr type:octet value)*
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE
FRAME_END_BYTE = b"\xce"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8

# (class-id, method-id)
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_SECURE = (10, 20)
CONNECTION_SECURE_OK = (10, 21)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)

# reply codes (spec section 1.2 "constants")
REPLY_SUCCESS = 200
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
NOT_IMPLEMENTED = 540

FRAME_MIN_SIZE = 4096
DEFAULT_FRAME_MAX = 131072
DEFAULT_CHANNEL_MAX = 2047


class AmqpError(ValueError):
    """Bytes that are not valid AMQP 0-9-1."""


# ---------------------------------------------------------------- primitive types


def shortstr(value: str | bytes) -> bytes:
    b = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(b) > 255:
        raise AmqpError(f"shortstr longer than 255 octets: {len(b)}")
    return bytes([len(b)]) + b


def longstr(value: str | bytes) -> bytes:
    b = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return struct.pack(">I", len(b)) + b


def field_value(value: Any) -> bytes:
    """One typed field value: type octet + value (bool before int: bool is an int in Python)."""
    if value is None:
        return b"V"
    if isinstance(value, bool):
        return b"t" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return b"I" + struct.pack(">i", value)
        if -(2**63) <= value < 2**63:
            return b"l" + struct.pack(">q", value)
        raise AmqpError(f"integer out of range: {value}")
    if isinstance(value, float):
        return b"d" + struct.pack(">d", value)
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int) or exponent > 0 or -exponent > 255:
            raise AmqpError(f"decimal not representable: {value}")
        unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        return b"D" + struct.pack(">Bi", -exponent, unscaled)
    if isinstance(value, str):
        return b"S" + longstr(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        return b"x" + struct.pack(">I", len(b)) + b
    if isinstance(value, Mapping):
        return b"F" + field_table(value)
    if isinstance(value, (list, tuple)):
        inner = b"".join(field_value(v) for v in value)
        return b"A" + struct.pack(">I", len(inner)) + inner
    raise AmqpError(f"no AMQP field type for {type(value).__name__}")


def field_table(table: Mapping[str, Any]) -> bytes:
    """A field table: long size, then name (shortstr) and typed value per entry, in order."""
    inner = b"".join(shortstr(k) + field_value(v) for k, v in table.items())
    return struct.pack(">I", len(inner)) + inner


class _Reader:
    """A cursor over bytes for decoding."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise AmqpError("truncated")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(b)

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))

    def octet(self) -> int:
        return self.unpack(">B")[0]

    def short(self) -> int:
        return self.unpack(">H")[0]

    def long(self) -> int:
        return self.unpack(">I")[0]

    def shortstr(self) -> str:
        return self.take(self.octet()).decode("utf-8", "replace")

    def longstr_bytes(self) -> bytes:
        return self.take(self.long())

    def table(self) -> dict[str, Any]:
        size = self.long()
        end = self.pos + size
        if end > len(self.data):
            raise AmqpError("truncated field table")
        out: dict[str, Any] = {}
        while self.pos < end:
            name = self.shortstr()
            out[name] = self.value()
        if self.pos != end:
            raise AmqpError("field table size mismatch")
        return out

    def value(self) -> Any:
        t = self.take(1)
        if t == b"t":
            return self.octet() != 0
        if t == b"b":
            return self.unpack(">b")[0]
        if t == b"B":
            return self.unpack(">B")[0]
        if t in (b"s", b"U"):
            return self.unpack(">h")[0]
        if t == b"u":
            return self.unpack(">H")[0]
        if t == b"I":
            return self.unpack(">i")[0]
        if t == b"i":
            return self.unpack(">I")[0]
        if t in (b"l", b"L"):
            return self.unpack(">q")[0]
        if t == b"f":
            return self.unpack(">f")[0]
        if t == b"d":
            return self.unpack(">d")[0]
        if t == b"D":
            scale, unscaled = self.unpack(">Bi")
            return Decimal(unscaled).scaleb(-scale)
        if t == b"S":
            return self.longstr_bytes().decode("utf-8", "replace")
        if t == b"x":
            return self.longstr_bytes()
        if t == b"T":
            return self.unpack(">Q")[0]
        if t == b"F":
            return self.table()
        if t == b"A":
            size = self.long()
            end = self.pos + size
            items = []
            while self.pos < end:
                items.append(self.value())
            if self.pos != end:
                raise AmqpError("field array size mismatch")
            return items
        if t == b"V":
            return None
        raise AmqpError(f"unknown field type {t!r}")


def decode_field_table(data: bytes) -> dict[str, Any]:
    """Decode a whole field table (size prefix included)."""
    r = _Reader(data)
    t = r.table()
    if r.pos != len(data):
        raise AmqpError("trailing bytes after field table")
    return t


# ---------------------------------------------------------------- frames


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + FRAME_END_BYTE


def method_frame(channel: int, class_method: tuple[int, int], arguments: bytes = b"") -> bytes:
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *class_method) + arguments)


def heartbeat_frame() -> bytes:
    return frame(FRAME_HEARTBEAT, 0, b"")


@dataclass(frozen=True)
class Frame:
    type: int
    channel: int
    payload: bytes

    def method(self) -> tuple[tuple[int, int], bytes]:
        """For a method frame: ((class-id, method-id), argument bytes)."""
        if self.type != FRAME_METHOD:
            raise AmqpError(f"not a method frame: type {self.type}")
        if len(self.payload) < 4:
            raise AmqpError("method frame shorter than class and method ids")
        cls, meth = struct.unpack(">HH", self.payload[:4])
        return (cls, meth), self.payload[4:]


def parse_frame(buf: bytes, frame_max: int = DEFAULT_FRAME_MAX) -> tuple[Frame, int] | None:
    """Decode one frame at the start of ``buf``: (frame, bytes used), or None if incomplete.

    Raises AmqpError on a bad frame-end octet or a frame larger than ``frame_max``.
    """
    if len(buf) < 7:
        return None
    ftype, channel, size = struct.unpack(">BHI", buf[:7])
    if frame_max and size + 8 > frame_max:
        raise AmqpError(f"frame of {size + 8} octets exceeds frame-max {frame_max}")
    end = 7 + size
    if len(buf) < end + 1:
        return None
    if buf[end] != FRAME_END:
        raise AmqpError(f"frame-end octet is 0x{buf[end]:02x}, not 0xce")
    return Frame(ftype, channel, bytes(buf[7:end])), end + 1


# ---------------------------------------------------------------- methods


def connection_start(
    server_properties: Mapping[str, Any],
    mechanisms: str = "PLAIN AMQPLAIN",
    locales: str = "en_US",
    version: tuple[int, int] = (0, 9),
) -> bytes:
    """The Connection.Start method frame (channel 0, class 10, method 10)."""
    args = struct.pack(">BB", *version) + field_table(server_properties) + longstr(mechanisms) + longstr(locales)
    return method_frame(0, CONNECTION_START, args)


@dataclass(frozen=True)
class ConnectionStart:
    version_major: int
    version_minor: int
    server_properties: dict[str, Any]
    mechanisms: str
    locales: str


def decode_connection_start(arguments: bytes) -> ConnectionStart:
    r = _Reader(arguments)
    major, minor = r.octet(), r.octet()
    props = r.table()
    mech = r.longstr_bytes().decode("utf-8", "replace")
    loc = r.longstr_bytes().decode("utf-8", "replace")
    if r.pos != len(arguments):
        raise AmqpError("trailing bytes after Connection.Start arguments")
    return ConnectionStart(major, minor, props, mech, loc)


@dataclass(frozen=True)
class ConnectionStartOk:
    client_properties: dict[str, Any]
    mechanism: str
    response: bytes
    locale: str


def connection_start_ok(
    client_properties: Mapping[str, Any],
    mechanism: str = "PLAIN",
    response: bytes = b"\x00guest\x00guest",
    locale: str = "en_US",
) -> bytes:
    """Connection.Start-Ok (what a client sends; for tests and health checks)."""
    args = field_table(client_properties) + shortstr(mechanism) + longstr(response) + shortstr(locale)
    return method_frame(0, CONNECTION_START_OK, args)


def decode_connection_start_ok(arguments: bytes) -> ConnectionStartOk:
    r = _Reader(arguments)
    props = r.table()
    mech = r.shortstr()
    resp = r.longstr_bytes()
    loc = r.shortstr()
    return ConnectionStartOk(props, mech, resp, loc)


def connection_tune(channel_max: int = DEFAULT_CHANNEL_MAX, frame_max: int = DEFAULT_FRAME_MAX, heartbeat: int = 0) -> bytes:
    return method_frame(0, CONNECTION_TUNE, struct.pack(">HIH", channel_max, frame_max, heartbeat))


def decode_connection_tune(arguments: bytes) -> tuple[int, int, int]:
    """(channel-max, frame-max, heartbeat) of Connection.Tune or Tune-Ok."""
    if len(arguments) != 8:
        raise AmqpError("Connection.Tune arguments are 8 octets")
    return struct.unpack(">HIH", arguments)


def connection_tune_ok(channel_max: int = DEFAULT_CHANNEL_MAX, frame_max: int = DEFAULT_FRAME_MAX, heartbeat: int = 0) -> bytes:
    return method_frame(0, CONNECTION_TUNE_OK, struct.pack(">HIH", channel_max, frame_max, heartbeat))


def connection_open(virtual_host: str = "/") -> bytes:
    # virtual-host shortstr, reserved-1 shortstr (capabilities), reserved-2 bit (insist)
    return method_frame(0, CONNECTION_OPEN, shortstr(virtual_host) + shortstr("") + b"\x00")


def decode_connection_open(arguments: bytes) -> str:
    return _Reader(arguments).shortstr()


def connection_open_ok() -> bytes:
    return method_frame(0, CONNECTION_OPEN_OK, shortstr(""))  # reserved-1 (known-hosts)


def connection_close(reply_code: int, reply_text: str, failing: tuple[int, int] = (0, 0)) -> bytes:
    return method_frame(
        0,
        CONNECTION_CLOSE,
        struct.pack(">H", reply_code) + shortstr(reply_text) + struct.pack(">HH", *failing),
    )


def decode_connection_close(arguments: bytes) -> tuple[int, str, tuple[int, int]]:
    r = _Reader(arguments)
    code = r.short()
    text = r.shortstr()
    cls, meth = r.short(), r.short()
    return code, text, (cls, meth)


def connection_close_ok() -> bytes:
    return method_frame(0, CONNECTION_CLOSE_OK)


def channel_open_ok(channel: int) -> bytes:
    return method_frame(channel, CHANNEL_OPEN_OK, longstr(b""))  # reserved-1 longstr


def channel_close_ok(channel: int) -> bytes:
    return method_frame(channel, CHANNEL_CLOSE_OK)


def server_properties(service: str, replica: str, address: str, version: str) -> dict[str, Any]:
    """The server-properties table this demo sends: it names the service and the replica."""
    return {
        "product": "pacslb-demo",
        "version": version,
        "platform": "Python asyncio",
        "information": "pacslb simulated True PACS service",
        "cluster_name": service,
        "service": service,
        "replica": replica,
        "address": address,
        "capabilities": {"authentication_failure_close": True},
    }


# ---------------------------------------------------------------- the server's state machine


class ServerHandshake:
    """The server side of the connection handshake, as a pure state machine.

    Feed it bytes from the client with :meth:`receive`; it returns the bytes to send back
    and sets :attr:`closed` when the connection must be closed after sending them.
    Sequence: header -> Start; Start-Ok -> Tune; Tune-Ok; Open -> Open-Ok;
    Channel.Open -> Channel.Open-Ok; Channel.Close -> Close-Ok; Connection.Close -> Close-Ok.
    Heartbeats are accepted and ignored; anything else closes with 540 NOT_IMPLEMENTED.
    """

    def __init__(self, properties: Mapping[str, Any], frame_max: int = DEFAULT_FRAME_MAX):
        self.properties = dict(properties)
        self.frame_max = frame_max
        self.buf = bytearray()
        self.header_done = False
        self.closed = False
        self.closing = False  # we sent Connection.Close and wait for Close-Ok
        self.state = "header"  # header, start-ok, tune-ok, open, open-done, closed
        self.vhost: str | None = None
        self.client_properties: dict[str, Any] = {}

    def receive(self, data: bytes) -> bytes:
        if self.closed:
            return b""
        self.buf += data
        out = bytearray()
        if not self.header_done:
            if len(self.buf) < len(PROTOCOL_HEADER):
                # A mismatch visible before 8 octets is already a wrong header.
                if not PROTOCOL_HEADER.startswith(bytes(self.buf)):
                    return self._bad_header()
                return b""
            if bytes(self.buf[:8]) != PROTOCOL_HEADER:
                return self._bad_header()
            del self.buf[:8]
            self.header_done = True
            self.state = "start-ok"
            out += connection_start(self.properties)
        while not self.closed:
            try:
                parsed = parse_frame(bytes(self.buf), self.frame_max)
            except AmqpError as e:
                out += self._close(FRAME_ERROR, f"FRAME_ERROR - {e}"[:255])
                self.closed = True
                break
            if parsed is None:
                break
            f, used = parsed
            del self.buf[:used]
            out += self._on_frame(f)
        return bytes(out)

    def _bad_header(self) -> bytes:
        self.closed = True
        self.state = "closed"
        return PROTOCOL_HEADER

    def _close(self, code: int, text: str, failing: tuple[int, int] = (0, 0)) -> bytes:
        self.closing = True
        return connection_close(code, text, failing)

    def _on_frame(self, f: Frame) -> bytes:
        if f.type == FRAME_HEARTBEAT:
            return b""
        if f.type != FRAME_METHOD:
            if self.closing:
                return b""
            self.closed = True
            return self._close(NOT_IMPLEMENTED, "NOT_IMPLEMENTED - content frames")
        try:
            cm, args = f.method()
        except AmqpError as e:
            self.closed = True
            return self._close(FRAME_ERROR, f"FRAME_ERROR - {e}"[:255])
        if cm == CONNECTION_CLOSE:
            self.closed = True
            self.state = "closed"
            return connection_close_ok()
        if cm == CONNECTION_CLOSE_OK:
            self.closed = True
            self.state = "closed"
            return b""
        if self.closing:
            return b""  # after Connection.Close, discard everything but Close/Close-Ok
        if cm == CONNECTION_START_OK and self.state == "start-ok":
            try:
                self.client_properties = decode_connection_start_ok(args).client_properties
            except AmqpError:
                self.client_properties = {}
            self.state = "tune-ok"
            return connection_tune(frame_max=self.frame_max)
        if cm == CONNECTION_TUNE_OK and self.state == "tune-ok":
            self.state = "open"
            return b""
        if cm == CONNECTION_OPEN and self.state == "open":
            try:
                self.vhost = decode_connection_open(args)
            except AmqpError:
                self.vhost = None
            self.state = "open-done"
            return connection_open_ok()
        if cm == CHANNEL_OPEN and self.state == "open-done" and f.channel != 0:
            return channel_open_ok(f.channel)
        if cm == CHANNEL_CLOSE and self.state == "open-done":
            return channel_close_ok(f.channel)
        if cm == CHANNEL_CLOSE_OK:
            return b""
        return self._close(NOT_IMPLEMENTED, "NOT_IMPLEMENTED - pacslb demo", cm)
