"""A small asyncio TCP server speaking HAProxy's agent-check protocol.

HAProxy connects, sends the server line's `agent-send` string (if any), and reads one line back:
'up', 'down #reason', '75%', 'drain' ... then the connection closes. The server here owns only the
sockets; what to answer is a function given to it, `answer(request) -> str` (or a coroutine; '' for no answer:
the connection is closed without a word, and HAProxy keeps the server as it was).

Both the appliance's health-check service (on 127.0.0.1, `settings.health.agent_port`) and the
feedback agent on a real server (`pacslb agent`) use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Awaitable, Callable

log = logging.getLogger("pacslb.health")

MAX_REQUEST = 512  # an agent-send string is a short line
READ_TIMEOUT = 2.0  # HAProxy writes its line at once; a silent peer is not waited for long


class AgentServer:
    """Answers HAProxy's agent checks on one address and port with `answer(request line)`."""

    def __init__(self, answer: Callable[[str], str | Awaitable[str]], host: str, port: int, reads_request: bool = True) -> None:
        self.answer = answer
        # HAProxy sends a line only when the server line has agent-send; a feedback agent answers at once
        self.reads_request = reads_request
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen (raises OSError when the port cannot be had, e.g. EADDRINUSE)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def bound_port(self) -> int | None:
        """The port really bound (tests pass port 0)."""
        if self._server is None or not self._server.sockets:
            return None
        return self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = b""
            if self.reads_request:
                # HAProxy writes its agent-send string in one piece, with or without a newline: one
                # read takes it (the appliance's strings are short words without one)
                try:
                    data = await asyncio.wait_for(reader.read(MAX_REQUEST), READ_TIMEOUT)
                except asyncio.TimeoutError:
                    data = b""
            request = data[:MAX_REQUEST].decode("ascii", errors="replace").strip()
            try:
                reply = self.answer(request)
                if inspect.isawaitable(reply):
                    reply = await reply
            except Exception:
                log.exception("answering the agent check %r failed", request)
                reply = ""
            if reply:
                writer.write(reply.encode("ascii", errors="replace") + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
