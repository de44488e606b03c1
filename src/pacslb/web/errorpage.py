"""A browser's error page: a WebUI address that answers an error (a stale link to a deleted service, a mistyped
path) shows the message and the way back in the layout, not the API's JSON error body as raw text.

Only for a browser's page request: GET or HEAD, outside /api/, with text/html in Accept. Scripts and the API keep
the JSON error body of the contract (api/contract.py), whose handler this one hands everything else to.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from .context import render


def wants_page(request: Request) -> bool:
    """Whether the request is a browser asking for a WebUI page (not a script, not the API)."""
    return (
        request.method in ("GET", "HEAD")
        and not request.url.path.startswith("/api/")
        and "text/html" in request.headers.get("accept", "")
    )


def page_message(status: int, detail: Any, path: str) -> str:
    """What the page says: the route's own message, or for an unknown path, that there is no such page."""
    if status == 404 and (not isinstance(detail, str) or detail == "Not Found"):
        return f"There is no page {path} here."
    return detail if isinstance(detail, str) else HTTPStatus(status).phrase


def install_error_page(app) -> None:
    """Answer a browser's page request that fails with the error page; anything else as the app did before."""
    previous = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code < 400 or not wants_page(request):  # the login redirect, scripts, the API
            return await previous(request, exc)
        message = page_message(exc.status_code, exc.detail, request.url.path)
        page = render(request, "error.html", None, status_code=exc.status_code, status=exc.status_code,
                      phrase=HTTPStatus(exc.status_code).phrase, message=message)  # fmt: skip
        page.headers.update(exc.headers or {})
        return page

    app.add_exception_handler(StarletteHTTPException, http_error)
