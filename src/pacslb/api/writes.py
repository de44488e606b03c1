"""Configuration writes of the management API: optimistic concurrency, one edit of the model, the apply path.

Every write names the revision it was based on (`base_revision` in the body, or `If-Match: <id>`). When
another change landed since, the write gets 409 with the current revision and nothing changes. Else
the edit is made on a JSON copy of the running configuration and the result goes through the
controller's ChangeManager.apply (validate -> plan -> revision -> engines), exactly like `pacslb apply`.

Every outcome, also a refused one, is recorded in the audit log.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from .auth import Principal, client_ip


class ApiError(Exception):
    """An answer other than 200: status, one-sentence message, and extra fields for the body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status = status
        self.message = message
        self.extra = extra
        super().__init__(message)

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
    if not text.isdigit():
        raise ApiError(400, f"If-Match must name a revision id (a number such as \"12\"), not {value!r}")
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


def find(items: list[dict[str, Any]], name: str, what: str) -> int:
    """The index of the item called `name`, else 404."""
    for index, item in enumerate(items):
        if item.get("name") == name:
            return index
    raise ApiError(404, f"there is no {what} {name}")


class Writer:
    """Serializes the management API's configuration writes (one stale check and apply at a time)."""

    def __init__(self, controller: Any, auth: Any) -> None:
        self.controller = controller
        self.auth = auth
        self._lock = asyncio.Lock()
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
        """Apply `edit` (which changes the configuration's JSON in place) as a new revision."""
        async with self._lock:
            try:
                current = await asyncio.to_thread(current_revision, self.controller)
                if base is not None and base != current:
                    raise ApiError(409, f"revision {base} is not the current one (revision {current} is): "
                                   "read the configuration again and redo the change on it",
                                   current_revision=current, base_revision=base)  # fmt: skip
                data = copy.deepcopy(self.controller.config.model_dump(mode="json"))
                edit(data)
            except ApiError as exc:
                self._audit(request, principal, action, target, _OUTCOMES.get(exc.status, "error"), {"message": exc.message})
                return exc.response()
            result = await self.controller.changes.apply(
                data=data, author=principal.username, message=message or f"{action} {target} (API)", kind="api"
            )
        body = result.as_dict()
        body["current_revision"] = await asyncio.to_thread(current_revision, self.controller)
        detail = {"message": result.message, "revision": (body.get("revision") or {}).get("id")}
        if result.problems:
            detail["problems"] = [str(p) for p in result.problems][:20]
        self._audit(request, principal, action, target, result.outcome.value, detail)
        if self.on_applied is not None:
            self.on_applied(body)
        return JSONResponse(body, status_code=result.http_status)

    def _audit(self, request: Request, principal: Principal, action: str, target: str, outcome: str, detail: Any) -> None:
        self.auth.audit(principal.username, action, target=target, outcome=outcome, client_ip=client_ip(request),
                        via=principal.via, detail=detail)  # fmt: skip
