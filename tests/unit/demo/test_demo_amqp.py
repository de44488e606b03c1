"""AMQP 0-9-1 encoding, byte by byte, and the server handshake state machine."""

import struct
from decimal import Decimal

import pytest

from pacslb.demo import amqp


def test_protocol_header():
    assert amqp.PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"


def test_shortstr_and_longstr():
    assert amqp.shortstr("abc") == b"\x03abc"
    assert amqp.shortstr("") == b"\x00"
    assert amqp.longstr("en_US") == b"\x00\x00\x00\x05en_US"
    assert amqp.longstr(b"") == b"\x00\x00\x00\x00"
    with pytest.raises(amqp.AmqpError):
        amqp.shortstr("x" * 256)


@pytest.mark.parametrize(
    "value, encoded",
    [
        (True, b"t\x01"),
        (False, b"t\x00"),
        (5, b"I\x00\x00\x00\x05"),
        (-1, b"I\xff\xff\xff\xff"),
        (2**40, b"l\x00\x00\x01\x00\x00\x00\x00\x00"),
        ("ab", b"S\x00\x00\x00\x02ab"),
        (b"\x01\x02", b"x\x00\x00\x00\x02\x01\x02"),
        (None, b"V"),
        ({}, b"F\x00\x00\x00\x00"),
        ({"a": True}, b"F\x00\x00\x00\x04\x01at\x01"),
        ([1, "a"], b"A\x00\x00\x00\x0bI\x00\x00\x00\x01S\x00\x00\x00\x01a"),
        (Decimal("1.5"), b"D\x01\x00\x00\x00\x0f"),
        (1.0, b"d" + struct.pack(">d", 1.0)),
    ],
)
def test_field_values(value, encoded):
    assert amqp.field_value(value) == encoded


def test_field_table_bytes_and_order():
    t = amqp.field_table({"product": "x", "n": 1})
    assert t == (
        b"\x00\x00\x00\x15"  # 21 octets follow, entries in insertion order
        b"\x07product"
        b"S\x00\x00\x00\x01x"
        b"\x01n"
        b"I\x00\x00\x00\x01"
    )
    assert amqp.field_table({}) == b"\x00\x00\x00\x00"


def test_field_table_roundtrip():
    table = {
        "product": "pacslb-demo",
        "capabilities": {"basic.nack": True, "n": 7},
        "big": 2**40,
        "neg": -3,
        "none": None,
        "raw": b"\x00\xff",
        "list": [1, "two", False],
        "dec": Decimal("12.34"),
    }
    assert amqp.decode_field_table(amqp.field_table(table)) == table


def test_decode_rabbitmq_types():
    # short-short, short (RabbitMQ 's'), timestamp, unsigned long
    body = (
        b"\x01a" + b"b\xff"
        + b"\x01b" + b"s\xff\xfe"
        + b"\x01c" + b"T\x00\x00\x00\x00\x00\x00\x00\x2a"
        + b"\x01d" + b"i\xff\xff\xff\xff"
    )  # fmt: skip
    t = amqp.decode_field_table(struct.pack(">I", len(body)) + body)
    assert t == {"a": -1, "b": -2, "c": 42, "d": 2**32 - 1}


def test_connection_start_exact_bytes():
    frame = amqp.connection_start({"product": "pacslb-demo"})
    table = b"\x07product" + b"S\x00\x00\x00\x0bpacslb-demo"
    assert len(table) == 24
    payload = (
        b"\x00\x0a\x00\x0a"  # class 10 (connection), method 10 (start)
        b"\x00\x09"  # version-major 0, version-minor 9
        + b"\x00\x00\x00\x18" + table  # server-properties
        + b"\x00\x00\x00\x0ePLAIN AMQPLAIN"  # mechanisms
        + b"\x00\x00\x00\x05en_US"  # locales
    )  # fmt: skip
    assert len(payload) == 61
    assert frame == b"\x01" + b"\x00\x00" + b"\x00\x00\x00\x3d" + payload + b"\xce"


def test_connection_start_decodes_with_replica():
    props = amqp.server_properties("WFC_RMQAMQP", "r2", "127.0.10.2:8081", "0.1.0")
    frame = amqp.connection_start(props)
    assert frame[0] == 1 and frame[1:3] == b"\x00\x00" and frame[-1] == 0xCE
    parsed, used = amqp.parse_frame(frame)
    assert used == len(frame)
    (cm, args) = parsed.method()
    assert cm == amqp.CONNECTION_START
    start = amqp.decode_connection_start(args)
    assert (start.version_major, start.version_minor) == (0, 9)
    assert start.server_properties["product"] == "pacslb-demo"
    assert start.server_properties["replica"] == "r2"
    assert start.server_properties["service"] == "WFC_RMQAMQP"
    assert start.mechanisms == "PLAIN AMQPLAIN"
    assert start.locales == "en_US"


