"""The `amqp` check: the AMQP 0-9-1 handshake, up to Connection.Start or through a whole login.

The frame codec and the handshake are pure (bytes in, bytes and a verdict out); `AMQPProbe.probe`
owns the socket and the timeout.

    client                          server (RabbitMQ)
    "AMQP" 0 0 9 1            ->
                              <-    Connection.Start        (10,10)  up here without credentials
    Connection.Start-Ok PLAIN ->
                              <-    Connection.Tune         (10,30)  (Connection.Close 403 on a bad login)
    Connection.Tune-Ok        ->
    Connection.Open vhost     ->
                              <-    Connection.Open-Ok      (10,41)  (Connection.Close 530 on a bad vhost)
    Connection.Close          ->
                              <-    Connection.Close-Ok     (10,51)
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

from .base import Result, Target

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_MAX = 131072  # what a client may announce; the server's Tune caps it

START = (10, 10)
START_OK = (10, 11)
TUNE = (10, 30)
TUNE_OK = (10, 31)
OPEN = (10, 40)
OPEN_OK = (10, 41)
CLOSE = (10, 50)
CLOSE_OK = (10, 51)


class FrameError(ValueError):
    """The peer sent bytes that are not AMQP 0-9-1 frames."""


# --- frames ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    type: int
    channel: int
    payload: bytes


def encode_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([FRAME_END])


def decode_frames(buffer: bytes) -> tuple[list[Frame], bytes]:
    """The whole frames at the start of `buffer` and the bytes left over (an incomplete frame)."""
    frames = []
    while len(buffer) >= 7:
        frame_type, channel, size = struct.unpack_from(">BHI", buffer)
        if size > 16 * FRAME_MAX:
            raise FrameError(f"frame of {size} bytes announced")
        if len(buffer) < 8 + size:
            break
        if buffer[7 + size] != FRAME_END:
            raise FrameError(f"frame end 0x{buffer[7 + size]:02x}, expected 0xce")
        frames.append(Frame(frame_type, channel, bytes(buffer[7 : 7 + size])))
        buffer = buffer[8 + size :]
    return frames, buffer


def encode_method(method: tuple[int, int], arguments: bytes, channel: int = 0) -> bytes:
    return encode_frame(FRAME_METHOD, channel, struct.pack(">HH", *method) + arguments)


def method_of(frame: Frame) -> tuple[int, int]:
    if frame.type != FRAME_METHOD or len(frame.payload) < 4:
        raise FrameError(f"expected a method frame, got frame type {frame.type}")
    return struct.unpack_from(">HH", frame.payload)


# --- field types -------------------------------------------------------------------------------


def shortstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > 255:
        raise ValueError("a short string holds at most 255 bytes")
    return bytes([len(raw)]) + raw


def longstr(raw: str | bytes) -> bytes:
    raw = raw.encode() if isinstance(raw, str) else raw
    return struct.pack(">I", len(raw)) + raw


def encode_table(table: dict) -> bytes:
    """A field table of text, booleans, integers and nested tables (all a client needs to send)."""
    body = b""
    for key, value in table.items():
        body += shortstr(key)
        if isinstance(value, bool):
            body += b"t" + bytes([value])
        elif isinstance(value, int):
            body += b"I" + struct.pack(">i", value)
        elif isinstance(value, dict):
            body += b"F" + encode_table(value)
        else:
            body += b"S" + longstr(str(value))
    return struct.pack(">I", len(body)) + body


class _Reader:
    """Reads AMQP field types from a method's arguments."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise FrameError("method arguments end early")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def shortstr(self) -> str:
        return self.take(self.take(1)[0]).decode("utf-8", "replace")

    def longstr(self) -> bytes:
        return self.take(self.unpack(">I")[0])

    def table(self) -> dict:
        data = _Reader(self.longstr())
        table = {}
        while data.at < len(data.data):
            key = data.shortstr()
            table[key] = data.value()
        return table

    _FIXED = {
        b"b": ">b",
        b"B": ">B",
        b"s": ">h",
        b"u": ">H",
        b"I": ">i",
        b"i": ">I",
        b"l": ">q",
        b"T": ">Q",
        b"f": ">f",
        b"d": ">d",
    }

    def value(self):
        kind = self.take(1)
        if kind == b"t":
            return bool(self.take(1)[0])
        if kind in self._FIXED:
            return self.unpack(self._FIXED[kind])[0]
        if kind == b"D":
            scale, value = self.unpack(">BI")
            return value / 10**scale
        if kind == b"S":
            return self.longstr().decode("utf-8", "replace")
        if kind == b"x":
            return self.longstr()
        if kind == b"F":
            return self.table()
        if kind == b"A":
            items = _Reader(self.longstr())
            values = []
            while items.at < len(items.data):
                values.append(items.value())
            return values
        if kind == b"V":
            return None
        raise FrameError(f"unknown field type {kind!r}")


