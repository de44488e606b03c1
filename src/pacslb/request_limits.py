"""Request body limits of every HTTP server of the appliance: size, and the nesting of JSON (docs/limits.md).

ASGI middleware, `JsonBodyLimit`, used by the controller's socket, the HA peer link and (inside the
management API's own `BodyLimit`, api/limits.py) the management API:

- a body over `max_bytes` is answered 413 (a declared Content-Length before a byte is read; a chunked
  body as soon as it passes the bound), naming the limit;
- a JSON body nested deeper than `max_depth` is answered 422 before any route parses it. Python's json
  parser recurses: a body of 5,000 nested brackets raised RecursionError inside the framework (a 400 that
  named nothing). The body is scanned, not parsed: strings are blanked out, then brackets counted.

The configuration inside a body then gets its own check, with the path of the field (model/limits.py).
"""

from __future__ import annotations

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
            await _answer(send, 413, "error", self._too_large())
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
                await _answer(send, 413, "error", self._too_large())
                return
            if not message.get("more_body", False):
                break
        content_type = (_header(scope, b"content-type") or b"").lower()
        if b"json" in content_type:
            body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
            if json_depth(body, self.max_depth) > self.max_depth:
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


async def _answer(send: Send, status: int, outcome: str, message: str) -> None:
    problems = [{"path": "", "message": message, "severity": "error"}] if status == 422 else []
    body = json.dumps({"outcome": outcome, "message": message, "problems": problems}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["CONTROLLER_BODY_LIMIT", "MAX_BODY_DEPTH", "PEER_BODY_LIMIT", "JsonBodyLimit", "json_depth"]
