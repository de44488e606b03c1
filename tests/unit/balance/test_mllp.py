"""balance/mllp.py on loopback: messages answered in order on one connection, the size and connection limits."""

from __future__ import annotations

import asyncio

from pacslb.balance import mllp
from pacslb.balance.hl7msg import MAX_MESSAGE_BYTES, ack
from pacslb.health.hl7 import frame, unframe
from support.hl7feed import msa


async def _answers(reader: asyncio.StreamReader, count: int = 1) -> list[str]:
    """The next `count` framed answers (one read may bring several)."""
    buffer, out = b"", []
    while len(out) < count:
        message, buffer = unframe(buffer)
        if message is not None:
            out.append(message.decode())
            continue
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        assert chunk, "closed before an answer"
        buffer += chunk
    return out


async def _answer(reader: asyncio.StreamReader) -> str:
    return (await _answers(reader))[0]


async def test_messages_in_one_write_are_answered_in_order():
    seen = []

    def handler(raw: bytes) -> str:
        seen.append(raw)
        return ack(None, raw.decode(), "AA")

    server = await mllp.serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\n" + frame("one") + frame("two"))  # a stray newline between frames is dropped
        await writer.drain()
        first, second = await _answers(reader, 2)
        assert msa(first)[1] == "one" and msa(second)[1] == "two"
        assert seen == [b"one", b"two"]
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_a_frame_larger_than_the_limit_gets_ar_and_the_connection_closes():
    server = await mllp.serve(lambda raw: ack(None, "x", "AA"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x0b" + b"x" * (MAX_MESSAGE_BYTES + 10))
        await writer.drain()
        code, _, text = msa(await _answer(reader))
        assert code == "AR" and "1 MiB" in text
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the service
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_connections_past_the_limit_are_refused_with_ar(monkeypatch):
    monkeypatch.setattr(mllp, "MAX_CONNECTIONS", 1)
    server = await mllp.serve(lambda raw: ack(None, "x", "AA"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        first_reader, first = await asyncio.open_connection("127.0.0.1", port)
        first.write(frame("hello"))
        await first.drain()
        assert msa(await _answer(first_reader))[0] == "AA"  # the first connection is being served
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        code, _, text = msa(await _answer(reader))
        assert code == "AR" and "more than 1 connections" in text
        first.close()
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
