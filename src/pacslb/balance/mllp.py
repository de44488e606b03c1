"""The MLLP listener of the balance service: frames in, one handler call per message, its ACK framed back.

The framing is health/hl7.py's (`frame`, `unframe`). Limits: a message larger than MAX_MESSAGE_BYTES gets an AR and
the connection is closed (the rest of the frame cannot be told from junk); at most MAX_CONNECTIONS feeds at once.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from ..health.hl7 import frame, unframe
from .hl7msg import MAX_MESSAGE_BYTES, ack

MAX_CONNECTIONS = 64


async def serve(handler: Callable[[bytes], str], host: str, port: int) -> asyncio.Server:
    """Start listening; each message is handled in turn on the event loop (so handler calls never overlap)."""
    connections = 0

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            if connections > MAX_CONNECTIONS:
                writer.write(frame(ack(None, "", "AR", f"more than {MAX_CONNECTIONS} connections; try again later")))
                await writer.drain()
                return
            buffer = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buffer += chunk
                while True:
                    message, buffer = unframe(buffer)
                    if message is None:
                        break
                    writer.write(frame(handler(message)))
                    await writer.drain()
                if len(buffer) > MAX_MESSAGE_BYTES + 2:
                    writer.write(frame(ack(None, "", "AR", f"message larger than {MAX_MESSAGE_BYTES} bytes; the limit is 1 MiB")))
                    await writer.drain()
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            connections -= 1
            writer.close()

    return await asyncio.start_server(connection, host, port, limit=MAX_MESSAGE_BYTES)
