"""The management API's contract in its OpenAPI document: one error body, the statuses of each operation, the
answers' schemas, and 405 with the right `Allow` (docs/api.md, "Answers and errors").

Every answer other than a 2xx has the same body, `ErrorBody`: `outcome` (a word a script can branch on),
`message` (one sentence: what happened and the fix) and, for 422, `problems` with the path of each field; a
refused change adds what the change front door says (plan, messages, current revision...). FastAPI's own
errors (401 and 403 of the authentication, 404 of an unknown path, 405) are turned into it here; `detail`
repeats their message for the clients written before.

A route declares its statuses with `answers(OkModel, 401, 403, 404, ...)`; `install(app)` adds what is true of
every operation whatever its route says (422 where FastAPI validates parameters or a body, 413 where a body is
read, the security schemes) and answers 405 with every method the path has.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

# A word per status, for the errors that are not the outcome of a change (those keep the change's own outcome).
OUTCOME_OF_STATUS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "error",
    422: "invalid",
    428: "precondition-required",
    429: "throttled",
    503: "unavailable",
}

# What each status means on this API (the description of the status in every operation that declares it).
MEANING = {
    400: "the request cannot be understood: the body is not what its Content-Type says (not JSON), or If-Match is not "
    "a revision id or disagrees with base_revision",
    401: "no credentials, or they are not valid (unknown or expired API key, ended session): log in or send an API key",
    403: "the role is not enough for this operation, or a session's unsafe request lacks its CSRF token",
    404: "the object the path names does not exist",
    409: "a conflict: the base revision is not the current one (another change landed), the object exists already, "
    "or an engine refused the change (the previous configuration serves)",
    413: "the request body is over its limit (docs/api.md, request limits): nothing was read or changed",
    422: "the request is not valid (a field's type or limit, or the model's validation): `problems` names each field",
    428: "the change names no base revision: send `base_revision` in the body or an If-Match header",
    429: "too many failed logins from this address or for this user name: retry after `retry_after` seconds",
    503: "not serving: HAProxy does not answer",
}


class ProblemItem(BaseModel):
    """One problem of a request or a configuration, with the path of its field."""

    path: str = Field(description="the field, dotted (virtual_services.0.real_servers.1.port); empty for the whole body")
    message: str
    severity: str = Field(description="error or warning")


class ErrorBody(BaseModel):
    """The body of every answer that is not a 2xx."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    outcome: str = Field(description="invalid, not-found, conflict, refused, precondition-required, bad-request, "
                         "unauthenticated, forbidden, throttled, method-not-allowed, unavailable or error")  # fmt: skip
    message: str = Field(description="what happened, and what to do about it")
    problems: list[ProblemItem] | None = Field(default=None, description="422: each invalid field with its path")
    retry_after: int | None = Field(default=None, description="429: seconds to wait before the next login")
    current_revision: int | None = Field(default=None, description="a refused change: the revision that runs now")


