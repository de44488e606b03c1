"""Configuration writes of the management API: optimistic concurrency, one edit of the model, the apply path.

Every write names the revision it was based on (`base_revision` in the body, or `If-Match: <id>`). The
change front door (change/service.py) checks it under the change gate: when another change landed since,
the write gets 409 with the current revision and nothing changes. Else the edit is made on a JSON copy of
the running configuration, under the same gate, and goes the way of every change (validate -> plan ->
revision -> engines), exactly like `pacslb apply`. The front door records every outcome in the audit log.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from ..change.result import Outcome
from ..change.service import EditError, Origin
from .auth import Principal, client_ip

_REVISION_ID = re.compile(r"[0-9]{1,16}")  # revision ids stay below 2**53 (routes_observe.MAX_ID)
_OUTCOME_OF = {404: Outcome.NOT_FOUND, 409: Outcome.CONFLICT, 422: Outcome.INVALID, 400: Outcome.BAD_REQUEST}


class ApiError(EditError):
    """An answer other than 200: status, one-sentence message, and extra fields for the body. Raised by an
    edit (inside the change gate), the front door answers it as the change's outcome."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status = status
        super().__init__(_OUTCOME_OF.get(status, Outcome.BAD_REQUEST), message, **extra)

    def response(self) -> JSONResponse:
        return JSONResponse({"outcome": _OUTCOMES.get(self.status, "error"), "message": self.message, **self.extra},
                            status_code=self.status)  # fmt: skip


_OUTCOMES = {404: "not-found", 409: "conflict", 422: "invalid", 428: "precondition-required", 400: "bad-request"}


def if_match_revision(request: Request) -> int | None:
    """The revision id of an `If-Match` header ("12", "\"12\"" or W/"12"); None without one."""
    value = request.headers.get("if-match")
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not _REVISION_ID.fullmatch(text):  # not str.isdigit: '²' is a digit to it, and int() refuses it
        raise ApiError(400, f'If-Match must name a revision id (a number such as "12"), not {value!r}')
    return int(text)


def base_revision_of(request: Request, body_value: int | None, required: bool = True) -> int | None:
    header = if_match_revision(request)
    if header is not None and body_value is not None and header != body_value:
        raise ApiError(400, f"If-Match ({header}) and base_revision ({body_value}) disagree: send one of them")
    base = body_value if body_value is not None else header
    if base is None and required:
        raise ApiError(
            428, "name the revision this change is based on: 'base_revision' in the body or an If-Match header "
            "(GET /api/v1/config answers the current one)",
        )  # fmt: skip
    return base


def current_revision(controller: Any) -> int | None:
    return controller.changes.store.current_id()


def origin_of(request: Request, principal: Principal) -> Origin:
    return Origin(principal.username, principal.via or "api", client_ip(request))


def find(items: list[dict[str, Any]], name: str, what: str) -> int:
    """The index of the item called `name`, else 404."""
    for index, item in enumerate(items):
        if item.get("name") == name:
            return index
    raise ApiError(404, f"there is no {what} {name}")


class Writer:
    """The management API's (and the WebUI's) way to the change front door."""

    def __init__(self, controller: Any, auth: Any) -> None:
        self.controller = controller
        self.auth = auth
        self.on_applied: Callable[[dict[str, Any]], None] | None = None  # metrics hook

    async def write(
        self,
        request: Request,
        principal: Principal,
        base: int | None,
        edit: Callable[[dict[str, Any]], Any],
        *,
        action: str,
        target: str,
        message: str | None = None,
    ) -> JSONResponse:
        """Apply `edit` (which changes the configuration's JSON in place) as a new revision based on `base`."""
        result = await self.controller.changes.apply(
            edit=edit, base_revision=base, origin=origin_of(request, principal), kind="api", action=action,
            target=target, message=message or f"{action} {target} (API)",
        )  # fmt: skip
        return await self.answer(result)

    async def answer(self, result) -> JSONResponse:
        body = result.as_dict()
        body["current_revision"] = await asyncio.to_thread(current_revision, self.controller)
        if self.on_applied is not None:
            self.on_applied(body)
        return JSONResponse(body, status_code=result.http_status)

    def _audit(self, request: Request, principal: Principal, action: str, target: str, outcome: str, detail: Any) -> None:
        """A request refused before it became a change (no base revision named, a malformed If-Match)."""
        self.auth.audit(principal.username, action, target=target, outcome=outcome, client_ip=client_ip(request),
                        via=principal.via, detail=detail)  # fmt: skip