def test_other_method_frames_exact_bytes():
    assert amqp.connection_tune(2047, 131072, 0) == (
        b"\x01\x00\x00\x00\x00\x00\x0c\x00\x0a\x00\x1e\x07\xff\x00\x02\x00\x00\x00\x00\xce"
    )
    assert amqp.connection_open_ok() == b"\x01\x00\x00\x00\x00\x00\x05\x00\x0a\x00\x29\x00\xce"
    assert amqp.connection_close_ok() == b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x33\xce"
    assert amqp.channel_open_ok(1) == (b"\x01\x00\x01\x00\x00\x00\x08\x00\x14\x00\x0b\x00\x00\x00\x00\xce")
    assert amqp.connection_close(320, "bye", (0, 0)) == (
        b"\x01\x00\x00\x00\x00\x00\x0e\x00\x0a\x00\x32\x01\x40\x03bye\x00\x00\x00\x00\xce"
    )
    assert amqp.heartbeat_frame() == b"\x08\x00\x00\x00\x00\x00\x00\xce"


def test_parse_frame_incomplete_and_errors():
    f = amqp.connection_close_ok()
    for i in range(len(f)):
        assert amqp.parse_frame(f[:i]) is None
    parsed, used = amqp.parse_frame(f + b"extra")
    assert used == len(f) and parsed.channel == 0 and parsed.type == amqp.FRAME_METHOD
    with pytest.raises(amqp.AmqpError, match="frame-end"):
        amqp.parse_frame(f[:-1] + b"\x00")
    with pytest.raises(amqp.AmqpError, match="frame-max"):
        amqp.parse_frame(b"\x01\x00\x00\x00\x10\x00\x00", frame_max=4096)


def _frames(data: bytes) -> list[amqp.Frame]:
    out = []
    while data:
        parsed = amqp.parse_frame(data)
        assert parsed is not None, data
        f, used = parsed
        out.append(f)
        data = data[used:]
    return out


def _methods(data: bytes) -> list[tuple[int, tuple[int, int]]]:
    return [(f.channel, f.method()[0]) for f in _frames(data)]


def test_handshake_full_sequence():
    hs = amqp.ServerHandshake({"product": "pacslb-demo", "replica": "r1"})
    out = hs.receive(amqp.PROTOCOL_HEADER)
    assert _methods(out) == [(0, amqp.CONNECTION_START)]
    out = hs.receive(amqp.connection_start_ok({"product": "test"}))
    assert _methods(out) == [(0, amqp.CONNECTION_TUNE)]
    assert hs.client_properties == {"product": "test"}
    assert amqp.decode_connection_tune(_frames(out)[0].method()[1]) == (2047, 131072, 0)
    # Tune-Ok and Open in one segment; Open-Ok comes back
    out = hs.receive(amqp.connection_tune_ok() + amqp.connection_open("/pacs"))
    assert _methods(out) == [(0, amqp.CONNECTION_OPEN_OK)]
    assert hs.vhost == "/pacs"
    out = hs.receive(amqp.heartbeat_frame())
    assert out == b""
    out = hs.receive(amqp.method_frame(1, amqp.CHANNEL_OPEN, amqp.shortstr("")))
    assert _methods(out) == [(1, amqp.CHANNEL_OPEN_OK)]
    out = hs.receive(amqp.connection_close(200, "bye"))
    assert _methods(out) == [(0, amqp.CONNECTION_CLOSE_OK)]
    assert hs.closed


def test_handshake_header_byte_by_byte():
    hs = amqp.ServerHandshake({})
    for b in amqp.PROTOCOL_HEADER[:-1]:
        assert hs.receive(bytes([b])) == b""
    out = hs.receive(amqp.PROTOCOL_HEADER[-1:])
    assert _methods(out) == [(0, amqp.CONNECTION_START)]
    assert not hs.closed


@pytest.mark.parametrize(
    "header",
    [b"AMQP\x00\x00\x09\x00", b"AMQP\x01\x01\x00\x09", b"AMQP\x00\x00\x08\x00", b"GET / HTTP/1.1\r\n"],
)
def test_handshake_wrong_header_answers_header_and_closes(header):
    hs = amqp.ServerHandshake({})
    assert hs.receive(header) == amqp.PROTOCOL_HEADER
    assert hs.closed
    assert hs.receive(b"more") == b""


def test_handshake_wrong_header_detected_early():
    hs = amqp.ServerHandshake({})
    assert hs.receive(b"HT") == amqp.PROTOCOL_HEADER
    assert hs.closed


def test_handshake_bad_frame_end_closes_with_frame_error():
    hs = amqp.ServerHandshake({})
    hs.receive(amqp.PROTOCOL_HEADER)
    bad = amqp.connection_start_ok({})[:-1] + b"\x00"
    out = hs.receive(bad)
    (f,) = _frames(out)
    cm, args = f.method()
    assert cm == amqp.CONNECTION_CLOSE
    assert amqp.decode_connection_close(args)[0] == amqp.FRAME_ERROR
    assert hs.closed


def test_handshake_unknown_method_closes_540_then_waits_for_close_ok():
    hs = amqp.ServerHandshake({})
    hs.receive(amqp.PROTOCOL_HEADER)
    out = hs.receive(amqp.method_frame(0, (60, 40), b""))  # basic.publish on channel 0
    (f,) = _frames(out)
    cm, args = f.method()
    assert cm == amqp.CONNECTION_CLOSE
    code, _text, failing = amqp.decode_connection_close(args)
    assert (code, failing) == (amqp.NOT_IMPLEMENTED, (60, 40))
    assert hs.closing and not hs.closed
    assert hs.receive(amqp.connection_start_ok({})) == b""  # discarded while closing
    assert hs.receive(amqp.connection_close_ok()) == b""
    assert hs.closed