# --- the methods the check uses ----------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    version: tuple[int, int]
    server_properties: dict
    mechanisms: tuple[str, ...]
    locales: tuple[str, ...]

    @property
    def product(self) -> str:
        """'RabbitMQ 3.10.8', or what the server says of itself."""
        props = self.server_properties
        return " ".join(str(props[k]) for k in ("product", "version") if k in props) or "an AMQP server"


def decode_start(arguments: bytes) -> Start:
    r = _Reader(arguments)
    major, minor = r.unpack(">BB")
    props = r.table()
    mechanisms = tuple(r.longstr().decode("utf-8", "replace").split())
    locales = tuple(r.longstr().decode("utf-8", "replace").split())
    return Start((major, minor), props, mechanisms, locales)


def decode_tune(arguments: bytes) -> tuple[int, int, int]:
    """(channel_max, frame_max, heartbeat)."""
    return _Reader(arguments).unpack(">HIH")


def decode_close(arguments: bytes) -> tuple[int, str]:
    """(reply code, reply text) of a Connection.Close."""
    r = _Reader(arguments)
    (code,) = r.unpack(">H")
    return code, r.shortstr()


def start_ok(username: str, password: str) -> bytes:
    properties = {
        "product": "pacslb health check",
        # Without this capability RabbitMQ drops the TCP connection on a bad login instead of saying why.
        "capabilities": {"authentication_failure_close": True},
    }
    response = b"\x00" + username.encode() + b"\x00" + password.encode()
    return encode_method(START_OK, encode_table(properties) + shortstr("PLAIN") + longstr(response) + shortstr("en_US"))


def tune_ok(channel_max: int, frame_max: int) -> bytes:
    # Heartbeat 0: the connection lives for a fraction of a second.
    return encode_method(TUNE_OK, struct.pack(">HIH", channel_max, min(frame_max or FRAME_MAX, FRAME_MAX), 0))


def open_(virtual_host: str) -> bytes:
    return encode_method(OPEN, shortstr(virtual_host) + shortstr("") + b"\x00")


def close(code: int = 200, text: str = "pacslb health check done") -> bytes:
    return encode_method(CLOSE, struct.pack(">H", code) + shortstr(text) + struct.pack(">HH", 0, 0))


def close_ok() -> bytes:
    return encode_method(CLOSE_OK, b"")


# --- the handshake as a state machine ----------------------------------------------------------


