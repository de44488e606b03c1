"""Request body limits of the management app: ASGI middleware that answers 413 before any route parses a body.

A body is counted as it arrives: a declared `Content-Length` over the limit is refused before a byte is
read, and a body sent without one (chunked) is cut as soon as it passes the limit; nothing is buffered
here. The limits (documented in docs/api.md):

  - LOGIN_LIMIT (64 KiB) for the logins (POST /api/v1/login and the WebUI's /login), and for every request
    that carries no credentials at all (no cookie, no Authorization header): such a request can only
    be refused, so its body is never worth more;
  - WRITE_LIMIT (8 MiB) for everything else: whole configurations (PUT /api/v1/config: 1,000 services
    of 10 real servers are about 3 MB of JSON), certificates, WebUI forms;
  - RESTORE_LIMIT (64 MiB) for an authenticated upload of a backup (POST /api/v1/restore, the WebUI's
    /backup/restore); a larger backup is restored with `pacslb restore` on the appliance.

After a 413 the rest of the body is drained before the connection closes, as in request_limits.py.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from ..request_limits import Unread, refuse_body, unread_body
from . import API_V1

KiB = 1024
LOGIN_LIMIT = 64 * KiB
WRITE_LIMIT = 8 * 1024 * KiB
LOGIN_PATHS = frozenset({f"{API_V1}/login", "/login"})
RESTORE_LIMIT = 64 * 1024 * KiB
RESTORE_PATHS = frozenset({f"{API_V1}/restore", "/backup/restore"})

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised into the app from `receive` once the body passes the limit (the middleware answers 413)."""


def limit_for(scope: Scope) -> int:
    """The body limit of a request: LOGIN_LIMIT for logins and requests without credentials, else WRITE_LIMIT
    (RESTORE_LIMIT for the upload of a backup)."""
    if scope.get("path") in LOGIN_PATHS:
        return LOGIN_LIMIT
    authenticated = RESTORE_LIMIT if scope.get("path") in RESTORE_PATHS else WRITE_LIMIT
    names = {name.lower() for name, _ in scope.get("headers", [])}
    if b"authorization" in names:
        return authenticated
    for name, value in scope.get("headers", []):
        if name.lower() == b"cookie" and b"pacslb_session=" in value:
            return authenticated
    return LOGIN_LIMIT


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """The middleware (`app.add_middleware(BodyLimit)`); `limit` chooses a request's limit (default `limit_for`)."""

    def __init__(self, app: Any, limit: Callable[[Scope], int] = limit_for) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, unread_body(scope, receive), limit)
            return
        received = 0
        exceeded = False
        started = False
        body_ended = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded, body_ended
            if exceeded:
                raise BodyTooLarge()
            message = await receive()
            body_ended = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app made of a cut body (400, 422...) gives way to the 413 below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _too_large(send, None if body_ended else Unread(receive), limit)


async def _too_large(send: Send, unread: Unread | None, limit: int) -> None:
    body = json.dumps({"outcome": "error", "message": f"the request body is larger than {limit // KiB} KiB: "
                       "nothing was read or changed (docs/api.md, request limits)"}).encode()  # fmt: skip
    await refuse_body(send, body, unread)


__all__ = ["LOGIN_LIMIT", "WRITE_LIMIT", "BodyLimit", "BodyTooLarge", "limit_for"]