class Answer(BaseModel):
    """Base of the 2xx answers: the fields named are always there; more may come (additive changes)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})


def error_response(status: int, message: str, outcome: str | None = None, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:  # fmt: skip
    """An `ErrorBody` answer."""
    body = {"outcome": outcome or OUTCOME_OF_STATUS.get(status, "error"), "message": message, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def answers(ok: type[BaseModel] | None, *errors: int, status: int = 200, media: dict[str, Any] | None = None,
            description: str = "done") -> dict[str, Any]:  # fmt: skip
    """The `responses=` (and `response_model=None`) of a route: `ok` is the schema of its 2xx answer (or `media`,
    the content of a non-JSON one), `errors` every other status the route itself can answer. The statuses every
    route shares (422 of validation, 413 of the body limits) are added by `install`."""
    responses: dict[int | str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    if media is not None:
        responses[status] = {"description": description, "content": media}
        extra["response_class"] = Response  # not JSON: no application/json beside them
    elif ok is not None:
        responses[status] = {"description": description, "model": ok}
    for code in errors:  # JSON whatever the route's own media type (/metrics is text)
        responses[code] = {"description": MEANING.get(code, HTTPStatus(code).phrase), "content": _error_content()}
    return {"response_model": None, "responses": responses, **extra}


# --- base_revision: the optimistic concurrency of writes (writes.py) -------------------------------------------

IF_MATCH_PATTERN = r'^(W/)?"?[0-9]{1,16}"?$'  # writes.if_match_revision reads exactly this
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'the base revision as a header ("12", "\\"12\\"" or W/"12"), instead of base_revision; 400 when it is '
    "not a revision id or disagrees with base_revision",
    "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
}
_BASE = (
    "\n\n**base_revision**: the revision this change is based on (`revision` of GET /api/v1/config), in the body "
    "(the query for DELETE) or as `If-Match`. When another change landed since, the write is refused with 409 "
    "(`current_revision` in the answer) and nothing changes."
)
REVISION_REQUIRED = {"parameters": [_IF_MATCH], "description": _BASE + " **Required** here: without it, 428."}
REVISION_OPTIONAL = {"parameters": [_IF_MATCH], "description": _BASE + " Optional here: without it, the change applies "
                     "to whatever revision runs."}  # fmt: skip
BASE_QUERY = Query(None, description="the revision this deletion is based on (or If-Match): 428 without either, 409 "
                   "when another change landed since")  # fmt: skip


# --- the document ----------------------------------------------------------------------------------------

SECURITY_SCHEMES = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key: Authorization: Bearer pacslb_<id>_<secret>"},
    "session": {"type": "apiKey", "in": "cookie", "name": "pacslb_session",
                "description": "the session cookie of POST /api/v1/login (unsafe requests also send X-CSRF-Token)"},
}  # fmt: skip
UNSAFE = frozenset({"post", "put", "patch", "delete"})


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def contract_document(document: dict[str, Any], unauthenticated: set[tuple[str, str]] | None,
                      own_validation_errors: bool = True) -> dict[str, Any]:  # fmt: skip
    """FastAPI's document with what is true of every operation: 422 is the ErrorBody (not FastAPI's own
    validation error), 413 where a body is read, the security of every authenticated operation (none when
    `unauthenticated` is None: the controller's socket, which its file mode guards). Without `own_validation_errors`
    (the controller API), FastAPI's validation errors keep their body: 422 is either."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    if "ErrorBody" not in schemas:
        schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schemas["ErrorBody"].pop("$defs", {}))
    invalid = _error_content()
    if own_validation_errors:
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
    elif "HTTPValidationError" in schemas:
        either = [{"$ref": "#/components/schemas/ErrorBody"}, {"$ref": "#/components/schemas/HTTPValidationError"}]
        invalid = {"application/json": {"schema": {"anyOf": either}}}
    if unauthenticated is not None:
        components["securitySchemes"] = SECURITY_SCHEMES
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in UNSAFE and method != "get":
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {"description": MEANING[422], "content": invalid}
            if "requestBody" in operation:
                responses.setdefault("400", {"description": MEANING[400], "content": _error_content()})
                responses.setdefault("413", {"description": MEANING[413], "content": _error_content()})
                responses.setdefault("422", {"description": MEANING[422], "content": invalid})
            if unauthenticated is not None and (method.upper(), path) not in unauthenticated:
                operation["security"] = [{"apiKey": []}, {"session": []}]
                responses.setdefault("401", {"description": MEANING[401], "content": _error_content()})
    return document


def install(app: FastAPI, unauthenticated: set[tuple[str, str]] | frozenset[tuple[str, str]] | None,
            own_validation_errors: bool = True) -> None:  # fmt: skip
    """The contract on `app`: its document (`app.openapi()`), and FastAPI's errors in the ErrorBody with 405's Allow.
    `unauthenticated`: the operations that need no credentials; None when the app has no authentication at all."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract_document(build(), None if unauthenticated is None else set(unauthenticated),
                                                   own_validation_errors)  # fmt: skip
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code < 400:  # the WebUI's redirect to its login form: FastAPI's own answer
            return await http_exception_handler(request, exc)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and message == "Not Found":
            message = f"there is no {request.url.path} here: see the OpenAPI document, /api/openapi.json"
        elif exc.status_code == 405:
            message = f"{request.method} is not a method of {request.url.path}: use {headers['Allow']}"
        return error_response(exc.status_code, message, headers=headers or None, detail=message)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    """Every method some route of `app` serves at the path of `scope`. Starlette's 405 names the methods of the first
    route that matches the path only: GET /api/v1/config and PUT /api/v1/config are two routes. Each method is tried
    on every route (included routers too) with the public `matches`."""
    found = []
    for method in METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in app.router.routes):
            found.append(method)
    return found