@dataclass
class Handshake:
    """Sans-IO: `start()` gives the first bytes; `feed(data)` gives bytes to send and, once decided,
    a Result (None until then). Without a username the verdict comes with Connection.Start."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or a traceback
    virtual_host: str = "/"
    stage: str = "greeting"  # greeting -> tune -> open -> closing -> done
    product: str = "the server"  # from Connection.Start, for the reasons
    _buffer: bytes = field(default=b"", repr=False)
    _verdict: Result | None = field(default=None, repr=False)

    def start(self) -> bytes:
        return PROTOCOL_HEADER

    def feed(self, data: bytes) -> tuple[bytes, Result | None]:
        self._buffer += data
        if self.stage == "greeting" and self._buffer.startswith(b"AMQP"):
            if len(self._buffer) < 8:
                return b"", None
            # A server that does not speak our version answers with its own header and closes.
            got = ".".join(str(b) for b in self._buffer[5:8])
            return b"", self._decide(Result(False, f"the server speaks AMQP {got}, not 0-9-1"))
        try:
            frames, self._buffer = decode_frames(self._buffer)
        except FrameError as exc:
            return b"", self._decide(Result(False, f"not AMQP 0-9-1 ({exc}): {data[:24]!r}"))
        out = b""
        for frame in frames:
            if frame.type == FRAME_HEARTBEAT:
                continue
            try:
                sent, verdict = self._on_method(method_of(frame), frame.payload[4:])
            except FrameError as exc:
                return out, self._decide(Result(False, f"broken AMQP method during {self.stage}: {exc}"))
            out += sent
            if verdict is not None:
                return out, verdict
        return out, None

    def _decide(self, verdict: Result) -> Result:
        self.stage, self._verdict = "done", verdict
        return verdict

    def _on_method(self, method: tuple[int, int], arguments: bytes) -> tuple[bytes, Result | None]:
        if method == CLOSE:
            code, text = decode_close(arguments)
            return close_ok(), self._decide(Result(False, f"the server closed the connection during {self.stage}: {code} {text}"))
        if self.stage == "greeting" and method == START:
            start = decode_start(arguments)
            if self.username is None:
                # Before Start-Ok the protocol has no polite goodbye: the probe closes the socket.
                return b"", self._decide(Result(True, f"AMQP 0-9-1 Connection.Start from {start.product}"))
            if "PLAIN" not in start.mechanisms:
                return b"", self._decide(Result(False, f"the server offers {' '.join(start.mechanisms)}, not PLAIN"))
            self.stage = "tune"
            self.product = start.product
            return start_ok(self.username, self.password or ""), None
        if self.stage == "tune" and method == TUNE:
            channel_max, frame_max, _ = decode_tune(arguments)
            self.stage = "open"
            return tune_ok(channel_max, frame_max) + open_(self.virtual_host), None
        if self.stage == "open" and method == OPEN_OK:
            self.stage = "closing"
            return close(), None
        if self.stage == "closing" and method == CLOSE_OK:
            return b"", self._decide(Result(True, f"AMQP login to vhost {self.virtual_host!r} on {self.product}"))
        return b"", self._decide(Result(False, f"unexpected AMQP method {method[0]}.{method[1]} during {self.stage}"))


_WAITING_FOR = {
    "greeting": "AMQP greeting (Connection.Start)",
    "tune": "answer to the login (Connection.Tune)",
    "open": "Connection.Open-Ok",
    "closing": "Connection.Close-Ok",
}


@dataclass
class AMQPProbe:
    """Connection.Start, or a whole login to `virtual_host` when a username is given, within `timeout`."""

    timeout: float
    virtual_host: str = "/"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or a traceback

    async def probe(self, target: Target) -> Result:
        handshake = Handshake(self.username, self.password, self.virtual_host)
        connected = False
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(target.address, target.port)
                connected = True
                try:
                    writer.write(handshake.start())
                    while True:
                        await writer.drain()
                        data = await reader.read(65536)
                        if not data:
                            return Result(False, f"connection closed while waiting for the {_WAITING_FOR[handshake.stage]}")
                        out, verdict = handshake.feed(data)
                        if out:
                            writer.write(out)
                        if verdict is not None:
                            if out:
                                await writer.drain()
                            return verdict
                finally:
                    writer.close()
        except TimeoutError:
            if not connected:
                return Result(False, f"no answer to connect within {self.timeout:g}s")
            if handshake.stage == "greeting":
                return Result(False, f"TCP accepted but no AMQP greeting within {self.timeout:g}s")
            return Result(False, f"no {_WAITING_FOR.get(handshake.stage, 'answer')} within {self.timeout:g}s")
        except OSError as exc:
            what = "connection lost" if connected else "connect failed"
            return Result(False, f"{what}: {exc.strerror or exc}")
