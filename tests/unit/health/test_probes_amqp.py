"""The AMQP 0-9-1 frame codec and handshake, in memory (no sockets); also fed one byte at a time."""

from __future__ import annotations

import struct

import pytest

from pacslb.health import amqp
from pacslb.health.base import Result

SERVER_PROPS = {"product": "RabbitMQ", "version": "3.10.8", "capabilities": {"publisher_confirms": True}}


def server_start(mechanisms: str = "AMQPLAIN PLAIN") -> bytes:
    args = bytes([0, 9]) + amqp.encode_table(SERVER_PROPS) + amqp.longstr(mechanisms) + amqp.longstr("en_US")
    return amqp.encode_method(amqp.START, args)


TUNE = amqp.encode_method(amqp.TUNE, struct.pack(">HIH", 2047, 131072, 60))
OPEN_OK = amqp.encode_method(amqp.OPEN_OK, amqp.shortstr(""))
CLOSE_OK = amqp.encode_method(amqp.CLOSE_OK, b"")


def server_close(code: int, text: str) -> bytes:
    return amqp.encode_method(amqp.CLOSE, struct.pack(">H", code) + amqp.shortstr(text) + struct.pack(">HH", 10, 11))


# (frame type, channel, payload) <-> bytes on the wire
FRAMES = [
    ((1, 0, b"\x00\x0a\x00\x33"), b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x33\xce"),
    ((8, 0, b""), b"\x08\x00\x00\x00\x00\x00\x00\xce"),
    ((3, 5, b"abc"), b"\x03\x00\x05\x00\x00\x00\x03abc\xce"),
]


@pytest.mark.parametrize("fields, wire", FRAMES)
def test_frames_encode_and_decode_byte_for_byte(fields, wire):
    assert amqp.encode_frame(*fields) == wire
    assert amqp.decode_frames(wire + b"\x01\x00") == ([amqp.Frame(*fields)], b"\x01\x00")
    for cut in range(len(wire)):  # a partial frame waits for more
        assert amqp.decode_frames(wire[:cut]) == ([], wire[:cut])


def test_a_bad_frame_end_is_a_frame_error():
    with pytest.raises(amqp.FrameError, match="frame end 0x00"):
        amqp.decode_frames(b"\x01\x00\x00\x00\x00\x00\x00\x00")


def test_tables_round_trip_and_start_decodes():
    table = {"a": "text", "b": True, "c": 7, "d": {"e": False}}
    assert amqp._Reader(amqp.encode_table(table)).table() == table
    start = amqp.decode_start(amqp.decode_frames(server_start())[0][0].payload[4:])
    assert start.version == (0, 9) and start.mechanisms == ("AMQPLAIN", "PLAIN") and start.product == "RabbitMQ 3.10.8"


def test_start_ok_carries_plain_credentials_and_the_close_capability():
    frame = amqp.decode_frames(amqp.start_ok("guest", "secret"))[0][0]
    assert amqp.method_of(frame) == amqp.START_OK
    r = amqp._Reader(frame.payload[4:])
    props = r.table()
    assert props["capabilities"] == {"authentication_failure_close": True}
    assert (r.shortstr(), r.longstr(), r.shortstr()) == ("PLAIN", b"\x00guest\x00secret", "en_US")


def _run(handshake: amqp.Handshake, server: list[bytes], one_byte: bool = False) -> tuple[list[tuple[int, int]], Result | None]:
    """Feed the server's bytes; the methods the client sent and the verdict."""
    assert handshake.start() == b"AMQP\x00\x00\x09\x01"
    sent: list[tuple[int, int]] = []
    verdict = None
    for chunk in server:
        pieces = [chunk[i : i + 1] for i in range(len(chunk))] if one_byte else [chunk]
        for piece in pieces:
            out, verdict = handshake.feed(piece)
            sent += [amqp.method_of(f) for f in amqp.decode_frames(out)[0]]
            if verdict:
                return sent, verdict
    return sent, verdict


@pytest.mark.parametrize("one_byte", [False, True])
def test_start_alone_is_up(one_byte):
    sent, verdict = _run(amqp.Handshake(), [server_start()], one_byte)
    assert sent == [] and verdict == Result(True, "AMQP 0-9-1 Connection.Start from RabbitMQ 3.10.8")


@pytest.mark.parametrize("one_byte", [False, True])
def test_a_whole_login(one_byte):
    h = amqp.Handshake("guest", "guest", "/pacs")
    sent, verdict = _run(h, [server_start(), TUNE, OPEN_OK, CLOSE_OK], one_byte)
    assert sent == [amqp.START_OK, amqp.TUNE_OK, amqp.OPEN, amqp.CLOSE]
    assert verdict == Result(True, "AMQP login to vhost '/pacs' on RabbitMQ 3.10.8")


def test_a_refused_login_and_a_missing_vhost_are_down_with_the_servers_words():
    _, verdict = _run(amqp.Handshake("guest", "bad"), [server_start(), server_close(403, "ACCESS_REFUSED - Login was refused")])
    assert verdict == Result(False, "the server closed the connection during tune: 403 ACCESS_REFUSED - Login was refused")
    _, verdict = _run(
        amqp.Handshake("guest", "guest", "/x"), [server_start(), TUNE, server_close(530, "NOT_ALLOWED - vhost /x not found")]
    )
    assert verdict is not None and not verdict.up and "during open: 530 NOT_ALLOWED" in verdict.reason


def test_wrong_protocols_and_mechanisms_are_down():
    assert amqp.Handshake().feed(b"AMQP\x00\x01\x00\x00")[1] == Result(False, "the server speaks AMQP 1.0.0, not 0-9-1")
    assert not amqp.Handshake().feed(b"AMQP\x00")[1]  # waits for the rest of the header
    verdict = amqp.Handshake().feed(b"HTTP/1.1 400 Bad Request\r\n\r\n")[1]
    assert verdict is not None and verdict.reason.startswith("not AMQP 0-9-1 (frame ")
    verdict = amqp.Handshake("u", "p").feed(server_start("EXTERNAL"))[1]
    assert verdict == Result(False, "the server offers EXTERNAL, not PLAIN")
    verdict = amqp.Handshake().feed(TUNE)[1]
    assert verdict == Result(False, "unexpected AMQP method 10.30 during greeting")
