"""Request body limits of every HTTP server of the appliance: size, and the nesting of JSON (docs/limits.md).

ASGI middleware, `JsonBodyLimit`, used by the controller's socket, the HA peer link and (inside the
management API's own `BodyLimit`, api/limits.py) the management API:

- a body over `max_bytes` is answered 413 (a declared Content-Length before a byte is read; a chunked
  body as soon as it passes the bound), naming the limit;
- a JSON body nested deeper than `max_depth` is answered 422 before any route parses it. Python's json
  parser recurses: a body of 5,000 nested brackets raised RecursionError inside the framework (a 400 that
  named nothing). The body is scanned, not parsed: strings are blanked out, then brackets counted.

The configuration inside a body then gets its own check, with the path of the field (model/limits.py).

After a 413 the rest of the body is read and dropped (at most LINGER_BYTES, for at most LINGER_SECONDS) before
the connection closes, a "lingering close" as nginx and Apache do: a socket closed with unread bytes in it
makes the kernel send a reset, and over TLS the reset can cut the 413 before the client has read it (a CI
run lost a 413 so). Beyond those bounds the connection is closed anyway.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Awaitable, Callable

from .model.limits import MAX_CONFIG_BYTES, MAX_DEPTH, MiB

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# A request wraps a configuration in at most two levels ({"config": ...}, a list of changes): allowed on top.
MAX_BODY_DEPTH = MAX_DEPTH + 2
# The controller's socket: `pacslb apply` sends the file's text and the same configuration as JSON.
CONTROLLER_BODY_LIMIT = 3 * MAX_CONFIG_BYTES
# The HA peer link: the primary pushes one configuration as JSON.
PEER_BODY_LIMIT = MAX_CONFIG_BYTES + MiB
# How much of a refused body is drained, and for how long, before the connection closes anyway: as much as
# the largest body any server here takes (a backup upload, api/limits.py RESTORE_LIMIT).
LINGER_BYTES = 64 * MiB
LINGER_SECONDS = 5.0

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # the unrolled loop: linear, no backtracking
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes, stop_at: int = MAX_BODY_DEPTH) -> int:
    """The nesting depth of a JSON text (brackets inside strings do not count), counted up to `stop_at` + 1."""
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_at:
                    break
        else:
            depth -= 1
    return deepest


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name.lower() == wanted:
            return value
    return None


class JsonBodyLimit:
    """The middleware: `app.add_middleware(JsonBodyLimit, max_bytes=..., max_depth=...)`."""

    def __init__(self, app: Any, max_bytes: int, max_depth: int = MAX_BODY_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _answer(send, 413, "error", self._too_large(), unread_body(scope, receive))
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                unread = unread_body(scope, receive) if message.get("more_body", False) else None
                await _answer(send, 413, "error", self._too_large(), unread)
                return
            if not message.get("more_body", False):
                break
        content_type = (_header(scope, b"content-type") or b"").lower()
        if b"json" in content_type:
            body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
            too_deep = json_depth(body, self.max_depth) > self.max_depth
            del body  # a copy of the whole body (1.5 MB for 1,000 services): not kept for as long as the request runs
            if too_deep:
                message = (f"the request body nests deeper than {self.max_depth} levels of objects and arrays (a "
                           f"configuration is at most {MAX_DEPTH} deep): nothing was read or changed (docs/limits.md)")  # fmt: skip
                await _answer(send, 422, "invalid", message)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return (f"the request body is larger than {self.max_bytes // 1024} KiB: nothing was read or changed "
                "(docs/limits.md)")  # fmt: skip


async def _answer(send: Send, status: int, outcome: str, message: str, unread: Unread | None = None) -> None:
    problems = [{"path": "", "message": message, "severity": "error"}] if status == 422 else []
    body = json.dumps({"outcome": outcome, "message": message, "problems": problems}).encode()
    if status == 413:
        await refuse_body(send, body, unread)
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Unread:
    """The rest of a refused request body, still to be read from `receive`."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive

    async def drain(self) -> None:
        """Read and drop it until it ends, at most LINGER_BYTES and for at most LINGER_SECONDS."""
        drained = 0
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                while drained <= LINGER_BYTES:
                    message = await self.receive()
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        return
                    drained += len(message.get("body", b""))
        except TimeoutError:
            return


def unread_body(scope: Scope, receive: Receive) -> Unread | None:
    """The body still to come of a request being refused; None when the client sends none before leave to
    ("Expect: 100-continue", never granted once the answer has started)."""
    if (_header(scope, b"expect") or b"").lower() == b"100-continue":
        return None
    return Unread(receive)


async def refuse_body(send: Send, body: bytes, unread: Unread | None) -> None:
    """Answer 413 with the JSON `body` and close the connection, draining `unread` first (the module's docstring)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": unread is not None})
    if unread is not None:
        await unread.drain()
        await send({"type": "http.response.body", "body": b""})  # the answer ends: the server closes now


__all__ = ["CONTROLLER_BODY_LIMIT", "MAX_BODY_DEPTH", "PEER_BODY_LIMIT", "JsonBodyLimit", "json_depth"]
